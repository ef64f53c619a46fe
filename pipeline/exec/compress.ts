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
