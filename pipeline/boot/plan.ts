// Boot tests (`rock-image test`), pure planning: which cases boot which artifact of a build,
// how each artifact is staged for QEMU (decompressed, served over TFTP, concatenated) and the
// exact VmSpec of every case. No I/O and no clock here: pipeline/boot/run.ts applies the plan.
//
// Cases (the project's kola matrix):
// - x86_64 metal-bios: metal raw, SeaBIOS -> GRUB core.img in BIOS-BOOT -> grub.cfg on `boot`;
// - x86_64 metal-uefi: metal raw, OVMF from flash -> EFI/BOOT/BOOTX64.EFI on the ESP;
// - x86_64 qemu: the qcow2 image, SeaBIOS;
// - x86_64 pxe: a real network boot: SeaBIOS runs iPXE from the NIC's option ROM, which gets
//   DHCP and the boot file from QEMU's user network, runs the build's iPXE script (only its
//   `set base-url` pointed at QEMU's TFTP server) and fetches kernel and initramfs over TFTP; the
//   initramfs fetches the rootfs from coreos.live.rootfs_url;
// - aarch64 metal-uefi / qemu: AAVMF from flash -> EFI/BOOT/BOOTAA64.EFI;
// - aarch64 pxe: a real network boot: AAVMF's UEFI PXE fetches a GRUB network image over TFTP,
//   which reads the build's GRUB snippet (only the rootfs URL pointed at QEMU's TFTP server);
// - both pxe-direct: the fallback without firmware: kernel and initramfs with the rootfs
//   appended (formats.md §7's other way), kernel arguments from the build's iPXE script.
// Disks are attached with snapshot=on: a boot never changes the artifact.
import { join } from 'node:path';
import { EDK2_PFLASH, type VmArch, type VmSpec } from '../exec/qemu.ts';

export type BootArch = VmArch;

export interface BootCase {
  /** Unique per arch; also the console log's name (boot/<id>.log). */
  id: string;
  arch: BootArch;
  /** meta.json image keys the case boots. */
  images: string[];
  firmware: VmSpec['firmware'];
  /** How the first kernel is reached. */
  via: 'disk' | 'ipxe' | 'grub-net' | 'direct';
  summary: string;
}

export const bootCases: BootCase[] = [
  {
    id: 'metal-bios',
    arch: 'x86_64',
    images: ['metal'],
    firmware: 'bios',
    via: 'disk',
    summary: 'metal raw, SeaBIOS, GRUB from BIOS-BOOT',
  },
  {
    id: 'metal-uefi',
    arch: 'x86_64',
    images: ['metal'],
    firmware: 'uefi',
    via: 'disk',
    summary: 'metal raw, OVMF (pflash), GRUB from the ESP',
  },
  {
    id: 'qemu',
    arch: 'x86_64',
    images: ['qemu'],
    firmware: 'bios',
    via: 'disk',
    summary: 'qemu qcow2, SeaBIOS',
  },
  {
    id: 'pxe',
    arch: 'x86_64',
    images: ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-ipxe'],
    firmware: 'bios',
    via: 'ipxe',
    summary: 'network boot: iPXE option ROM, the build iPXE script, TFTP, rootfs_url',
  },
  {
    id: 'pxe-direct',
    arch: 'x86_64',
    images: ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-ipxe'],
    firmware: 'direct',
    via: 'direct',
    summary: 'PXE files without firmware: -kernel, -initrd with the rootfs appended',
  },
  {
    id: 'metal-uefi',
    arch: 'aarch64',
    images: ['metal'],
    firmware: 'uefi',
    via: 'disk',
    summary: 'metal raw, AAVMF (pflash), GRUB from the ESP',
  },
  {
    id: 'qemu',
    arch: 'aarch64',
    images: ['qemu'],
    firmware: 'uefi',
    via: 'disk',
    summary: 'qemu qcow2, AAVMF (pflash)',
  },
  {
    id: 'pxe',
    arch: 'aarch64',
    images: ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-grub'],
    firmware: 'uefi',
    via: 'grub-net',
    summary: 'network boot: UEFI PXE, GRUB over TFTP, the build GRUB snippet, rootfs_url',
  },
  {
    id: 'pxe-direct',
    arch: 'aarch64',
    images: ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-ipxe'],
    firmware: 'direct',
    via: 'direct',
    summary: 'PXE files without firmware: -kernel, -initrd with the rootfs appended',
  },
];

