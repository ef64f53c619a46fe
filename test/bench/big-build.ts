// The benchmarks' build on the FCOS-sized base (test/world/big-base.ts): `rock-image build` of
// the stable stream for x86_64 with a private storage, measured (bench/measure.ts), in `work`.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BigBase, bigBase } from '../world/big-base.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { type Measured, measure } from './measure.ts';

export interface BigBuild {
  base: BigBase;
  out: string;
  storage: string;
  version: string;
  /** builds/<version>/x86_64 */
  dir: string;
  /** The build's OCI archive. */
  archive: string;
  /** Undefined when an earlier build was reused (BENCH_REUSE). */
  measured?: Measured;
  /** The build's JSONL log. */
  log: string;
}

/** `rock-image build` (the bin, as a user runs it) with `args` added; CI=true: plain logs. */
export function rockImage(args: string[], disk: string): Promise<Measured> {
  return measure(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], {
    disk,
    env: { CI: 'true', SOURCE_DATE_EPOCH: '1763769600' },
  });
}

export function newestLog(out: string, prefix: string): string {
  const logs = readdirSync(join(out, 'logs'))
    .filter((f) => f.startsWith(prefix))
    .sort();
  return join(out, 'logs', logs.at(-1)!);
}

/** `rock-image build` of the stable stream for x86_64 on `base`, into `out` with `storage`. */
export function buildArgs(base: BigBase, out: string, storage: string, project?: string): string[] {
  return [
    ...(project ? ['--project', project] : []),
    'build',
    '--stream',
    'stable',
    '--arch',
    'x86_64',
    '--base',
    `x86_64=${base.ref}`,
    '--output',
    out,
    '--storage',
    storage,
  ];
}

/**
 * The first build into `work`/out (`project`: a copy of this repository's project files).
 * `reuse`: the work directory of an earlier such build, taken as it is (nothing measured).
 */
export async function bigBuild(
  work: string,
  opts: { project?: string; reuse?: string } = {},
): Promise<BigBuild> {
  const base = bigBase('x86_64');
  if (opts.reuse) work = opts.reuse;
  const out = join(work, 'out');
  const storage = join(work, 'storage');
  mkdirSync(work, { recursive: true });
  const measured = opts.reuse
    ? undefined
    : await rockImage(buildArgs(base, out, storage, opts.project), work);
  const version = JSON.parse(readFileSync(join(out, 'builds/builds.json'), 'utf8')).builds[0].id as string;
  const dir = join(out, 'builds', version, 'x86_64');
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
  return {
    base,
    out,
    storage,
    version,
    dir,
    archive: join(dir, meta.images.ostree.path),
    measured,
    log: newestLog(out, 'build-'),
  };
}
