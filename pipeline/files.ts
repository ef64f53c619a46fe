// File helpers every stage shares: atomic writes, streamed sha256, canonical JSON.
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DataError } from './errors.ts';

/**
 * Removes the temporaries a killed process left for `path` (`.<name>.tmp-<pid>` beside it, as
 * writeAtomic and publish's copies name them) whose process is gone; a live one's are left alone.
 * A partial copy of a disk image can be gigabytes.
 */
export function removeStaleTemps(path: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) return;
  const prefix = `.${basename(path)}.tmp-`;
  for (const name of readdirSync(dir)) {
    const pid = name.startsWith(prefix) ? name.slice(prefix.length) : '';
    if (/^\d+$/.test(pid) && !existsSync(`/proc/${pid}`)) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Writes `bytes` to `path` so that a reader sees the old file or the whole new one, also after a
 * crash: a temp file in the same directory, fsync, rename over the path, fsync of the directory.
 * Parent directories are created.
 */
export function writeAtomic(path: string, bytes: string | Uint8Array, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w', mode);
  try {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** The sha256 of bytes in memory, lowercase hex (the sha256 of a file: sha256File). */
export const sha256Hex = (data: string | Uint8Array): string =>
  createHash('sha256').update(data).digest('hex');

/**
 * sha256 of a file, hex, read in 1 MiB chunks (memory does not grow with the file). `fd`: an
 * already open descriptor of it (closed at the end), so the file may be removed meanwhile.
 */
export async function sha256File(path: string, fd?: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { fd, highWaterMark: 1 << 20 })) h.update(chunk);
  return h.digest('hex');
}

/**
 * Copies `src` to a new file `dest` (which must not exist; created with src's mode) and returns
 * the sha256 (hex) of the bytes written: one read of src, where copy-then-sha256File reads it
 * twice. The hash of one 4 MiB chunk runs while the next is read and the last written. With
 * `range`, only `length` bytes from `start` are copied (a member of a tar archive), into a file
 * of mode 0644; a source that ends before them is an error.
 */
export async function copyHashed(
  src: string,
  dest: string,
  range?: { start: number; length: number },
): Promise<string> {
  const h = createHash('sha256');
  const from = await open(src, 'r');
  try {
    const to = await open(dest, 'wx', range ? 0o644 : (await from.stat()).mode & 0o7777);
    try {
      const size = 4 << 20;
      const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
      const end = range ? range.start + range.length : Number.POSITIVE_INFINITY;
      let pos = range?.start ?? 0; // where the next read starts: after the bytes read so far
      const readAt = (buf: Buffer) => from.read(buf, 0, Math.min(size, end - pos), pos);
      let i = 0;
      let reading = readAt(bufs[0]!);
      let writing: Promise<unknown> = Promise.resolve();
      for (;;) {
        const { bytesRead, buffer } = await reading;
        if (bytesRead === 0) break;
        pos += bytesRead;
        await writing; // the other buffer is free again
        i ^= 1;
        reading = readAt(bufs[i]!);
        const chunk = buffer.subarray(0, bytesRead);
        h.update(chunk);
        writing = writeAll(to, chunk);
        // Awaited in turn; until then a failure must not count as unhandled.
        for (const p of [reading, writing]) p.catch(() => {});
      }
      await writing;
      if (range && pos < end)
        throw new DataError(`${src}: ends ${end - pos} bytes before the data it should hold`);
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
  return h.digest('hex');
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

/** Object keys in UTF-16 code-unit order, the same on every machine (no locale). */
const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** `v` with every object's keys sorted (code-unit order), arrays kept in order. */
export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort(byCodeUnit)
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** JSON with sorted keys and no whitespace: the form hashed for input hashes and compared for changes. */
export const canonicalJson = (v: unknown): string => JSON.stringify(sortKeys(v));
