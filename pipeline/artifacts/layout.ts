// Pure planning for disk and PXE artifacts: file names, the Fedora CoreOS GPT layout
// (formats.md §3), kernel arguments per platform, grub.cfg rendered from BLS entries, and the
// PXE boot snippets (formats.md §7). No I/O here; the backends execute what this describes.
import { createHash } from 'node:crypto';
import type { Arch } from '../arch.ts';
import type { GptPartition, GptTable } from '../exec/sgdisk.ts';

export type { Arch };
/**
 * Command-line platform names; `iso` is the live ISO (meta.json key `live-iso`), `metal4k` the
 * metal disk with 4096-byte sectors (published as `metal` -> `4k.raw.xz`, site.ts mediaOf).
 */
export type Platform = 'metal' | 'metal4k' | 'qemu' | 'pxe' | 'iso';
export const platforms: Platform[] = ['metal', 'metal4k', 'qemu', 'pxe', 'iso'];
export type Backend = 'native' | 'bootc' | 'coreos';
export const backends: Backend[] = ['native', 'bootc', 'coreos'];

/** Stream artifact names (stream.schema.json) -> command-line platforms. */
export function platformsOfStream(artifacts: string[]): Platform[] {
  const map: Record<string, Platform | undefined> = {
    metal: 'metal',
    metal4k: 'metal4k',
    qemu: 'qemu',
    pxe: 'pxe',
    'live-iso': 'iso',
  };
  return platforms.filter((p) => artifacts.some((a) => map[a] === p));
}

/** `<name>-<version>-<platform>.<arch>.<ext>` (formats.md §4). */
export function artifactFile(name: string, version: string, arch: Arch, kind: ArtifactKind): string {
  const base = `${name}-${version}`;
  switch (kind) {
    case 'metal':
      return `${base}-metal.${arch}.raw`;
    case 'metal4k':
      return `${base}-metal4k.${arch}.raw`;
    case 'qemu':
      return `${base}-qemu.${arch}.qcow2`;
    case 'live-iso':
      return `${base}-live-iso.${arch}.iso`;
    case 'live-kernel':
      return `${base}-live-kernel.${arch}`;
    case 'live-initramfs':
      return `${base}-live-initramfs.${arch}.img`;
    case 'live-rootfs':
      return `${base}-live-rootfs.${arch}.img`;
    case 'pxe-ipxe':
      return `${base}-live-pxe.${arch}.ipxe`;
    case 'pxe-pxelinux':
      return `${base}-live-pxelinux.${arch}.cfg`;
    case 'pxe-grub':
      return `${base}-live-grub.${arch}.cfg`;
  }
}

export type ArtifactKind =
  | 'metal'
  | 'metal4k'
  | 'qemu'
  | 'live-iso'
  | 'live-kernel'
  | 'live-initramfs'
  | 'live-rootfs'
  | 'pxe-ipxe'
  | 'pxe-pxelinux'
  | 'pxe-grub';

/** Disk images are compressed; PXE files are served as they are (coreos-assembler does the same). */
export const compressedKinds: ArtifactKind[] = ['metal', 'metal4k', 'qemu'];

