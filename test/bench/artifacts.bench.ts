// Artifact figures at real size (issues 6 and 19): `rock-image artifacts` (native backend, metal +
// qemu + PXE, zstd) of a build of the FCOS-sized base (test/world/big-base.ts), measured as a
// user runs it (wall time, peak memory, peak scratch disk), each of its stages from its own log,
// and beside it, in the same run, the raw tools doing the same work one after the other: the
// floor. Set BENCH_XZ=1 to also run it with xz (minutes: xz -T0 of the disk images), and
// BENCH_REUSE=DIR to take the build of an earlier run kept in DIR (its out/ and storage/).
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SQUASHFS_ZSTD_LEVEL } from '../../pipeline/exec/mkfs.ts';
import { cacheDir } from '../world/fcos-base.ts';
import { sh } from '../world/tools.ts';
import { bigBuild, newestLog, rockImage } from './big-build.ts';
import { logTimings, type Measured, measureSh, mib, secs } from './measure.ts';

/** What `rock-image artifacts` spent, and the floors of the same work. */
async function artifactsRun(
  b: Awaited<ReturnType<typeof bigBuild>>,
  compression: 'zstd' | 'xz',
): Promise<{
  ours: Measured;
  steps: Map<string, number>;
  images: Record<string, { path: string; size: number }>;
}> {
  const ours = await rockImage(
    [
      'artifacts',
      '--build',
      b.out,
      '--backend',
      'native',
      '--platform',
      'metal,qemu,pxe',
      '--compression',
      compression,
    ],
    b.out,
  );
  const { steps } = logTimings(newestLog(b.out, 'artifacts-'));
  const images = JSON.parse(readFileSync(join(b.dir, 'meta.json'), 'utf8')).images;
  return { ours, steps, images };
}

