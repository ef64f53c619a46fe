// Filesystem makers: mkfs.vfat + mtools for the EFI system partition (this host has no vfat
// module, so FAT is never mounted), mkfs.ext4 for boot, mkfs.xfs for root, mksquashfs for the
// live rootfs of PXE and cpio for the live initramfs's stamp.
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export async function mkfsVfat(run: Runner, file: string, label: string, volumeId: string, tag?: string) {
  requireTool('mkfs.vfat');
  await run('mkfs.vfat', ['-F', '32', '-n', label, '-i', volumeId, file], { tag });
}

/**
 * mkfs.ext4 for the boot filesystem. `metadata_csum_seed` as Fedora CoreOS's (coreos-assembler
 * src/osbuild-manifests/build.raw-image.ipp.yaml:38-58 @05db482e): the first boot can then give
 * the filesystem a new UUID (tune2fs -U random) without rewriting every checksum. A
 * deterministic hash seed and no lazy init: the filesystem is complete when mkfs returns.
 */
export function mkfsExt4Args(dev: string, label: string, uuid: string): string[] {
  return [
    '-q',
    '-F',
    '-L',
    label,
    '-U',
    uuid,
    '-O',
    'metadata_csum_seed',
    '-E',
    `hash_seed=${uuid},lazy_itable_init=0,lazy_journal_init=0`,
    dev,
  ];
}

export async function mkfsExt4(run: Runner, dev: string, label: string, uuid: string, tag?: string) {
  requireTool('mkfs.ext4');
  await run('mkfs.ext4', mkfsExt4Args(dev, label, uuid), { tag });
}

/** mkfs.xfs for the root filesystem, with its label and UUID. */
export function mkfsXfsArgs(dev: string, label: string, uuid: string): string[] {
  return ['-q', '-f', '-L', label, '-m', `uuid=${uuid}`, dev];
}

export async function mkfsXfs(run: Runner, dev: string, label: string, uuid: string, tag?: string) {
  requireTool('mkfs.xfs');
  await run('mkfs.xfs', mkfsXfsArgs(dev, label, uuid), { tag });
}

/** Creates directories in a FAT image (mtools `mmd`), parents first. */
export async function fatMkdirs(run: Runner, image: string, dirs: string[], tag?: string) {
  requireTool('mmd');
  for (const d of dirs) await run('mmd', ['-i', image, `::${d}`], { tag });
}

/** Copies a host file into a FAT image (mtools `mcopy`). */
export async function fatCopy(run: Runner, image: string, src: string, dest: string, tag?: string) {
  requireTool('mcopy');
  await run('mcopy', ['-o', '-i', image, src, `::${dest}`], { tag });
}

/**
 * zstd level of the PXE rootfs squashfs. mksquashfs's own default is 15 (squashfs-tools
 * squashfs-tools/zstd_wrapper.h:37, `-Xcompression-level` parsed at zstd_wrapper.c:50-80
 * @db038ef2; Debian's 4.5.1 `mksquashfs -help` says the same): on the FCOS-sized bench tree that
 * costs more than all the other artifact work together, while level 3 is a fraction of the time
 * for a slightly larger file (figures in README, "Speed at real size").
 */
export const SQUASHFS_ZSTD_LEVEL = 3;

/**
 * mksquashfs's arguments: a zstd squashfs of `dir`, leaving out the listed top-level names.
 * `offset` (default 0): the squashfs starts that many bytes into `out` (`-offset`, squashfs-tools
 * 4.4 and later; the bytes before it are left as they are, a hole in a new file), so that it can
 * be written where an archive's entry holds it (artifacts/newc.ts).
 */
export function mksquashfsArgs(dir: string, out: string, exclude: string[], offset = 0): string[] {
  return [
    dir,
    out,
    '-noappend',
    '-comp',
    'zstd',
    '-Xcompression-level',
    String(SQUASHFS_ZSTD_LEVEL),
    '-no-progress',
    ...(offset ? ['-offset', String(offset)] : []),
    ...(exclude.length ? ['-e', ...exclude] : []),
  ];
}

/** A squashfs of `dir` (zstd), leaving out the listed top-level names. */
export async function mksquashfs(run: Runner, dir: string, out: string, exclude: string[], tag?: string) {
  requireTool('mksquashfs');
  await run('mksquashfs', mksquashfsArgs(dir, out, exclude), { tag, env: { SOURCE_DATE_EPOCH: '0' } });
}

/** cpio's arguments for a newc archive (the file names come on its standard input). */
export function cpioNewcArgs(out: string): string[] {
  return ['--create', '--format=newc', '--owner=0:0', '--reproducible', '--quiet', '-O', out];
}

/** A newc cpio archive of files named relative to `dir` (what the kernel unpacks as an initrd). */
export async function cpioNewc(run: Runner, dir: string, names: string[], out: string, tag?: string) {
  requireTool('cpio');
  await run('cpio', cpioNewcArgs(out), {
    cwd: dir,
    input: `${names.join('\n')}\n`,
    tag,
  });
}
