// Build figures (issue 3): first build of both arches, a no-op rebuild (unchanged inputs), the
// new layer bytes when one overlay file changes versus the whole image, and whether two builds
// from fresh storages give the same digests. Real `rock-image build` (the bin) with real buildah
// on the FCOS-shaped fixture bases, in a scratch copy of the project.
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, fcosBase, repoRoot } from '../world/fcos-base.ts';
import { sh, shResult } from '../world/tools.ts';

interface Layer {
  digest: string;
  size: number;
}

const MiB = 1024 * 1024;

function timed(label: string, args: string[]): number {
  const start = process.hrtime.bigint();
  const r = shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], {
    env: { CI: 'true' },
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.code !== 0) throw new Error(`${label} failed (exit ${r.code}):\n${r.stderr}`);
  return seconds;
}

function newest(out: string): string {
  return JSON.parse(readFileSync(join(out, 'builds/builds.json'), 'utf8')).builds[0].id;
}

function imageOf(out: string, version: string, arch: string) {
  const meta = JSON.parse(readFileSync(join(out, 'builds', version, arch, 'meta.json'), 'utf8'));
  const ref = `oci-archive:${join(out, 'builds', version, arch, meta.images.ostree.path)}:${version}`;
  const manifest = JSON.parse(sh('skopeo', ['inspect', '--raw', ref]));
  return { digest: meta['rocknsm.image-digest'] as string, layers: manifest.layers as Layer[] };
}

export async function bench(): Promise<void> {
  const work = join(cacheDir, `bench-build-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  const project = join(work, 'project');
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  mkdirSync(work, { recursive: true });
  const bases = ['x86_64', 'aarch64'].flatMap((a) => [
    '--base',
    `${a}=${fcosBase(a as 'x86_64' | 'aarch64', 'tools')}`,
  ]);
  const build = (out: string, storage: string, extra: string[] = []) => [
    '--project',
    project,
    'build',
    '--stream',
    'stable',
    ...bases,
    '--output',
    out,
    '--storage',
    storage,
    ...extra,
  ];
  const env = { SOURCE_DATE_EPOCH: '1763769600' };
  Object.assign(process.env, env);
  try {
    const outA = join(work, 'a');
    const first = timed('first build', build(outA, join(work, 'st-a')));
    const v1 = newest(outA);
    const noop = timed('no-op rebuild', build(outA, join(work, 'st-a')));

    // Same inputs, fresh storage and output: the digests must match.
    const outB = join(work, 'b');
    timed('fresh build', build(outB, join(work, 'st-b'), ['--version', v1]));

    // One file of the first overlay changes: every later step runs again, yet only that
    // overlay's layer (and the tiny version stamp) come out new; the rest are byte-identical.
    appendFileSync(join(project, 'overlays/05identity/usr/lib/motd.d/10-rocknsm.motd'), 'changed\n');
    const changed = timed('one-file rebuild', build(outA, join(work, 'st-a')));
    const v2 = newest(outA);

    const rows: string[][] = [];
    for (const arch of ['x86_64', 'aarch64']) {
      const a = imageOf(outA, v1, arch);
      const b = imageOf(outB, v1, arch);
      const c = imageOf(outA, v2, arch);
      const before = new Set(a.layers.map((l) => l.digest));
      const fresh = c.layers.filter((l) => !before.has(l.digest));
      const total = c.layers.reduce((n, l) => n + l.size, 0);
      const added = fresh.reduce((n, l) => n + l.size, 0);
      rows.push([
        arch,
        a.digest === b.digest ? 'yes' : `NO (${a.digest.slice(7, 19)} vs ${b.digest.slice(7, 19)})`,
        `${(total / MiB).toFixed(1)} MiB in ${c.layers.length} layers`,
        `${(added / 1024).toFixed(1)} KiB in ${fresh.length} layers`,
      ]);
    }
    console.log(`first build, both arches:          ${first.toFixed(1)} s`);
    console.log(`no-op rebuild (unchanged inputs):  ${noop.toFixed(1)} s`);
    console.log(`rebuild after one overlay file:    ${changed.toFixed(1)} s`);
    console.log(
      '\n| arch | same digest from fresh storage | whole image | new layer data, one file changed |',
    );
    console.log('|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
