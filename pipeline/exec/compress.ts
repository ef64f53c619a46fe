// Artifact compression: xz or zstd, multithreaded (-T0: one thread per core).
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
