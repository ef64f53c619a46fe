// `rock-image ci-plan`: the first job of a stream's nightly run. Plans the build like `rock-image
// build` (same version, same input hashes), decides once for every arch whether anything changed
// since the newest build in DIR, and hands the legs their matrix and the version to build.
import { join } from 'node:path';
import { backendModules } from '../artifacts/index.ts';
import { platformsOfStream } from '../artifacts/layout.ts';
import type { ResolvedConfig } from '../config/index.ts';
import { ConfigError, ExitCode } from '../errors.ts';
import { decide, legMatrix, renderUnchanged, writeOutputs, writeSummary } from '../gha.ts';
import { readMeta } from '../records.ts';
import { buildOptionHelp, buildOptionSpec, loadConfig, parseBuildOptions, prepare } from './build-glue.ts';
import type { Command } from './types.ts';

export const ciPlan: Command = {
  name: 'ci-plan',
  summary: 'decide whether a stream needs a build and print the legs matrix (GitHub Actions)',
  usage: `
Usage: rock-image ci-plan --stream S [options]

Plans the stream's build exactly as 'rock-image build' would (resolving every arch's base
digest) and compares each arch's input hash with the newest build in DIR/builds. Prints JSON
{stream, version, changed, previous, arches, matrix, platforms, registry, siteUrl} on stdout; under GitHub
Actions also writes the step outputs version, changed, previous, arches, matrix (one runner per
arch: ubuntu-24.04 for x86_64, ubuntu-24.04-arm for aarch64), platforms (the stream's disk and
PXE artifacts, comma-separated, empty when none), registry and site-url (the stream's
publish.registry and publish.site-url), and a job summary when nothing changed.

Options:${buildOptionHelp}`,
  options: { ...buildOptionSpec },
  async run(ctx, values) {
    const opts = parseBuildOptions(ctx, values);
    checkArtifactBackend(loadConfig(ctx, opts.stream));
    const { config, plan, builds } = await prepare(ctx, opts, false);
    const buildsDir = join(opts.output, 'builds');
    const decision = decide(
      Object.fromEntries(plan.arches.map((a) => [a.arch, a.inputHash])),
      builds,
      (id, arch) => readMeta(buildsDir, id, arch),
    );
    const arches = plan.arches.map((a) => a.arch);
    const result = {
      stream: plan.stream,
      version: plan.version,
      changed: decision.changed,
      previous: decision.previous ?? null,
      arches: decision.arches,
      matrix: legMatrix(arches),
      platforms: platformsOfStream(config.stream.artifacts),
      registry: config.stream.publish.registry ?? null,
      siteUrl: config.stream.publish.siteUrl ?? null,
    };
    ctx.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    for (const a of decision.arches)
      ctx.log.info(
        `${a.arch}: input ${a.current.slice(0, 12)} ${a.changed ? `changed (was ${a.previous?.slice(0, 12) ?? 'none'})` : 'unchanged'}`,
      );
    ctx.log.info(
      decision.changed
        ? `${plan.stream}: build ${plan.version}`
        : `${plan.stream}: unchanged since ${decision.previous}; nothing to build`,
    );
    writeOutputs(ctx.env, {
      version: plan.version,
      changed: String(decision.changed),
      previous: decision.previous ?? '',
      arches: arches.join(','),
      matrix: JSON.stringify(result.matrix),
      platforms: result.platforms.join(','),
      registry: result.registry ?? '',
      'site-url': result.siteUrl ?? '',
    });
    if (!decision.changed)
      writeSummary(ctx.env, renderUnchanged(plan.stream, decision.previous, decision.arches));
    return ExitCode.ok;
  },
};

/**
 * The legs run `rock-image artifacts` with the stream's artifact list; one its backend cannot
 * make would fail there after two builds, so it is refused here, before any base is pulled.
 */
function checkArtifactBackend(config: ResolvedConfig): void {
  const backend = backendModules[config.stream.artifactBackend];
  const issues = platformsOfStream(config.stream.artifacts).flatMap((p) => {
    const ok = backend.supports(p);
    return ok === true
      ? []
      : [
          {
            file: `manifests/streams/${config.stream.stream}.yaml`,
            path: '/artifacts',
            rule: 'artifact-backend',
            message: `the ${config.stream.artifactBackend} backend cannot make '${p}': ${ok}`,
          },
        ];
  });
  if (issues.length) throw new ConfigError(issues);
}
