// `rock-image prune`: garbage-collects a build directory, like coreos-assembler's prune: keeps the
// newest N builds and any pinned ones, drops the rest from builds.json first (atomically), then
// deletes their directories, so builds.json never lists a build that is gone. Re-running converges.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { planPrune } from '../plan/prune.ts';
import { parseVersion } from '../plan/version.ts';
import { updateBuilds } from '../records.ts';
import { readBuildsJson } from './build-glue.ts';
import { type Command, intOption } from './types.ts';

export const prune: Command = {
  name: 'prune',
  summary: 'delete old builds from a build directory, keeping the newest N',
  usage: `
Usage: rock-image prune [--output DIR] [--keep N] [--pin V]... [--dry-run]

Keeps the newest N builds of DIR/builds/builds.json and every --pin version, removes the others
from builds.json (atomically), then deletes their DIR/builds/<version>/ directories and any
directory builds.json no longer lists (left by an interrupted run).

Options:
  -o, --output DIR   build directory (default: ./out)
  --keep N           builds to keep, newest first (default: 3)
  --pin V            also keep version V (e.g. what a stream currently points at); repeatable
  --dry-run          print what would be removed; change nothing
`,
  options: {
    output: { type: 'string', short: 'o' },
    keep: { type: 'string', int: { min: 1 } },
    pin: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean' },
  },
  async run(ctx, values) {
    const output = resolve(ctx.cwd, typeof values.output === 'string' ? values.output : 'out');
    const keep = intOption(values, 'keep') ?? 3;
    const pinned = (values.pin as string[] | undefined) ?? [];
    for (const v of pinned) if (!parseVersion(v)) throw new UsageError(`--pin '${v}' is not X.YYYYMMDD.S.N`);
    const builds = readBuildsJson(output);
    const plan = planPrune(builds.builds, keep, pinned);
    const dir = join(output, 'builds');
    const listed = new Set(builds.builds.map((b) => b.id));
    const strays = existsSync(dir)
      ? readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory() && parseVersion(e.name) && !listed.has(e.name))
          .map((e) => e.name)
      : [];
    const doomed = [...plan.remove, ...strays];
    for (const v of doomed) ctx.stdout.write(`${values['dry-run'] ? 'would remove' : 'remove'} ${v}\n`);
    if (values['dry-run'] || doomed.length === 0) {
      ctx.log.info(`keeping ${plan.keep.length} build(s); ${doomed.length} to remove`);
      return ExitCode.ok;
    }
    if (plan.remove.length) {
      const timestamp = new Date(ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
      updateBuilds(dir, (doc) => ({
        ...doc,
        builds: doc.builds.filter((b) => !plan.remove.includes(b.id)),
        timestamp,
      }));
    }
    for (const v of doomed) rmSync(join(dir, v), { recursive: true, force: true });
    ctx.log.info(`kept ${plan.keep.join(', ') || 'nothing'}; removed ${doomed.join(', ')}`);
    return ExitCode.ok;
  },
};