/** A UUID derived from a seed: the same build gives the same filesystem and partition ids. */
export function seededUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const TYPE_GUID = {
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  reserved: '8DA63339-0007-60C0-C436-083AC8230908',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  /** boot and root: Linux filesystem data, as Fedora CoreOS's (coreos-assembler
   * src/create_disk.sh @004bc47a: boot gets sgdisk's default type, root `-t 4:0FC63DAF-...`);
   * not XBOOTLDR and discoverable-root, which systemd-gpt-auto-generator would act on. */
  linuxData: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

/**
 * The disk GUID of every disk image, as on Fedora CoreOS's: the first boot finds it, gives the
 * disk and its partitions new GUIDs and moves the backup GPT header to the end of the real disk
 * (fedora-coreos-config overlay.d/05core/usr/lib/dracut/modules.d/35coreos-ignition/
 * coreos-gpt-setup.sh @0bc96b78: UNINITIALIZED_GUID, `sgdisk --randomize-guids
 * --move-second-header`, and nothing when the GUID is another).
 */
export const PRISTINE_DISK_GUID = '00000000-0000-4000-a000-000000000001';

/**
 * The filesystem UUIDs of every disk image, as on Fedora CoreOS's: the first boot finds them,
 * gives boot and root random UUIDs (`tune2fs -U random`, `xfs_admin -U generate`), and only then
 * are `root=UUID=` and `boot=UUID=` written into the BLS entry, so no two sensors share an id.
 * coreos-assembler src/osbuild-manifests/coreos.osbuild.x86_64.mpp.yaml:20-26 @05db482e sets
 * them; fedora-coreos-config overlay.d/05core/usr/lib/dracut/modules.d/40ignition-ostree/
 * ignition-ostree-firstboot-uuid:12-35 @2d0fce6d replaces them (and nothing else).
 */
export const SENTINEL_FS_UUID = {
  boot: '96d15588-3596-4b3c-adca-a2ff7279ea63',
  root: '910678ff-f77e-4a7d-8d53-86f2ac47a823',
} as const;

export const SECTOR = 512;
const MiB = 1024 * 1024;
const SECTORS_PER_MiB = MiB / SECTOR;

export interface DiskLayout {
  table: GptTable;
  /** Image file size in bytes. */
  size: number;
  /** Byte range of each partition in the file, by label. */
  ranges: Record<'first' | 'esp' | 'boot' | 'root', { offset: number; size: number }>;
  uuids: { boot: string; root: string; espVolumeId: string };
}

/** Default size of the root partition when the content is small (XFS wants at least ~300 MB). */
export const MIN_ROOT_MiB = 512;

/** Root partition size for `contentBytes` of deployed content: 1.5x plus 256 MiB, at least MIN_ROOT_MiB. */
export function rootSizeMiB(contentBytes: number): number {
  return Math.max(MIN_ROOT_MiB, Math.ceil((contentBytes * 1.5) / MiB) + 256);
}

/**
 * The FCOS layout: 1 MiB BIOS-BOOT (x86_64) or `reserved` (aarch64), 127 MiB EFI-SYSTEM, 384 MiB
 * boot, then root; all aligned to 1 MiB, 1 MiB free at both ends (GPT headers).
 */
export function diskLayout(arch: Arch, rootMiB: number, seed: string): DiskLayout {
  const parts: [string, number, string][] = [
    arch === 'x86_64' ? ['BIOS-BOOT', 1, TYPE_GUID.biosBoot] : ['reserved', 1, TYPE_GUID.reserved],
    ['EFI-SYSTEM', 127, TYPE_GUID.esp],
    ['boot', 384, TYPE_GUID.linuxData],
    ['root', rootMiB, TYPE_GUID.linuxData],
  ];
  let start = SECTORS_PER_MiB;
  const partitions: GptPartition[] = parts.map(([label, mib, typeGuid], i) => {
    const p = {
      number: i + 1,
      label,
      start,
      sectors: mib * SECTORS_PER_MiB,
      typeGuid,
      guid: seededUuid(`${seed}/part/${label}`),
    };
    start += p.sectors;
    return p;
  });
  const range = (i: number) => ({
    offset: partitions[i]!.start * SECTOR,
    size: partitions[i]!.sectors * SECTOR,
  });
  return {
    table: { diskGuid: PRISTINE_DISK_GUID, partitions },
    size: (start + SECTORS_PER_MiB) * SECTOR,
    ranges: { first: range(0), esp: range(1), boot: range(2), root: range(3) },
    uuids: {
      boot: SENTINEL_FS_UUID.boot,
      root: SENTINEL_FS_UUID.root,
      espVolumeId: createHash('sha256').update(`${seed}/fs/esp`).digest('hex').slice(0, 8),
    },
  };
}

export const serialConsole: Record<Arch, string> = { x86_64: 'ttyS0,115200n8', aarch64: 'ttyAMA0,115200n8' };

/**
 * Fedora CoreOS's extra kernel arguments (fedora-coreos-config image-base.yaml:9-11 @2d0fce6d,
 * `extra-kargs`; coreos-assembler passes them to the deploy stage, build.common.ipp.yaml:128-144).
 */
export const FCOS_EXTRA_KARGS = ['mitigations=auto,nosmt'];

/**
 * Kernel arguments of an installed disk (metal or qemu), as coreos-assembler deploys Fedora
 * CoreOS (build.common.ipp.yaml:128-144 @05db482e: `rw`, `$ignition_firstboot`, the extra kargs;
 * then org.osbuild.coreos.platform adds `ignition.platform.id=`): no `root=`, `boot=` or
 * `rootflags=`. The first boot mounts the filesystems labelled root and boot, gives them new
 * UUIDs and then appends `root=UUID=<new> rw rootflags=prjquota` and `boot=UUID=<new>` to the
 * BLS entry (fedora-coreos-config 35coreos-ignition/coreos-boot-edit.sh:31-45 @2d0fce6d, `rdcore
 * rootmap` and `rdcore bind-boot`: coreos-installer src/bin/rdcore/rootmap.rs:33-100,249-316
 * @bee45001). Then the console (ours on every platform: the boot tests read the serial console)
 * and the image's kargs.d arguments. ostree adds `ostree=` itself.
 */
export function diskKargs(opts: {
  arch: Arch;
  platformId: 'metal' | 'qemu';
  imageKargs: string[];
}): string[] {
  return [
    'rw',
    '$ignition_firstboot',
    ...FCOS_EXTRA_KARGS,
    `ignition.platform.id=${opts.platformId}`,
    'console=tty0',
    `console=${serialConsole[opts.arch]}`,
    ...opts.imageKargs,
  ];
}

/**
 * Kernel arguments of the image's /usr/lib/bootc/kargs.d/*.toml files that apply to `arch`, in
 * file name order (what bootc applies at install). Only `kargs` and `match-architectures` exist.
 */
export function kargsFromToml(files: { name: string; text: string }[], arch: Arch): string[] {
  const out: string[] = [];
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) {
    const array = (key: string): string[] | undefined => {
      const m = new RegExp(`^${key}\\s*=\\s*(\\[[^\\]]*\\])`, 'm').exec(f.text);
      if (!m) return undefined;
      try {
        return JSON.parse(m[1]!.replace(/,\s*\]$/, ']'));
      } catch {
        throw new Error(`${f.name}: '${key}' is not an array of strings`);
      }
    };
    const match = array('match-architectures');
    if (match && !match.includes(arch)) continue;
    out.push(...(array('kargs') ?? []));
  }
  return out;
}

