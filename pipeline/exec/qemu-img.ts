// qemu-img: converts the raw metal image to the qcow2 of the qemu platform.
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export function qcow2Args(raw: string, out: string): string[] {
  return ['convert', '-f', 'raw', '-O', 'qcow2', raw, out];
}

export async function toQcow2(run: Runner, raw: string, out: string, tag?: string): Promise<void> {
  requireTool('qemu-img');
  await run('qemu-img', qcow2Args(raw, out), { tag });
}

/** `qemu-img info --output=json` of an image. */
export async function imageInfo(
  run: Runner,
  file: string,
): Promise<{ format: string; 'virtual-size': number }> {
  requireTool('qemu-img');
  return JSON.parse((await run('qemu-img', ['info', '--output=json', file])).stdout);
}

/** A qcow2 of `sizeGiB` whose unwritten blocks read from `backing` (which is never written). */
export function overlayArgs(
  backing: string,
  format: 'raw' | 'qcow2',
  out: string,
  sizeGiB: number,
): string[] {
  return ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', format, out, `${sizeGiB}G`];
}

export async function createOverlay(
  run: Runner,
  backing: string,
  format: 'raw' | 'qcow2',
  out: string,
  sizeGiB: number,
  tag?: string,
): Promise<void> {
  requireTool('qemu-img');
  await run('qemu-img', overlayArgs(backing, format, out, sizeGiB), { tag });
}
