// xz settings for the disk images (issue 19), measured on a sample of the FCOS-sized tree's own
// bytes (the layers of test/world/big-base.ts, as a tar stream, the first SAMPLE_MiB), so each
// setting takes a minute rather than ten: time, size and throughput of `xz -T0` at presets 1, 3
// and 6 (xz's default) and with smaller blocks, and zstd -T0 beside them. A disk image holds
// this data plus zeros (free space, which every setting passes at once), so the time of a
// whole image scales with its data. Which xz coreos-installer can read: any; it sniffs the xz
// magic and decodes the stream single-threaded whatever the preset (coreos-installer
// src/io/compress.rs:43-56, src/io/xz.rs @bee45001), while a stream install asks only for
// `raw.xz` (src/install.rs:165-180), so metal must be xz, and the preset is ours to choose.
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Compression, compressConsuming } from '../../pipeline/exec/compress.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { bigBase } from '../world/big-base.ts';
import { cacheDir } from '../world/fcos-base.ts';
import { measureSh, mib, secs } from './measure.ts';

const SAMPLE_MiB = 128;

export async function bench(): Promise<void> {
  const base = bigBase('x86_64');
  const work = join(cacheDir, `bench-xz-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const sample = join(work, 'sample');
  try {
    // Every layer blob (gzip tarballs) decompressed in manifest order, the first SAMPLE_MiB kept.
    await measureSh(
      'mkdir -p "$3" && tar -xf "$1" -C "$3" && for b in $(jq -r ".layers[].digest" "$3/blobs/sha256/$(jq -r ".manifests[0].digest" "$3/index.json" | cut -d: -f2)" | cut -d: -f2); do gzip -dc "$3/blobs/sha256/$b"; done | head -c "$4" > "$2"; rm -rf "$3"',
      [base.ref.replace(/^oci-archive:/, ''), sample, join(work, 'oci'), String(SAMPLE_MiB * 1024 * 1024)],
      work,
    );
    const bytes = statSync(sample).size;
    const rows: [string, string][] = [
      ['xz -T0 -6 (xz default)', 'xz -T0 -6 -c "$1" > "$2"'],
      ['xz -T0 -6 --block-size=8MiB', 'xz -T0 -6 --block-size=8MiB -c "$1" > "$2"'],
      ['xz -T0 -3', 'xz -T0 -3 -c "$1" > "$2"'],
      ['xz -T0 -1', 'xz -T0 -1 -c "$1" > "$2"'],
      ['zstd -T0 (level 3)', 'zstd -T0 -q -c "$1" > "$2"'],
    ];
    console.log(`sample: ${mib(bytes)} of the FCOS-sized tree's layer data (tar)\n`);
    console.log('| setting | time | size | ratio | MiB/s | xz -d time |');
    console.log('|---|---|---|---|---|---|');
    for (const [label, script] of rows) {
      const m = await measureSh(script, [sample, join(work, 'out')], work);
      const size = statSync(join(work, 'out')).size;
      const d = label.startsWith('xz')
        ? secs((await measureSh('xz -dc "$1" > /dev/null', [join(work, 'out')], work)).seconds)
        : '-';
      console.log(
        `| ${label} | ${secs(m.seconds)} | ${mib(size)} | ${(size / bytes).toFixed(3)} | ${(bytes / 2 ** 20 / m.seconds).toFixed(1)} | ${d} |`,
      );
      rmSync(join(work, 'out'));
    }
    // What `rock-image artifacts` runs: the same preset, fed through a pipe by our process, the
    // input hashed on the way and punched out as read (pipeline/exec/compress.ts), on a copy.
    const run = createRunner(createLogger({ mode: 'plain', verbose: false }));
    for (const kind of ['xz', 'zstd'] as Compression[]) {
      const input = join(work, `ours-${kind}`);
      copyFileSync(sample, input);
      const t = process.hrtime.bigint();
      const r = await compressConsuming(run, kind, input);
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      const size = statSync(r.path).size;
      console.log(
        `| rock-image's compressConsuming, ${kind} -T0 (${kind === 'xz' ? '-6' : 'level 3'}) | ${secs(seconds)} | ${mib(size)} | ${(size / bytes).toFixed(3)} | ${(bytes / 2 ** 20 / seconds).toFixed(1)} | - |`,
      );
      rmSync(r.path);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
