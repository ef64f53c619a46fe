// `rock-image prune`: garbage-collects a build directory, like coreos-assembler's prune: keeps the
// newest N builds and any pinned ones, drops the rest from builds.json first (atomically), then
// deletes their directories, so builds.json never lists a build that is gone. Re-running converges.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { readArchive } from '../oci-archive.ts';
import { planPrune, staleCacheFiles } from '../plan/prune.ts';
import { parseVersion } from '../plan/version.ts';
import { metaPath, readMetaFile, updateBuilds } from '../records.ts';
import { readBuildsJson } from './build-glue.ts';
import { type Command, type Context, intOption } from './types.ts';

export const prune: Command = {
  name: 'prune',
  summary: 'delete old builds from a build directory, keeping the newest N',
  usage: `
Usage: rock-image prune [--output DIR] [--keep N] [--pin V]... [--dry-run]

Keeps the newest N builds of DIR/builds/builds.json and every --pin version, removes the others
from builds.json (atomically), then deletes their DIR/builds/<version>/ directories and any
directory builds.json no longer lists (left by an interrupted run). Then, per arch, the layer
blobs of DIR/cache/blobs/<arch> (the bases' compressed layers, kept for the next build's archive)
that no kept build's archive carries: an older base's. An arch with a kept archive it cannot read
keeps its cache whole.

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
      if (!values['dry-run']) await pruneBlobCache(ctx, output, plan.keep);
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
    await pruneBlobCache(ctx, output, plan.keep);
    return ExitCode.ok;
  },
};

/**
 * The compressed layer digests the archive of build `v` for `arch` carries (its manifest, read
 * in place: no layer is unpacked), or undefined when there is no archive to read.
 */
function carriedLayers(buildsDir: string, v: string, arch: string) {
  try {
    const meta = readMetaFile(metaPath(buildsDir, v, arch));
    const archive = meta.images.ostree && join(buildsDir, v, arch, meta.images.ostree.path);
    const digest = meta['rocknsm.image-digest'];
    if (!archive || !digest || !existsSync(archive)) return undefined;
    const manifest = readArchive(archive, (a) => a.blob(digest));
    return ((JSON.parse(manifest.toString('utf8')) as { layers?: { digest: string }[] }).layers ?? []).map(
      (l) => l.digest,
    );
  } catch {
    return undefined;
  }
}

/** Deletes what staleCacheFiles names in each arch's blob cache; see the usage text. */
async function pruneBlobCache(ctx: Context, output: string, kept: string[]): Promise<void> {
  const root = join(output, 'cache', 'blobs');
  if (!existsSync(root)) return;
  const buildsDir = join(output, 'builds');
  for (const arch of readdirSync(root)) {
    const carried = new Set<string>();
    let known = true;
    for (const v of kept) {
      if (!existsSync(metaPath(buildsDir, v, arch))) continue;
      const layers = carriedLayers(buildsDir, v, arch);
      if (!layers) known = false;
      for (const d of layers ?? []) carried.add(d);
    }
    if (!known) {
      ctx.log.warn(
        `${join(root, arch)}: a kept build's archive cannot be read; its blob cache is kept whole`,
      );
      continue;
    }
    const dir = join(root, arch);
    const files = readdirSync(dir).map((name) => ({
      name,
      note: name.endsWith('.compressed') ? readFileSync(join(dir, name), 'utf8').trim() : undefined,
    }));
    const stale = staleCacheFiles(files, carried);
    for (const f of stale) rmSync(join(dir, f), { force: true });
    if (stale.length) ctx.log.info(`${dir}: removed ${stale.length} file(s) no kept build carries`);
  }
}