export async function bench(): Promise<void> {
  const work = join(cacheDir, `bench-artifacts-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const f = (n: string) => join(work, 'floor', n);
  mkdirSync(f(''), { recursive: true });
  try {
    const b = await bigBuild(work, { reuse: process.env.BENCH_REUSE });
    const tree = { files: b.base.files, bytes: b.base.bytes };
    console.log(
      `FCOS-sized base: ${b.base.layers} layers, ${tree.files} files, ${mib(tree.bytes)} of filler; build ${b.version}`,
    );
    const zstd = await artifactsRun(b, 'zstd');
    const metal = join(b.dir, zstd.images.metal!.path);
    const qemu = join(b.dir, zstd.images.qemu!.path);

    // The floor: each tool alone, one after the other, on the same inputs.
    const refName = b.version;
    const floor: [string, Measured][] = [];
    const add = async (label: string, p: Promise<Measured>) => {
      const m = await p;
      floor.push([label, m]);
      return m;
    };
    await add(
      'unpack: tar -x of the archive + umoci raw unpack',
      measureSh(
        'mkdir -p "$2" && tar -xf "$1" -C "$2" && umoci raw unpack --image "$2:$3" "$4"',
        [b.archive, f('oci'), refName, f('rootfs')],
        work,
      ),
    );
    rmSync(f('oci'), { recursive: true, force: true });
    await add(
      'ostree commit of the tree (host ostree, bare repo)',
      measureSh(
        'ostree init --repo="$1" --mode=bare >/dev/null && ostree commit --repo="$1" --branch=bench --tree=dir="$2" >/dev/null',
        [f('repo'), f('rootfs')],
        work,
      ),
    );
    await add(
      'mkfs.xfs + copy of the tree onto it (cp -a)',
      measureSh(
        [
          'truncate -s "$3" "$1/disk.raw"',
          'dev=$(losetup --find --show "$1/disk.raw")',
          'mkfs.xfs -q "$dev" && mkdir -p "$1/mnt" && mount "$dev" "$1/mnt"',
          'cp -a "$2/." "$1/mnt/"; rc=$?',
          'umount "$1/mnt"; losetup -d "$dev"; exit $rc',
        ].join('\n'),
        [f(''), f('rootfs'), String(Math.ceil((tree.bytes * 1.5) / 2 ** 20) + 256) + 'M'],
        work,
      ),
    );
    rmSync(f('disk.raw'), { force: true });
    await add(
      `mksquashfs -comp zstd -Xcompression-level ${SQUASHFS_ZSTD_LEVEL} of the repo`,
      measureSh(
        'mksquashfs "$1" "$2" -noappend -comp zstd -Xcompression-level "$3" -no-progress >/dev/null',
        [f('repo'), f('sq.img'), String(SQUASHFS_ZSTD_LEVEL)],
        work,
      ),
    );
    const sqSize = statSync(f('sq.img')).size;
    rmSync(f('sq.img'));
    // The images back to raw (not measured), then each compressed as ours are.
    await measureSh(
      'zstd -d -q -f "$1" -o "$2" && zstd -d -q -f "$3" -o "$4"',
      [metal, f('metal.raw'), qemu, f('qemu.qcow2')],
      work,
    );
    const rawBytes = statSync(f('metal.raw')).size;
    await add(
      'qemu-img convert of the raw to qcow2',
      measureSh('qemu-img convert -O qcow2 "$1" "$2"', [f('metal.raw'), f('q2.qcow2')], work),
    );
    rmSync(f('q2.qcow2'));
    await add(
      'zstd -T0 of the metal raw',
      measureSh('zstd -T0 -q -f "$1" -o "$2"', [f('metal.raw'), f('m.zst')], work),
    );
    await add(
      'zstd -T0 of the qcow2',
      measureSh('zstd -T0 -q -f "$1" -o "$2"', [f('qemu.qcow2'), f('q.zst')], work),
    );
    rmSync(f('m.zst'));
    rmSync(f('q.zst'));
    const floorSum = floor.reduce((n, [, m]) => n + m.seconds, 0);
    console.log(`\n## rock-image artifacts (native, metal + qemu + PXE, zstd), x86_64\n`);
    console.log('| stage (from its log) | seconds |');
    console.log('|---|---|');
    for (const [s, t] of zstd.steps) console.log(`| ${s} | ${secs(t)} |`);
    console.log(`\n| floor: the raw tool alone | seconds |`);
    console.log('|---|---|');
    for (const [label, m] of floor) console.log(`| ${label} | ${secs(m.seconds)} |`);
    console.log(`| **sum of floors** | **${secs(floorSum)}** |`);
    console.log(`\nsquashfs of the repo at level ${SQUASHFS_ZSTD_LEVEL}: ${mib(sqSize)}`);
    console.log(`metal raw: ${mib(rawBytes)} apparent`);
    const rows: [string, Measured, number, string][] = [['artifacts, zstd', zstd.ours, floorSum, '1.3×']];
    if (process.env.BENCH_XZ === '1') {
      const xz = await artifactsRun(b, 'xz');
      const xzFloor = await add(
        'xz -T0 of the metal raw',
        measureSh('xz -T0 -c "$1" > "$2"', [f('metal.raw'), f('m.xz')], work),
      );
      const xzQ = await add(
        'xz -T0 of the qcow2',
        measureSh('xz -T0 -c "$1" > "$2"', [f('qemu.qcow2'), f('q.xz')], work),
      );
      rows.push(['artifacts, xz', xz.ours, xzFloor.seconds + xzQ.seconds, '1.1× of compression']);
      console.log(`\nxz steps: ${[...xz.steps].map(([s, t]) => `${s} ${secs(t)}`).join('; ')}`);
    }
    console.log(
      '\n| measure | rock-image | floor | ratio | target | peak RSS (own / tree) | peak scratch disk |',
    );
    console.log('|---|---|---|---|---|---|---|');
    for (const [label, m, fl, target] of rows)
      console.log(
        `| ${label} | ${secs(m.seconds)} | ${secs(fl)} | ${(m.seconds / fl).toFixed(2)} | ${target} | ${mib(m.rssSelf)} / ${mib(m.rssTree)} | ${mib(m.disk)} (${(m.disk / tree.bytes).toFixed(1)}× the tree) |`,
      );
  } finally {
    sh('sh', ['-c', 'umount "$1" 2>/dev/null; true', 'sh', f('mnt')]);
    rmSync(work, { recursive: true, force: true });
  }
}