/** QEMU's user-mode network: the host (and its TFTP server) as the guest sees it. */
export const QEMU_USER_HOST = '10.0.2.2';
export const TFTP_BASE = `tftp://${QEMU_USER_HOST}`;
/** The GRUB network image AAVMF loads by UEFI PXE. */
export const GRUB_NET_IMAGE = 'grubnetaa64.efi';

/** Default success marker; `{version}` is replaced by the build version. */
export const DEFAULT_MARKER = 'ROCKNSM-BOOT-OK VARIANT_ID=rocknsm VERSION={version}';

/**
 * What ends a boot as failed at once: the image's boot report naming failed units, the boot-test
 * init's failure line, systemd's and dracut's emergency shells, a kernel panic, and GRUB's own
 * prompts, which it shows only when its configuration found nothing to boot and which nobody
 * answers on a test console ("grub>", normal mode: rhboot/grub2 grub-core/normal/main.c:525;
 * "grub rescue>", no normal module: grub-core/kern/rescue_reader.c:40; @5e9e7e44e).
 */
export const FAIL_MARKERS = [
  'ROCKNSM-BOOT-FAIL',
  'You are in emergency mode',
  'Entering emergency mode',
  'Kernel panic - not syncing',
  'grub>',
  'grub rescue>',
];

/** Seconds before a case is killed, by arch (TCG on 2 busy cores; aarch64 emulation is slower).
 * A real image's first boot runs Ignition, makes the data filesystems and starts the services. */
export const DEFAULT_TIMEOUT: Record<BootArch, number> = { x86_64: 600, aarch64: 1200 };

/**
 * Disk cases boot a copy-on-write overlay of this many GiB over the artifact: the artifact never
 * changes, and the first boot finds the room the image's base profile lays out (the default
 * profile's data partitions take about 500 GiB; the overlay stays sparse).
 */
export const DEFAULT_DISK_GIB = 1024;

export interface ImageRef {
  path: string;
  sha256: string;
}

/** A file the run needs before the VMs start. Steps with the same `to` are done once. */
export type StageStep =
  | { kind: 'decompress'; from: string; to: string; compression: 'xz' | 'zstd' }
  | { kind: 'link'; from: string; to: string }
  | { kind: 'write'; to: string; text: string }
  | { kind: 'concat'; from: string[]; to: string }
  | { kind: 'grub-net'; to: string; earlyConfig: string }
  | { kind: 'overlay'; from: string; format: 'raw' | 'qcow2'; to: string; sizeGiB: number };

export interface BootRun {
  case: BootCase;
  steps: StageStep[];
  vm: VmSpec;
  /** meta.json image key -> sha256 of the file booted (recorded with the result). */
  tested: Record<string, string>;
}

export interface BootPlanInput {
  arch: BootArch;
  version: string;
  /** DIR/builds/<version>/<arch>. */
  buildDir: string;
  /** Scratch directory of this arch (decompressed disks, TFTP root, firmware variables). */
  workDir: string;
  /** meta.json `images`. */
  images: Record<string, ImageRef>;
  /** Case ids to run (default: every case of the arch whose images exist). */
  cases?: string[];
  marker?: string;
  timeoutSec?: number;
  /** Virtual size of the disk a disk case boots (a qcow2 overlay over the artifact), GiB. */
  diskGiB?: number;
}

export interface BootPlan {
  runs: BootRun[];
  /** Cases not run because the build lacks their artifacts. */
  skipped: { id: string; reason: string }[];
}

export class BootPlanError extends Error {}

const compressionOf = (path: string): 'xz' | 'zstd' | undefined =>
  path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : undefined;