export interface BlsEntry {
  file: string;
  title: string;
  version: string;
  linux: string;
  initrd: string;
  options: string;
}

/** Parses a Boot Loader Specification entry (as `ostree admin deploy` writes them). */
export function parseBls(file: string, text: string): BlsEntry {
  const get = (k: string) => {
    const m = new RegExp(`^${k}[ \\t]+(.*)$`, 'm').exec(text);
    if (!m) throw new Error(`BLS entry ${file} has no '${k}' line`);
    return m[1]!.trim();
  };
  return {
    file,
    title: get('title'),
    version: get('version'),
    linux: get('linux'),
    initrd: get('initrd'),
    options: get('options'),
  };
}

/** Replaces `ignition.platform.id=` in a BLS entry's options line (metal -> qemu). */
export function setPlatformId(text: string, platformId: string): string {
  return text.replace(/^(options .*?)\bignition\.platform\.id=\S+/m, `$1ignition.platform.id=${platformId}`);
}

/**
 * What every core image runs first: find the `boot` filesystem, then its grub2/grub.cfg (as
 * bootupd's static EFI config does: coreos/bootupd src/grub2/grub-static-efi.cfg:13-18 @8ecc2e7).
 * When no filesystem carries the label, it says so on the console with the devices GRUB sees
 * (`ls`) and searches once more, instead of falling silently to a `grub>` prompt.
 */
export const earlyGrubConfig = [
  'search --no-floppy --label boot --set bootfs',
  'if [ -z "$bootfs" ]; then',
  '  echo "rock-image: no filesystem labelled boot; GRUB sees these devices:"',
  '  ls',
  '  search --no-floppy --label boot --set bootfs',
  'fi',
  'set root=$bootfs',
  'set prefix=($root)/grub2',
  'configfile $prefix/grub.cfg',
  '',
].join('\n');

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * grub.cfg for Debian's GRUB (no blscfg): one menuentry per BLS entry, newest first (ostree's
 * entry order is by `version`, higher first). `ignition.firstboot` on the boot filesystem turns
 * on first-boot provisioning, as in Fedora CoreOS; Ignition removes the file after it ran.
 */
