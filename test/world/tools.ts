// Test-side helpers for real tools: fail (never skip) when a tool is missing, run commands.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { which } from '../../pipeline/exec/tools.ts';

/** Fails the test run with an install hint when a tool is missing. */
export function needTool(name: string): string {
  const p = which(name);
  if (!p)
    throw new Error(
      `test needs '${name}', which is not installed: run 'npx rock-image doctor --install test'`,
    );
  return p;
}

export function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
    ...opts,
    env: { ...process.env, ...opts.env },
  });
}

export function shResult(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    ...opts,
    env: { ...process.env, ...opts.env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** One file of an uncompressed (newc) cpio archive, such as the fixture dracut's initramfs. */
export function cpioFile(archive: string, name: string): string {
  needTool('cpio');
  return sh('sh', ['-c', 'cpio -i --quiet --to-stdout "$2" < "$1"', 'sh', archive, name]);
}

/**
 * Mounts the filesystem at byte `offset` (`size` bytes) of an image read-only on `mnt` for `fn`,
 * then lets go of mount and loop device.
 */
export function withImageMount<T>(
  file: string,
  offset: number,
  size: number,
  mnt: string,
  fn: (dir: string) => T,
): T {
  mkdirSync(mnt, { recursive: true });
  const loop = sh('losetup', [
    '--find',
    '--show',
    '--read-only',
    '--offset',
    String(offset),
    '--sizelimit',
    String(size),
    file,
  ]).trim();
  try {
    sh('mount', ['-o', 'ro', loop, mnt]);
    try {
      return fn(mnt);
    } finally {
      sh('umount', [mnt]);
    }
  } finally {
    sh('losetup', ['--detach', loop]);
    rmSync(mnt, { recursive: true, force: true });
  }
}
