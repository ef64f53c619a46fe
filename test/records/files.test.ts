// pipeline/files.ts copyHashed: the bytes written are the bytes hashed, in one read of the source
// (or of one range of it, as publish copies a blob out of an OCI archive).
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataError } from '../../pipeline/errors.ts';
import { copyHashed } from '../../pipeline/files.ts';

const dir = mkdtempSync(join(tmpdir(), 'rock-files-'));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('copyHashed: exact bytes and their sha256, across chunk edges and for an empty file', async () => {
  // 4 MiB chunks: one short of two, exactly two, one past two, and nothing.
  for (const size of [(8 << 20) - 1, 8 << 20, (8 << 20) + 1, 0]) {
    const bytes = randomBytes(size);
    const src = join(dir, `src-${size}`);
    writeFileSync(src, bytes);
    const got = await copyHashed(src, join(dir, `dest-${size}`));
    assert.is(got, sha(bytes), `${size}`);
    assert.ok(readFileSync(join(dir, `dest-${size}`)).equals(bytes), `${size}`);
  }
});

test("copyHashed: the copy takes the source's mode; an existing destination is refused", async () => {
  const src = join(dir, 'mode-src');
  writeFileSync(src, 'x');
  chmodSync(src, 0o640);
  await copyHashed(src, join(dir, 'mode-dest'));
  assert.is(statSync(join(dir, 'mode-dest')).mode & 0o777, 0o640);
  try {
    await copyHashed(src, join(dir, 'mode-dest'));
    assert.unreachable('overwrote');
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, 'EEXIST');
  }
});

test('copyHashed with a range: exactly those bytes, mode 0644; a source that ends before them is refused', async () => {
  const bytes = randomBytes((9 << 20) + 3);
  const src = join(dir, 'range-src');
  writeFileSync(src, bytes);
  chmodSync(src, 0o600);
  // Inside one chunk, across two chunk edges, up to the very end, and empty.
  for (const [start, length] of [
    [512, 1000],
    [(4 << 20) - 7, (4 << 20) + 20],
    [1536, bytes.length - 1536],
    [4096, 0],
  ] as const) {
    const dest = join(dir, `range-${start}-${length}`);
    const got = await copyHashed(src, dest, { start, length });
    const want = bytes.subarray(start, start + length);
    assert.is(got, sha(want), `${start}+${length}`);
    assert.ok(readFileSync(dest).equals(want), `${start}+${length}`);
    assert.is(statSync(dest).mode & 0o777, 0o644);
  }
  try {
    await copyHashed(src, join(dir, 'range-short'), { start: bytes.length - 10, length: 20 });
    assert.unreachable('copied past the end');
  } catch (err) {
    assert.instance(err, DataError);
    assert.match((err as Error).message, `${src}: ends 10 bytes before the data it should hold`);
  }
});

test.run();
