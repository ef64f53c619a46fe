// `rock-image summary`: a Markdown report of one build (version, digests, sizes, what changed
// since the build before it), printed and, under GitHub Actions, added to the job summary.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExitCode, PipelineError, UsageError } from '../errors.ts';
import { renderSummary, writeSummary } from '../gha.ts';
import { type BuildMeta, readMeta } from '../records.ts';
import { readBuildsJson } from './build-glue.ts';
import type { Command } from './types.ts';

export const summary: Command = {
  name: 'summary',
  summary: 'Markdown report of a build and its changes since the previous one (job summary)',
  usage: `
Usage: rock-image summary --build DIR [--version V]

Reports build V of DIR/builds (default: the newest in builds.json): per arch the image digest,
base digest, input hash, every file with its size and sha256, and what changed since the
previous build listed in builds.json that still has its meta.json (base digest, manifests or
overlays, image size). Prints the Markdown on stdout and appends it to $GITHUB_STEP_SUMMARY
when that is set.

Options:
  -b, --build DIR   build directory of 'rock-image build --output' (required)
  --version V       build to report (default: the newest)
`,
  options: { build: { type: 'string', short: 'b' }, version: { type: 'string' } },
  async run(ctx, values) {
    if (typeof values.build !== 'string') throw new UsageError('--build is required');
    const dir = resolve(ctx.cwd, values.build);
    if (!existsSync(join(dir, 'builds', 'builds.json')))
      throw new UsageError(`${join(dir, 'builds', 'builds.json')}: not found (not a build directory)`);
    const builds = readBuildsJson(dir);
    const buildsDir = join(dir, 'builds');
    const index =
      typeof values.version === 'string' ? builds.builds.findIndex((b) => b.id === values.version) : 0;
    const entry = builds.builds[index];
    if (index < 0 || !entry)
      throw new UsageError(
        `${join(buildsDir, 'builds.json')}: no build ${typeof values.version === 'string' ? values.version : '(empty)'}`,
      );
    const metasOf = (id: string, arches: string[]) =>
      arches.map((a) => readMeta(buildsDir, id, a)).filter((m): m is BuildMeta => m !== undefined);
    const current = metasOf(entry.id, entry.arches);
    if (current.length !== entry.arches.length)
      throw new PipelineError(
        `${join(buildsDir, entry.id)}: meta.json missing for some of ${entry.arches.join(', ')}`,
      );
    const older = builds.builds.slice(index + 1).find((b) => metasOf(b.id, b.arches).length > 0);
    const markdown = renderSummary({
      stream: current[0]?.['rocknsm.stream'] ?? '(stream unknown)',
      version: entry.id,
      current,
      previous: older ? { version: older.id, metas: metasOf(older.id, older.arches) } : undefined,
    });
    ctx.stdout.write(markdown);
    writeSummary(ctx.env, markdown);
    return ExitCode.ok;
  },
};
