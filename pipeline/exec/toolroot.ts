// The image's own tools, run from its unpacked tree: a writable overlay over the tree (the tree
// itself is never changed), /proc, /sys and /dev bound in, host directories bound at
// /run/rock-image/<name>, commands run with chroot. This is how the native backend deploys with
// the image's ostree and builds the bootloader with the image's GRUB, as `bootc install` uses
// the image's own tools on Fedora CoreOS (the host's tools may be older: Debian 12's ostree
// 2022.7 cannot write composefs deployments). A tree of another architecture runs through
// qemu-user registered with binfmt_misc (the `F` flag makes it work inside the chroot).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner, RunOptions, RunResult } from './run.ts';
import { requireTool } from './tools.ts';

export interface ToolRoot {
  /** The mounted root (overlay over the tree). */
  root: string;
  /** True when `path` (absolute, inside the tree) exists. */
  has(path: string): boolean;
  /** Binds `hostDir` (recursively, so mounts under it come along) at /run/rock-image/<name>;
   * returns the path inside the root. */
  bind(hostDir: string, name: string): Promise<string>;
  /** The path inside the root of a host path under a bound directory. */
  path(hostPath: string): string;
  /** Runs `cmd` inside the root (chroot). */
  run: Runner;
  /** Unmounts everything; safe to call twice. */
  release(): Promise<void>;
}

/** Where host directories are bound inside a tool root (`/run/rock-image/<name>`). */
export const TOOLROOT_BINDS = '/run/rock-image';

/** The mount commands of a tool root, pure (the native backend's plan prints them). */
export const toolRootArgs = {
  /** The writable overlay over `tree` at `scratch`/root. */
  overlay: (tree: string, scratch: string) => [
    '-t',
    'overlay',
    'rock-image-toolroot',
    '-o',
    `lowerdir=${tree},upperdir=${join(scratch, 'upper')},workdir=${join(scratch, 'work')}`,
    join(scratch, 'root'),
  ],
  /** A recursive bind of `from` at `to`, then made a slave (unmounts inside stay inside). */
  bind: (from: string, to: string) => [
    ['--rbind', from, to],
    ['--make-rslave', to],
  ],
  release: (root: string) => ['--recursive', root],
};

/**
 * Opens a tool root over `tree` using `scratch` (a directory of its own) for the overlay's
 * upper and work directories. Call release() in a finally.
 */
export async function openToolRoot(
  run: Runner,
  tree: string,
  scratch: string,
  tag?: string,
): Promise<ToolRoot> {
  requireTool('chroot');
  const root = join(scratch, 'root');
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(scratch, d), { recursive: true });
  await run('mount', toolRootArgs.overlay(tree, scratch), { tag });
  let open = true;
  const release = async () => {
    if (!open) return;
    open = false;
    await run('umount', toolRootArgs.release(root), { tag });
  };
  try {
    for (const fs of ['proc', 'sys', 'dev']) {
      mkdirSync(join(root, fs), { recursive: true });
      for (const a of toolRootArgs.bind(`/${fs}`, join(root, fs))) await run('mount', a, { tag });
    }
  } catch (err) {
    await release().catch(() => undefined);
    throw err;
  }
  const binds: [string, string][] = [];
  return {
    root,
    has: (path) => existsSync(join(tree, path)),
    async bind(hostDir, name) {
      const inner = `${TOOLROOT_BINDS}/${name}`;
      mkdirSync(join(root, inner), { recursive: true });
      for (const a of toolRootArgs.bind(hostDir, join(root, inner))) await run('mount', a, { tag });
      binds.push([hostDir, inner]);
      return inner;
    },
    path(hostPath) {
      for (const [host, inner] of binds)
        if (hostPath === host || hostPath.startsWith(`${host}/`)) return inner + hostPath.slice(host.length);
      throw new Error(`${hostPath} is not under a directory bound into the tool root`);
    },
    run: (cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> =>
      run('chroot', [root, cmd, ...args], { tag, ...opts }),
    release,
  };
}
