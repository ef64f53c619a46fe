// Loop devices and mounts: the native backend assembles the root and boot filesystems of a disk
// image through loop devices on byte ranges of the image file (no partition scanning, so no
// udev is needed), mounts them, and always lets go of them again.
import { existsSync, readFileSync } from 'node:fs';
import { PipelineError } from '../errors.ts';
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export interface LoopDevice {
  dev: string;
  detach(): Promise<void>;
}

/** Attaches `file[offset, offset+size)` (bytes) to a free loop device. */
export async function attachRange(
  run: Runner,
  file: string,
  offset: number,
  size: number,
  tag?: string,
): Promise<LoopDevice> {
  requireTool('losetup');
  const { stdout } = await run(
    'losetup',
    ['--find', '--show', '--offset', String(offset), '--sizelimit', String(size), file],
    { tag },
  );
  const dev = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed '${dev}', not a loop device`);
  let attached = true;
  return {
    dev,
    async detach() {
      if (!attached) return;
      attached = false;
      await run('losetup', ['--detach', dev], { tag });
    },
  };
}

export interface Mounted {
  dir: string;
  unmount(): Promise<void>;
}

export async function mount(
  run: Runner,
  dev: string,
  dir: string,
  tag?: string,
  options: string[] = [],
): Promise<Mounted> {
  await run('mount', [...(options.length ? ['-o', options.join(',')] : []), dev, dir], { tag });
  let mounted = true;
  return {
    dir,
    async unmount() {
      if (!mounted) return;
      mounted = false;
      await run('umount', [dir], { tag });
    },
  };
}

/** Mount points at or under `dir` (from /proc/self/mountinfo; octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const text = existsSync('/proc/self/mountinfo') ? readFileSync('/proc/self/mountinfo', 'utf8') : '';
  return text
    .split('\n')
    .map((l) =>
      l.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8))),
    )
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(`${dir}/`)));
}

/**
 * Waits (up to `timeoutMs`) until detached loop device `dev` is really gone: `losetup --detach`
 * of a device something still holds open only marks it autoclear (losetup(8) --detach; the kernel
 * keeps /sys/block/loopN/loop until the last close). A moment's hold is udev's probe; a longer one
 * is a copy of its filesystem's mount in another mount namespace (mount-namespace.ts), which
 * keeps that filesystem alive with its last writes not on the image: refused, naming the device.
 */
export async function waitLoopReleased(dev: string, timeoutMs = 10_000): Promise<void> {
  const sys = `/sys/block/${dev.replace(/^\/dev\//, '')}/loop`;
  const until = Date.now() + timeoutMs;
  while (existsSync(sys)) {
    if (Date.now() >= until) {
      const file = readFileSync(`${sys}/backing_file`, 'utf8').trim();
      throw new PipelineError(
        `${dev} (on ${file}) is still held ${timeoutMs / 1000} s after its filesystem was unmounted and it was detached: a mount namespace made while it was mounted keeps a copy of the mount, so the filesystem is still open and its last writes may not be in ${file}; not going on with it (find the holder with: grep ${dev.replace(/^\/dev\//, '')} /proc/*/mountinfo)`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