/** The build's iPXE script with its files fetched from `baseUrl` (only `set base-url` changes). */
export function localIpxe(script: string, baseUrl: string): string {
  if (!/^#!ipxe\s*$/m.test(script.split('\n')[0] ?? ''))
    throw new BootPlanError('not an iPXE script (no #!ipxe line)');
  if (!/^set base-url \S+$/m.test(script))
    throw new BootPlanError('the iPXE script has no "set base-url URL" line');
  return script.replace(/^set base-url \S+$/m, `set base-url ${baseUrl}`);
}

/** The build's GRUB PXE snippet with the rootfs fetched from `rootfsUrl` (nothing else changes). */
export function localGrubPxe(cfg: string, rootfsUrl: string): string {
  if (!/\bcoreos\.live\.rootfs_url=\S+/.test(cfg))
    throw new BootPlanError('the GRUB snippet has no coreos.live.rootfs_url= kernel argument');
  return cfg.replace(/\bcoreos\.live\.rootfs_url=\S+/g, `coreos.live.rootfs_url=${rootfsUrl}`);
}

/**
 * Kernel arguments of the build's iPXE script for a boot with the rootfs appended to the
 * initramfs: the `kernel` line's arguments with iPXE variables expanded, without `initrd=` (no
 * named initrds) and `coreos.live.rootfs_url=` (the rootfs is already there).
 */
export function directKargs(script: string): string[] {
  const vars = new Map<string, string>();
  for (const m of script.matchAll(/^set (\S+) (\S+)$/gm)) vars.set(m[1]!, m[2]!);
  const line = /^kernel \S+(?: (.*))?$/m.exec(script);
  if (!line) throw new BootPlanError('the iPXE script has no "kernel" line');
  return (line[1] ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((a) => a.replace(/\$\{([^}]+)\}/g, (_, v: string) => vars.get(v) ?? `\${${v}}`))
    .filter((a) => !a.startsWith('initrd=') && !a.startsWith('coreos.live.rootfs_url='));
}

/** GRUB's embedded config of the network image: everything comes from QEMU's TFTP server. */
export const grubNetConfig = [
  `set root=(tftp,${QEMU_USER_HOST})`,
  `set prefix=(tftp,${QEMU_USER_HOST})`,
  'configfile ($root)/grub.cfg',
  '',
].join('\n');

/** Plans the boot tests of one arch of a build. Pure. */
export function planBoot(input: BootPlanInput, texts: (path: string) => string): BootPlan {
  const own = bootCases.filter((c) => c.arch === input.arch);
  if (input.cases)
    for (const id of input.cases)
      if (!bootCases.some((c) => c.id === id))
        throw new BootPlanError(
          `unknown boot case '${id}' (${[...new Set(bootCases.map((c) => c.id))].join(', ')})`,
        );
  const wanted = own.filter((c) => !input.cases || input.cases.includes(c.id));
  const runs: BootRun[] = [];
  const skipped: BootPlan['skipped'] = [];
  const marker = (input.marker ?? DEFAULT_MARKER).replaceAll('{version}', input.version);
  const w = input.workDir;
  const tftp = join(w, 'tftp');
  const src = (key: string) => join(input.buildDir, input.images[key]!.path);
  const base = (key: string) => input.images[key]!.path;

  for (const c of wanted) {
    const missing = c.images.filter((k) => !input.images[k]);
    if (missing.length) {
      const reason = `the build has no ${missing.join(', ')} (meta.json images)`;
      if (input.cases?.includes(c.id)) throw new BootPlanError(`${input.arch} ${c.id}: ${reason}`);
      skipped.push({ id: c.id, reason });
      continue;
    }
    const steps: StageStep[] = [];
    const vm: VmSpec = {
      arch: c.arch,
      firmware: c.firmware,
      memoryMiB: c.via === 'disk' ? 2048 : c.arch === 'x86_64' ? 1024 : 1536,
      serialLog: join(input.buildDir, 'boot', `${c.id}.log`),
      timeoutSec: input.timeoutSec ?? DEFAULT_TIMEOUT[c.arch],
      marker,
      failMarkers: FAIL_MARKERS,
    };
    if (c.firmware === 'uefi') vm.pflash = { ...EDK2_PFLASH[c.arch], vars: join(w, `${c.id}.vars.fd`) };
    if (c.via === 'disk') {
      const key = c.images[0]!;
      const path = input.images[key]!.path;
      const compression = compressionOf(path);
      const format = key === 'qemu' ? 'qcow2' : 'raw';
      let file = src(key);
      if (compression) {
        file = join(w, path.slice(0, path.lastIndexOf('.')));
        steps.push({ kind: 'decompress', from: src(key), to: file, compression });
      }
      const overlay = join(w, `${c.id}.overlay.qcow2`);
      steps.push({
        kind: 'overlay',
        from: file,
        format,
        to: overlay,
        sizeGiB: input.diskGiB ?? DEFAULT_DISK_GIB,
      });
      vm.drives = [{ file: overlay, format: 'qcow2' }];
      // The running system pulls its service images (from the registry the image names).
      vm.net = {};
    } else {
      if (c.via !== 'direct')
        for (const k of ['live-kernel', 'live-initramfs', 'live-rootfs'])
          steps.push({ kind: 'link', from: src(k), to: join(tftp, base(k)) });
      if (c.via === 'ipxe') {
        steps.push({
          kind: 'write',
          to: join(tftp, 'boot.ipxe'),
          text: localIpxe(texts(src('pxe-ipxe')), TFTP_BASE),
        });
        vm.net = { tftpDir: tftp, bootfile: 'boot.ipxe' };
      } else if (c.via === 'grub-net') {
        steps.push({
          kind: 'write',
          to: join(tftp, 'grub.cfg'),
          text: localGrubPxe(texts(src('pxe-grub')), `${TFTP_BASE}/${base('live-rootfs')}`),
        });
        steps.push({ kind: 'grub-net', to: join(tftp, GRUB_NET_IMAGE), earlyConfig: grubNetConfig });
        vm.net = { tftpDir: tftp, bootfile: GRUB_NET_IMAGE };
      } else {
        const initrd = join(w, 'initramfs+rootfs.img');
        steps.push({ kind: 'concat', from: [src('live-initramfs'), src('live-rootfs')], to: initrd });
        vm.kernel = src('live-kernel');
        vm.initrd = initrd;
        vm.append = directKargs(texts(src('pxe-ipxe'))).join(' ');
      }
    }
    const tested = Object.fromEntries(c.images.map((k) => [k, input.images[k]!.sha256]));
    runs.push({ case: c, steps, vm, tested });
  }
  return { runs, skipped };
}

/** One case's outcome as recorded in meta.json `rocknsm.boot-tests`. */
/** A failed boot of a case that was booted again (its console kept under another name). */
export interface BootAttempt {
  outcome: BootResult['outcome'];
  seconds: number;
  /** Console log of that attempt, relative to the arch's build directory. */
  log: string;
}

export interface BootResult {
  result: 'pass' | 'fail';
  outcome: 'marker' | 'failed' | 'poweroff' | 'timeout' | 'crashed';
  seconds: number;
  /** Console log, relative to the arch's build directory. */
  log: string;
  /** meta.json image key -> sha256 of the file booted. */
  images: Record<string, string>;
  /** The failed boots before the last one, oldest first; absent when the first boot decided. */
  'failed-attempts'?: BootAttempt[];
}

/** How a result line names the failed attempts before it: "after 1 failed attempt (timeout, 1200 s, boot/x.attempt-1.log)". */
export function rerunNote(earlier: BootAttempt[]): string {
  const each = earlier.map((a) => `${a.outcome}, ${a.seconds} s, ${a.log}`).join('; ');
  return `after ${earlier.length} failed attempt${earlier.length === 1 ? '' : 's'} (${each})`;
}

/** meta.json with the new results merged into `rocknsm.boot-tests` (other cases kept). */
export function recordResults<M extends Record<string, unknown>>(
  meta: M,
  results: Record<string, BootResult>,
): M & { 'rocknsm.boot-tests': Record<string, BootResult> } {
  const old = (meta['rocknsm.boot-tests'] ?? {}) as Record<string, BootResult>;
  const merged = { ...old, ...results };
  const sorted = Object.fromEntries(
    Object.keys(merged)
      .sort()
      .map((k) => [k, merged[k]!]),
  );
  return { ...meta, 'rocknsm.boot-tests': sorted };
}
