// Reading a mounted image root from the host: symlinks are resolved inside the root (as a
// chroot would), never against the host's own filesystem.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';

/** Resolves `path` (absolute, in the image) to a host path, following links inside `root`. */
export function resolveInRoot(root: string, path: string, depth = 0): string | undefined {
  if (depth > 40) return undefined;
  const parts = path.split('/').filter(Boolean);
  let current = '/';
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(current, parts[i]!);
    const host = join(root, next);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(host);
      const abs = target.startsWith('/') ? target : posix.join(current, target);
      const rest = parts.slice(i + 1).join('/');
      return resolveInRoot(root, rest ? `${abs}/${rest}` : abs, depth + 1);
    }
    current = next;
  }
  return join(root, current);
}

export function readInRoot(root: string, path: string): string | undefined {
  const p = resolveInRoot(root, path);
  return p && existsSync(p) && lstatSync(p).isFile() ? readFileSync(p, 'utf8') : undefined;
}

export function hasExecutable(root: string, name: string): boolean {
  return ['/usr/bin', '/usr/sbin'].some((d) => {
    const p = resolveInRoot(root, `${d}/${name}`);
    return p !== undefined && existsSync(p) && (lstatSync(p).mode & 0o111) !== 0;
  });
}

/** Every path under `dir` (absolute, in the image), not following links. */
export function listTree(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(root, rel)).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = `${rel}/${n}`;
      out.push(p);
      if (lstatSync(join(root, p)).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** Kernel versions: /usr/lib/modules/<kver>/ directories holding a vmlinuz. */
export function kernelVersions(root: string): string[] {
  const dir = resolveInRoot(root, '/usr/lib/modules');
  if (!dir || !existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((k) => existsSync(join(dir, k, 'vmlinuz')))
    .sort();
}
