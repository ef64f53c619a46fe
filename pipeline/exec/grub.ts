// GRUB: core images made with grub-mkimage (no device probing, so it works on image files and
// loop devices without udev) carrying an embedded early config that finds the `boot`
// filesystem by label and loads its grub2/grub.cfg. BIOS: boot.img goes into the MBR boot code
// and core.img into the BIOS-BOOT partition, patched the way grub-bios-setup patches them.
import { closeSync, existsSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export type GrubTarget = 'i386-pc' | 'x86_64-efi' | 'arm64-efi';

/** Where Debian's grub-pc-bin, grub-efi-amd64-bin and grub-efi-arm64-bin put their modules. */
export const grubModuleDir = (target: GrubTarget) => `/usr/lib/grub/${target}`;

/** Modules every core image needs to find the boot filesystem and run grub.cfg. */
const commonModules = ['search', 'search_label', 'normal', 'configfile', 'linux', 'echo', 'test', 'ls'];

/** Modules built into each core image (everything grub.cfg uses, so nothing is loaded later). */
export const coreModules: Record<GrubTarget, string[]> = {
  'i386-pc': [
    'biosdisk',
    'part_gpt',
    'part_msdos',
    'ext2',
    ...commonModules,
    'serial',
    'terminal',
    'sleep',
    'gzio',
  ],
  'x86_64-efi': [
    'part_gpt',
    'part_msdos',
    'fat',
    'ext2',
    ...commonModules,
    'serial',
    'terminal',
    'efi_gop',
    'all_video',
    'sleep',
    'gzio',
  ],
  'arm64-efi': [
    'part_gpt',
    'part_msdos',
    'fat',
    'ext2',
    ...commonModules,
    'terminal',
    'efi_gop',
    'all_video',
    'sleep',
    'gzio',
  ],
};

export function mkimageArgs(
  target: GrubTarget,
  out: string,
  earlyConfig: string,
  prefix: string,
  moduleDir = grubModuleDir(target),
  extraModules: string[] = [],
): string[] {
  return [
    '-O',
    target,
    '-d',
    moduleDir,
    '-o',
    out,
    '-c',
    earlyConfig,
    '-p',
    prefix,
    ...coreModules[target],
    ...extraModules,
  ];
}

/**
 * The GRUB a disk gets: the image's own when it carries one that reads BLS entries (the
 * `blscfg` command), as Fedora CoreOS disks get the image's GRUB; otherwise the host's, whose
 * menu is rendered from the entries once.
 */
export interface GrubSource {
  origin: 'host' | 'image';
  /** GRUB reads /loader/entries on every boot (upstream 2.14's blsuki module, Fedora's blscfg). */
  blscfg: boolean;
  /** Module directory of a target as the host sees it (copied to /boot/grub2/<target>). */
  moduleDir(target: GrubTarget): string;
  /** Makes a core image (host paths for out and earlyConfig). */
  mkimage(target: GrubTarget, out: string, earlyConfig: string, prefix: string): Promise<void>;
}

export function hostGrub(run: Runner, tag?: string): GrubSource {
  return {
    origin: 'host',
    blscfg: false,
    moduleDir: grubModuleDir,
    mkimage: (target, out, early, prefix) => mkimage(run, target, out, early, prefix, tag),
  };
}

/** Where GRUB's `blscfg` command lives: upstream 2.14's blsuki module, or Fedora's blscfg one. */
export const BLS_MODULES = ['blsuki', 'blscfg'];

/**
 * The image's GRUB, when the unpacked tree `tree` has grub-mkimage (or grub2-mkimage) and, for
 * every target, a module directory with a BLS module; run inside `root` (toolroot.ts), with
 * `at` translating host paths that are bound into it. Undefined otherwise.
 */
export function imageGrub(
  tree: string,
  targets: GrubTarget[],
  root: { run: Runner; path(hostPath: string): string },
  tag?: string,
): GrubSource | undefined {
  const found = imageGrubTool(tree, targets);
  if (!found) return undefined;
  return {
    origin: 'image',
    blscfg: true,
    moduleDir: (t) => `${tree}/usr/lib/grub/${t}`,
    mkimage: async (target, out, early, prefix) => {
      await root.run(
        found.tool,
        mkimageArgs(target, root.path(out), root.path(early), prefix, `/usr/lib/grub/${target}`, [
          found.bls[target]!,
        ]),
        { tag },
      );
    },
  };
}

/**
 * What makes an unpacked tree's GRUB usable (see imageGrub): its grub-mkimage (path inside the
 * tree) and each target's BLS module; undefined when it lacks either.
 */
export function imageGrubTool(
  tree: string,
  targets: GrubTarget[],
): { tool: string; bls: Partial<Record<GrubTarget, string>> } | undefined {
  const tool = ['usr/bin/grub-mkimage', 'usr/bin/grub2-mkimage'].find((t) => existsSync(`${tree}/${t}`));
  const bls: Partial<Record<GrubTarget, string>> = {};
  for (const t of targets) {
    const m = BLS_MODULES.find((m) => existsSync(`${tree}/usr/lib/grub/${t}/${m}.mod`));
    if (!m) return undefined;
    bls[t] = m;
  }
  return tool ? { tool: `/${tool}`, bls } : undefined;
}

export async function mkimage(
  run: Runner,
  target: GrubTarget,
  out: string,
  earlyConfig: string,
  prefix: string,
  tag?: string,
) {
  requireTool('grub-mkimage');
  await run('grub-mkimage', mkimageArgs(target, out, earlyConfig, prefix), { tag });
}

const SECTOR = 512;
/** boot.img: the 8-byte LBA of core.img's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR). */
const KERNEL_SECTOR_OFFSET = 0x5c;
/** MBR boot code ends where the disk signature and partition table begin. */
const BOOT_CODE_END = 440;
/** diskboot.img (core.img's first sector): the first blocklist entry sits 12 bytes from its end. */
const BLOCKLIST_OFFSET = SECTOR - 12;
/** Real-mode segment where the rest of core.img is loaded (0x800 + one sector). */
const CORE_SEGMENT = 0x820;

/**
 * Installs GRUB for BIOS boot into a GPT disk image: boot.img's code into the MBR (keeping the
 * protective MBR's partition table), core.img into the BIOS-BOOT partition at `coreLba`.
 */
export function installBios(
  disk: string,
  coreImg: string,
  coreLba: number,
  coreMaxSectors: number,
  bootImg = `${grubModuleDir('i386-pc')}/boot.img`,
): void {
  const boot = readFileSync(bootImg);
  const raw = readFileSync(coreImg);
  const sectors = Math.ceil(raw.length / SECTOR);
  if (sectors > coreMaxSectors)
    throw new Error(`core.img needs ${sectors} sectors, the BIOS-BOOT partition has ${coreMaxSectors}`);
  const core = Buffer.alloc(sectors * SECTOR);
  raw.copy(core);
  core.writeBigUInt64LE(BigInt(coreLba + 1), BLOCKLIST_OFFSET);
  core.writeUInt16LE(sectors - 1, BLOCKLIST_OFFSET + 8);
  core.writeUInt16LE(CORE_SEGMENT, BLOCKLIST_OFFSET + 10);
  const fd = openSync(disk, 'r+');
  try {
    const mbr = Buffer.alloc(SECTOR);
    readSync(fd, mbr, 0, SECTOR, 0);
    if (mbr.readUInt16LE(510) !== 0xaa55)
      throw new Error(`${disk} has no protective MBR (partition it first)`);
    boot.copy(mbr, 0, 0, BOOT_CODE_END);
    mbr.writeBigUInt64LE(BigInt(coreLba), KERNEL_SECTOR_OFFSET);
    writeSync(fd, mbr, 0, SECTOR, 0);
    writeSync(fd, core, 0, core.length, coreLba * SECTOR);
  } finally {
    closeSync(fd);
  }
}

/** Modules of the GRUB network image UEFI PXE loads (boot tests: everything over TFTP). */
export const netbootModules = [
  'efinet',
  'tftp',
  'net',
  'normal',
  'configfile',
  'linux',
  'echo',
  'test',
  'sleep',
  'gzio',
];

export function netbootArgs(
  target: 'x86_64-efi' | 'arm64-efi',
  out: string,
  earlyConfig: string,
  prefix: string,
): string[] {
  return [
    '-O',
    target,
    '-d',
    grubModuleDir(target),
    '-o',
    out,
    '-c',
    earlyConfig,
    '-p',
    prefix,
    ...netbootModules,
  ];
}

/** A GRUB EFI image for network boot, with `earlyConfig` embedded and no modules loaded later. */
export async function mkNetbootImage(
  run: Runner,
  target: 'x86_64-efi' | 'arm64-efi',
  out: string,
  earlyConfig: string,
  prefix: string,
  tag?: string,
) {
  requireTool('grub-mkimage');
  await run('grub-mkimage', netbootArgs(target, out, earlyConfig, prefix), { tag });
}
