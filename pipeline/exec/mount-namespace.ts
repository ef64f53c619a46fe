// The artifacts run mounts the disk image's filesystems (loop devices) and must be the only
// holder of those mounts. On a host whose root mount is private (no systemd as PID 1: containers,
// this project's own machines), every mount namespace another process creates while a
// filesystem is mounted keeps a private copy of that mount, and a later umount here does not
// reach it (mount_namespaces(7), "Shared subtrees"): buildah's chroot isolation unshares one per
// RUN step (containers/buildah chroot/run_linux.go:77 @v1.28.2), libostree has an API that makes
// one (ostree_sysroot_initialize_with_mount_namespace), util-linux unshare(1) makes private ones. The filesystem then stays alive: umount succeeds, nothing is
// flushed, `losetup --detach` only marks the device autoclear, and a new loop device on the same
// bytes shows it without its last writes (files missing or empty: test/exec/mount-namespace.test.ts
// shows it with the real kernel). So the run re-executes itself in a mount namespace of its own,
// where nothing outside sees its mounts, with shared propagation inside it (new peer groups) so
// that copies its own children make (ostree's) and leave slave or shared are reached by its
// umounts; a copy one of them makes private is caught by losetup.ts waitLoopReleased.
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { requireTool } from './tools.ts';

/** Set in the re-executed process's environment. */
export const MOUNT_NS_ENV = 'ROCK_IMAGE_MOUNT_NS';

/** Whether `rock-image <name> <rest>` mounts filesystems: the artifacts it makes do, as root. */
export function mountsFilesystems(name: string, rest: string[]): boolean {
  if (rest.includes('-h') || rest.includes('--help') || rest.includes('--print-only')) return false;
  return name === 'artifacts' || (name === 'build' && rest.includes('--artifacts'));
}

/**
 * The unshare(1) arguments that run `argv` in a mount namespace of its own (see the top): every
 * mount made private first, which cuts it off from the host's peer groups (on a systemd host
 * "/" is shared, and `--propagation shared` alone would keep the new namespace's mounts peers of
 * the host's), then "/" made shared again, recursively, in new peer groups of its own.
 */
export const unshareArgs = (argv: string[]) => [
  '--mount',
  '--propagation',
  'private',
  '--',
  'sh',
  '-c',
  'mount --make-rshared / && exec "$@"',
  'sh',
  ...argv,
];

/** This process's mount namespace (`mnt:[inode]`), as the artifacts log records it. */
export const mountNamespace = (): string => readlinkSync('/proc/self/ns/mnt');

/**
 * Runs `node bin argv` again under unshare(1) in a namespace of its own, forwarding SIGINT and
 * SIGTERM; resolves to its exit code. When it ends, the namespace and any mount left in it go.
 * Killed outright (SIGKILL, which cannot be forwarded), this process takes the new one with it:
 * setpriv(1) --pdeathsig gives it SIGTERM when its parent dies (prctl(2) PR_SET_PDEATHSIG), a
 * setting execve keeps for binaries that are not set-user-ID and have no file capabilities
 * (unshare, sh and node here), so it stops as on a forwarded SIGTERM.
 */
export function reexecInMountNamespace(bin: string, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const unshare = requireTool('unshare');
  const setpriv = requireTool('setpriv');
  const args = unshareArgs([process.execPath, bin, ...argv]);
  const child = spawn(setpriv, ['--pdeathsig', 'TERM', '--', unshare, ...args], {
    stdio: 'inherit',
    env: { ...env, [MOUNT_NS_ENV]: mountNamespace() },
  });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal === 'SIGINT' ? 130 : 143));
    });
  });
}
