// pipeline/files.ts copyHashed: the bytes written are the bytes hashed, in one read of the source.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
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

test.run();
