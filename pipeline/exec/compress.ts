// Artifact compression: xz or zstd, multithreaded (-T0: one thread per core).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export type Compression = 'xz' | 'zstd';

export const compressedSuffix: Record<Compression, string> = { xz: '.xz', zstd: '.zst' };

/** Arguments that compress `file` to `file + suffix`; `keep` leaves the input in place. */
export function compressArgs(kind: Compression, file: string, keep: boolean): string[] {
  if (kind === 'xz') return ['-T0', '--force', ...(keep ? ['--keep'] : []), file];
  return ['-T0', '--force', '--quiet', ...(keep ? [] : ['--rm']), file, '-o', `${file}.zst`];
}

/** Compresses `file` and returns the compressed file's path. */
export async function compressFile(
  run: Runner,
  kind: Compression,
  file: string,
  opts: { keep?: boolean; tag?: string } = {},
): Promise<string> {
  requireTool(kind);
  await run(kind, compressArgs(kind, file, opts.keep ?? false), { tag: opts.tag });
  return `${file}${compressedSuffix[kind]}`;
}

/** Arguments that decompress `file` (kept) to `out`. */
export function decompressArgs(kind: Compression, file: string, out: string): string[] {
  return kind === 'xz'
    ? ['-T0', '--decompress', '--keep', '--stdout', file]
    : ['-T0', '--decompress', '--quiet', '--force', file, '-o', out];
}

/** Decompresses `file` to `out` (the input stays). xz writes to stdout, which goes to `out`. */
export async function decompressFile(
  run: Runner,
  kind: Compression,
  file: string,
  out: string,
  tag?: string,
): Promise<void> {
  requireTool(kind);
  if (kind === 'zstd') {
    await run('zstd', decompressArgs(kind, file, out), { tag });
    return;
  }
  await run('sh', ['-c', 'exec xz "$@" > "$0"', out, ...decompressArgs(kind, file, out)], { tag });
}

/** What `compressConsuming` read and wrote. */
export interface Consumed {
  /** The compressed file. */
  path: string;
  /** sha256 (hex) and size of the input, as read. */
  sha256: string;
  size: number;
}

const CHUNK = 4 << 20;

/** Until `stdin` takes more; throws if it closes first (the command stopped reading). */
async function drained(stdin: Writable): Promise<void> {
  if (stdin.destroyed || stdin.writableEnded) throw new Error('the command stopped reading its input');
  const ac = new AbortController();
  try {
    await Promise.race([
      once(stdin, 'drain', { signal: ac.signal }),
      once(stdin, 'close', { signal: ac.signal }).then(() => {
        throw new Error('the command stopped reading its input');
      }),
    ]);
  } finally {
    ac.abort();
  }
}
/** Bytes read between two hole punches: 64 punches for a 16 GiB disk. */
const PUNCH_EVERY = 256 << 20;

/**
 * Compresses `file` to `file + suffix` through a pipe, giving its blocks back as it goes: the
 * bytes are read here (hashed on the way: the uncompressed sha256), written to the compressor's
 * stdin, and every 256 MiB already read (`punchEvery`) are punched out of `file` (fallocate(1) --punch-hole,
 * which deallocates the range and keeps the size), so the input and the output together never
 * take much more disk than the input alone. The input is removed at the end. Where the
 * filesystem cannot punch holes, the input just stays whole until then.
 */
export async function compressConsuming(
  run: Runner,
  kind: Compression,
  file: string,
  opts: { tag?: string; punchEvery?: number } = {},
): Promise<Consumed> {
  const { tag, punchEvery = PUNCH_EVERY } = opts;
  requireTool(kind);
  requireTool('fallocate');
  const out = `${file}${compressedSuffix[kind]}`;
  const size = statSync(file).size;
  const hash = createHash('sha256');
  // zstd reads stdin with `-` and is told the size (zstd(1) --stream-size), so the frame records
  // it as a file's would; xz writes to stdout, which goes to `out`.
  const [cmd, args] =
    kind === 'zstd'
      ? ['zstd', ['-T0', '--quiet', '--force', `--stream-size=${size}`, '-', '-o', out]]
      : ['sh', ['-c', 'exec xz -T0 -c > "$0"', out]];
  const fh = await open(file, 'r');
  try {
    await run(cmd, args, {
      tag,
      feed: async (stdin) => {
        let at = 0;
        let punched = 0;
        let punching = true;
        for (;;) {
          const buf = Buffer.allocUnsafe(CHUNK);
          const { bytesRead: n } = await fh.read(buf, 0, CHUNK, at);
          if (n === 0) break;
          const chunk = buf.subarray(0, n);
          hash.update(chunk);
          at += n;
          if (!stdin.write(chunk)) await drained(stdin);
          if (punching && at - punched >= punchEvery) {
            const r = await run(
              'fallocate',
              ['--punch-hole', '--offset', String(punched), '--length', String(at - punched), file],
              { tag, allowFailure: true },
            );
            punching = r.exitCode === 0;
            punched = at;
          }
        }
        if (at !== size) throw new Error(`${file}: read ${at} bytes, expected ${size}`);
      },
    });
  } finally {
    await fh.close();
  }
  rmSync(file, { force: true });
  return { path: out, sha256: hash.digest('hex'), size };
}
