import { ExitCode, UsageError } from '../errors.ts';
import { describeSigning } from '../plan/trust.ts';
import { artifactOptionSpec, artifactRequest, artifactsPlan, artifactsPlanText } from './artifacts.ts';
import {
  archSteps,
  buildOptionHelp,
  buildOptionSpec,
  parseBuildOptions,
  prepare,
  stepArgv,
} from './build-glue.ts';
import { composePlanText } from './compose.ts';
import { archesOption, type Command } from './types.ts';

export const plan: Command = {
  name: 'plan',
  summary: 'show what a build would do: config, input hash, Containerfile, commands',
  usage: `
Usage: rock-image plan --stream S [options] [--json]

Prints the resolved configuration, the version and per-arch input hashes, the rendered
Containerfile and every command line a build would run. Builds nothing; it resolves the base
digests and, the first time, pulls each base to read its os-release and tools (cached).

With --compose it prints instead, per arch, the flattened treefile rpm-ostree would compose
(what 'rpm-ostree compose tree --print-only' shows) and the exact compose command lines, in
container mode unless --mode host; it needs no base, no network and no rpm-ostree.

With --artifacts --build DIR it prints instead every artifact backend's command lines (native,
bootc, coreos) for that build; the options of 'rock-image artifacts' apply. The native backend's
is its whole step list: run-time inputs as \${NAME}, variants by image fact, in-process steps.

Options:${buildOptionHelp}
  --json                print the whole plan as JSON
  --compose             print the compose plan of the stream's base (see above)
  --mode M              with --compose: host or container (default container)
`,
  options: {
    ...buildOptionSpec,
    json: { type: 'boolean' },
    compose: { type: 'boolean' },
    mode: { type: 'string' },
    artifacts: { type: 'boolean' },
    ...artifactOptionSpec,
  },
  async run(ctx, values) {
    if (values.artifacts) {
      const req = artifactRequest(ctx, values);
      if (values.json) {
        const { backends, ...rest } = artifactsPlan(req);
        ctx.stdout.write(
          `${JSON.stringify({ ...rest, backends: backends.map(({ jobs: _j, ...b }) => b) }, null, 2)}\n`,
        );
      } else ctx.stdout.write(artifactsPlanText(req));
      return ExitCode.ok;
    }
    if (values.compose) {
      if (typeof values.stream !== 'string') throw new UsageError('--stream is required');
      const mode = (values.mode as string | undefined) ?? 'container';
      if (mode !== 'host' && mode !== 'container')
        throw new UsageError(`--mode must be host or container, not '${mode}'`);
      const arches = archesOption(values, 'arch') ?? [];
      ctx.stdout.write(
        composePlanText(ctx, values.stream, {
          arches,
          mode,
          output: typeof values['compose-dir'] === 'string' ? values['compose-dir'] : undefined,
        }),
      );
      return ExitCode.ok;
    }
    if (values.mode !== undefined) throw new UsageError('--mode goes with --compose');
    const opts = parseBuildOptions(ctx, values);
    const { config, plan } = await prepare(ctx, opts, true);
    // The same step list `build` runs (build-glue.ts archSteps).
    const steps = plan.arches.map((a) => archSteps(opts, plan, a));
    const commands = steps.map((s) => ({
      arch: s.arch,
      commands: [stepArgv(opts.storage, s.build), stepArgv(opts.storage, s.archive)],
    }));
    if (values.json) {
      ctx.stdout.write(
        `${JSON.stringify({ config, plan: { ...plan, arches: plan.arches.map((a) => ({ ...a, context: a.context.map(({ content: _c, ...rest }) => rest) })) }, commands }, null, 2)}\n`,
      );
      return ExitCode.ok;
    }
    const out: string[] = [];
    out.push(`# ${plan.name} ${plan.version}, stream ${plan.stream}, layer timestamp ${plan.timestamp}`);
    out.push(
      `# composefs: ${config.stream.composefs}; agents: ${config.agents.map((a) => `${a.name}=${a.mode}`).join(', ')}`,
    );
    out.push(`# signatures: ${describeSigning(plan.signing)}`);
    out.push(
      `# services: ${config.services.map((s) => `${s.name}${s.enabled ? '' : ' (disabled)'}=${s.image}`).join(', ')}`,
    );
    for (const [key, p] of Object.entries(plan.images))
      out.push(`# image ${key}: ${p.digest ? p.image : `${p.ref} (by tag, not pinned)`}`);
    for (const a of plan.arches) {
      out.push(
        '',
        `## ${a.arch} (${a.platform})`,
        `base: ${a.base.ref} -> ${a.base.digest}`,
        `input hash: ${a.inputHash}`,
        `files added: ${a.addedPaths.length}`,
        '',
        '### Containerfile',
        a.containerfile.trimEnd(),
        '',
        '### commands',
      );
      const s = steps.find((x) => x.arch === a.arch)!;
      const env = Object.entries(s.build.env).map(([k, v]) => `${k}=${v} `);
      out.push(`$ ${env.join('')}${stepArgv(opts.storage, s.build).join(' ')}`);
      out.push(`$ ${stepArgv(opts.storage, s.archive).join(' ')}`);
      out.push(`# then ${s.archive.args.path} is renamed to ${s.archive.final}`);
    }
    ctx.stdout.write(`${out.join('\n')}\n`);
    return ExitCode.ok;
  },
};
