import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex } from '../files.ts';

export interface IndexEntry {
  /** Path relative to the overlay root, '/'-separated, no leading slash. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Normalised permission bits: 0o755 for dirs and executables, else 0o644. */
  mode: number;
  sha256?: string;
  target?: string;
}

export interface OverlayIndex {
  name: string;
  dir: string;
  entries: IndexEntry[];
}

/** Reads an overlay directory into a sorted index (the only I/O in planning inputs). */
export function indexOverlay(name: string, dir: string): OverlayIndex {
  const entries: IndexEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(dir, path);
      const st = lstatSync(full);
      // Git keeps only the exec bit, so modes are normalised for reproducible layers.
      const mode = st.isDirectory() || st.mode & 0o111 ? 0o755 : 0o644;
      if (st.isSymbolicLink())
        entries.push({ path, type: 'symlink', mode: 0o777, target: readlinkSync(full) });
      else if (st.isDirectory()) {
        entries.push({ path, type: 'dir', mode });
        walk(path);
      } else if (st.isFile()) {
        const sha256 = sha256Hex(readFileSync(full));
        entries.push({ path, type: 'file', mode, sha256 });
      }
    }
  };
  walk('');
  return { name, dir, entries };
}