export function renderGrubCfg(entries: BlsEntry[], arch: Arch): string {
  if (entries.length === 0) throw new Error('no BLS entries: nothing to boot');
  const sorted = [...entries].sort((a, b) => Number(b.version) - Number(a.version));
  const lines = [
    '# Written by rock-image from /boot/loader/entries (Debian GRUB has no blscfg).',
    'set default=0',
    ...grubPreamble(arch),
  ];
  for (const [i, e] of sorted.entries()) {
    lines.push(
      `menuentry ${quote(e.title)} --id ${quote(`ostree-${i}`)} {`,
      `  echo ${quote(`rock-image: booting ${e.title}`)}`,
      `  linux ${e.linux} ${e.options}`,
      `  initrd ${e.initrd}`,
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * What both grub.cfg forms start with: a short timeout, the serial console on x86_64, and
 * `ignition.firstboot` while the flag file is on the boot filesystem, as in Fedora CoreOS
 * (Ignition removes the file after the first boot; the file may set ignition_network_kcmdline).
 */
function grubPreamble(arch: Arch): string[] {
  const lines = ['set timeout=1'];
  if (arch === 'x86_64')
    lines.push(
      'if serial --unit=0 --speed=115200; then',
      '  terminal_input --append serial',
      '  terminal_output --append serial',
      'fi',
    );
  lines.push(
    'set ignition_firstboot=""',
    'if [ -f ($root)/ignition.firstboot ]; then',
    '  set ignition_network_kcmdline=""',
    '  source ($root)/ignition.firstboot',
    `  set ignition_firstboot="ignition.firstboot \${ignition_network_kcmdline}"`,
    'fi',
  );
  return lines;
}

/**
 * grub.cfg for a GRUB with the `blscfg` command: written once, it boots whatever ostree's BLS
 * entries say on every boot, so staged updates and rollbacks need no bootloader change (Fedora
 * CoreOS's static config: coreos-assembler src/grub.cfg @0eb25d1c, bootupd grub-static-pre.cfg
 * and configs.d/10_blscfg.cfg @v0.2.35). Upstream GRUB 2.14's blscfg (grub-core/commands/
 * blsuki.c @grub-2.14 d38d6a1a) reads /loader/entries on $root (:50, :1118-1125), sorts the
 * files newest first by name (:267-274; ostree names them ostree-<N> with N highest for its
 * default deployment), and expands variables of the options line when it runs (:819-820), so
 * $ignition_firstboot is set before it.
 */
export function renderBlsGrubCfg(arch: Arch): string {
  return `${[
    '# Written by rock-image. GRUB reads the BLS entries ostree writes (/loader/entries) on every',
    '# boot, so new deployments and rollbacks boot without changing this file.',
    ...grubPreamble(arch),
    'blscfg',
  ].join('\n')}\n`;
}

export interface PxeFiles {
  kernel: string;
  initramfs: string;
  rootfs: string;
}

/** The kernel arguments of formats.md §7, then console and the image's arguments. */
export function pxeKargs(opts: {
  rootfsUrl: string;
  ignitionUrl: string;
  arch: Arch;
  extra: string[];
}): string[] {
  return [
    `coreos.live.rootfs_url=${opts.rootfsUrl}`,
    'ignition.firstboot',
    'ignition.platform.id=metal',
    `ignition.config.url=${opts.ignitionUrl}`,
    'console=tty0',
    `console=${serialConsole[opts.arch]}`,
    ...opts.extra,
  ];
}

/** iPXE script: files fetched from `baseUrl` (HTTP), the rootfs fetched by the initramfs. */
export function renderIpxe(o: {
  title: string;
  baseUrl: string;
  ignitionUrl: string;
  files: PxeFiles;
  arch: Arch;
  extra: string[];
}): string {
  const kargs = pxeKargs({
    rootfsUrl: `\${base-url}/${o.files.rootfs}`,
    ignitionUrl: `\${ignition-url}`,
    arch: o.arch,
    extra: o.extra,
  });
  return [
    '#!ipxe',
    `# ${o.title}: live PXE boot. Change the two URLs to your own server.`,
    `set base-url ${o.baseUrl}`,
    `set ignition-url ${o.ignitionUrl}`,
    `kernel \${base-url}/${o.files.kernel} initrd=main ${kargs.join(' ')}`,
    `initrd --name main \${base-url}/${o.files.initramfs}`,
    'boot',
    '',
  ].join('\n');
}

/** PXELINUX (BIOS x86_64): kernel and initramfs from the TFTP root, the rootfs over HTTP. */
export function renderPxelinux(o: {
  title: string;
  baseUrl: string;
  ignitionUrl: string;
  files: PxeFiles;
  arch: Arch;
  extra: string[];
}): string {
  const kargs = pxeKargs({
    rootfsUrl: `${o.baseUrl}/${o.files.rootfs}`,
    ignitionUrl: o.ignitionUrl,
    arch: o.arch,
    extra: o.extra,
  });
  return [
    `# ${o.title}: pxelinux.cfg/default. Kernel and initramfs are read from the TFTP root.`,
    'DEFAULT rocknsm',
    'TIMEOUT 20',
    'PROMPT 0',
    'LABEL rocknsm',
    `  MENU LABEL ${o.title}`,
    `  KERNEL ${o.files.kernel}`,
    `  APPEND initrd=${o.files.initramfs} ${kargs.join(' ')}`,
    '',
  ].join('\n');
}

/** GRUB network boot (UEFI PXE, both arches): kernel and initramfs from the TFTP root. */
export function renderGrubPxe(o: {
  title: string;
  baseUrl: string;
  ignitionUrl: string;
  files: PxeFiles;
  arch: Arch;
  extra: string[];
}): string {
  const kargs = pxeKargs({
    rootfsUrl: `${o.baseUrl}/${o.files.rootfs}`,
    ignitionUrl: o.ignitionUrl,
    arch: o.arch,
    extra: o.extra,
  });
  return [
    `# ${o.title}: grub.cfg for UEFI network boot. Kernel and initramfs are read from the TFTP root.`,
    'set timeout=1',
    `menuentry ${quote(o.title)} {`,
    `  linux ${o.files.kernel} ${kargs.join(' ')}`,
    `  initrd ${o.files.initramfs}`,
    '}',
    '',
  ].join('\n');
}

/** The PXE snippets of one arch (PXELINUX is BIOS-only, so x86_64 only). */
export function pxeSnippets(o: {
  name: string;
  version: string;
  arch: Arch;
  baseUrl: string;
  ignitionUrl: string;
  extra: string[];
}): { kind: 'pxe-ipxe' | 'pxe-pxelinux' | 'pxe-grub'; file: string; text: string }[] {
  const r = {
    title: `${o.name} ${o.version} ${o.arch}`,
    baseUrl: o.baseUrl,
    ignitionUrl: o.ignitionUrl,
    arch: o.arch,
    extra: o.extra,
    files: {
      kernel: artifactFile(o.name, o.version, o.arch, 'live-kernel'),
      initramfs: artifactFile(o.name, o.version, o.arch, 'live-initramfs'),
      rootfs: artifactFile(o.name, o.version, o.arch, 'live-rootfs'),
    },
  };
  const out: { kind: 'pxe-ipxe' | 'pxe-pxelinux' | 'pxe-grub'; file: string; text: string }[] = [
    { kind: 'pxe-ipxe', file: artifactFile(o.name, o.version, o.arch, 'pxe-ipxe'), text: renderIpxe(r) },
  ];
  if (o.arch === 'x86_64')
    out.push({
      kind: 'pxe-pxelinux',
      file: artifactFile(o.name, o.version, o.arch, 'pxe-pxelinux'),
      text: renderPxelinux(r),
    });
  out.push({
    kind: 'pxe-grub',
    file: artifactFile(o.name, o.version, o.arch, 'pxe-grub'),
    text: renderGrubPxe(r),
  });
  return out;
}
