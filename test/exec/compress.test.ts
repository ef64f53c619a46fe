// Compression that gives the input's blocks back as it reads (pipeline/exec/compress.ts
// compressConsuming), with the real zstd, xz and fallocate: the output decompresses, with the
// real tools, to exactly the input; the sha256 it reports is the input's; the input's allocated
// blocks fall while it runs (st_blocks after each real punch) and the file is gone at the end;
// zstd's frame records the content size as for a file (zstd(1): --stream-size, and `zstd -l`
// prints "Decompressed Size"); a compressor that fails is reported with its own error.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CommandError } from '../../pipeline/errors.ts';
import { type Compression, compressConsuming } from '../../pipeline/exec/compress.ts';
import { createRunner, type Runner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, sh } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'test', `compress-${process.pid}`);
const MiB = 1 << 20;

test.before(() => {
  for (const t of ['zstd', 'xz', 'fallocate']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

/** 24 MiB: 16 MiB of seeded, half-compressible data, then an 8 MiB hole (as a disk image has). */
function diskLike(path: string): string {
  const data = Buffer.alloc(16 * MiB);
  let x = 12345;
  for (let i = 0; i < data.length; i += 2) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    data[i] = x & 0xff;
  }
  writeFileSync(path, data);
  sh('truncate', ['-s', String(24 * MiB), path]);
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

const runner = (): Runner => createRunner(createLogger({ mode: 'plain', verbose: false }));

for (const kind of ['zstd', 'xz'] as Compression[])
  test(`compressConsuming ${kind}: same bytes back, the input's sha256, its blocks given back as it goes, then it is gone`, async () => {
    const file = join(work, `disk-${kind}.raw`);
    const sha = diskLike(file);
    const before = statSync(file).blocks;
    const real = runner();
    const blocks: number[] = [];
    // The real runner, noting the input's allocated blocks after each real fallocate.
    const run: Runner = async (cmd, args, opts) => {
      const r = await real(cmd, args, opts);
      if (cmd === 'fallocate') blocks.push(statSync(file).blocks);
      return r;
    };
    const r = await compressConsuming(run, kind, file, { punchEvery: 4 * MiB });
    assert.is(r.sha256, sha);
    assert.is(r.size, 24 * MiB);
    assert.is(r.path, `${file}${kind === 'zstd' ? '.zst' : '.xz'}`);
    assert.not.ok(existsSync(file), 'the input is removed');
    assert.ok(blocks.length >= 4, `punched ${blocks.length} times`);
    for (let i = 1; i < blocks.length; i++) assert.ok(blocks[i]! <= blocks[i - 1]!);
    assert.ok(blocks[3]! < before, `allocated blocks ${before} -> ${blocks.join(', ')}`);
    const back = join(work, `back-${kind}`);
    if (kind === 'zstd') sh('zstd', ['-d', '-q', '-f', r.path, '-o', back]);
    else sh('sh', ['-c', 'xz -dc "$1" > "$2"', 'sh', r.path, back]);
    assert.is(createHash('sha256').update(readFileSync(back)).digest('hex'), sha);
    if (kind === 'zstd')
      assert.match(sh('zstd', ['-lv', r.path]), /Decompressed Size: [\d.]+ MiB \(25165824 B\)/);
    else sh('xz', ['-t', r.path]);
  });

test('compressConsuming: a compressor that fails is reported with its own error', async () => {
  const file = join(work, 'bad.raw');
  diskLike(file);
  // A zstd that cannot write its output (a directory of that name is in the way).
  mkdirSync(`${file}.zst`);
  const err = await compressConsuming(runner(), 'zstd', file).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, CommandError);
  assert.match((err as Error).message, /zstd/);
});

test.run();
