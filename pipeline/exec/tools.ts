// Host tools each stage needs, how to ask each for its version, and which distribution package
// provides it. `rock-image doctor` reports on them; executors call `requireTool` once per run.
import { existsSync, readdirSync } from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { ToolMissingError } from '../errors.ts';

export type Stage = 'build' | 'cross-arch' | 'compose' | 'artifacts' | 'boot-test' | 'publish' | 'test';

export interface Tool {
  name: string;
  /** Argument that prints the version; null when the tool has none. */
  versionArg: string | null;
  deb: string;
  fedora: string;
  stages: Stage[];
  why: string;
  /** For packages that are not a command (kernel, dracut modules): the file that proves the
   * package is installed, its last component may end in `*`; `name` is then only a label. */
  file?: string;
  /** Host CPUs (Node's process.arch) the row applies to; default all. For packages that exist
   * only for some architectures (GRUB's BIOS and x86_64 EFI modules are amd64-only packages). */
  hosts?: string[];
}

export const tools: Tool[] = [
  {
    name: 'buildah',
    versionArg: '--version',
    deb: 'buildah',
    fedora: 'buildah',
    stages: ['build', 'test'],
    why: 'builds the derived image from the rendered Containerfile',
  },
  {
    name: 'skopeo',
    versionArg: '--version',
    deb: 'skopeo',
    fedora: 'skopeo',
    stages: ['build', 'publish', 'test'],
    why: 'resolves base digests, copies and signs images',
  },
  {
    name: 'runc',
    versionArg: '--version',
    deb: 'runc',
    fedora: 'runc',
    stages: ['build', 'compose', 'test'],
    why: 'OCI runtime for RUN steps and builder containers',
  },
  {
    name: 'qemu-aarch64-static',
    versionArg: '--version',
    deb: 'qemu-user-static',
    fedora: 'qemu-user-static-aarch64',
    stages: ['cross-arch', 'test'],
    why: 'runs aarch64 RUN steps on an x86_64 host (binfmt_misc)',
  },
  {
    name: 'update-binfmts',
    versionArg: '--version',
    deb: 'binfmt-support',
    fedora: 'systemd',
    stages: ['cross-arch', 'test'],
    why: 'registers qemu-user with binfmt_misc',
  },
  {
    name: 'podman',
    versionArg: '--version',
    deb: 'podman',
    fedora: 'podman',
    stages: ['compose', 'artifacts', 'test'],
    why: 'runs rpm-ostree, bootc and osbuild builder containers',
  },
  {
    name: 'umoci',
    versionArg: '--version',
    deb: 'umoci',
    fedora: 'umoci',
    stages: ['artifacts', 'test'],
    why: 'unpacks built images (artifacts, inspection in tests)',
  },
  {
    name: 'ostree',
    versionArg: '--version',
    deb: 'ostree',
    fedora: 'ostree',
    stages: ['artifacts', 'test'],
    why: 'deploys images that carry no ostree of their own into disk images (native backend)',
  },
  {
    name: 'ignition-validate',
    versionArg: '--version',
    deb: 'ignition',
    fedora: 'ignition-validate',
    stages: ['test'],
    why: 'validates rendered Ignition configs',
  },
  {
    name: 'sgdisk',
    versionArg: '--version',
    deb: 'gdisk',
    fedora: 'gdisk',
    stages: ['artifacts', 'test'],
    why: 'partitions disk images',
  },
  {
    name: 'mkfs.xfs',
    versionArg: '-V',
    deb: 'xfsprogs',
    fedora: 'xfsprogs',
    stages: ['artifacts', 'test'],
    why: 'root and sensor data filesystems',
  },
  {
    name: 'mkfs.vfat',
    versionArg: '--help',
    deb: 'dosfstools',
    fedora: 'dosfstools',
    stages: ['artifacts', 'test'],
    why: 'EFI system partition',
  },
  {
    name: 'mcopy',
    versionArg: '--version',
    deb: 'mtools',
    fedora: 'mtools',
    stages: ['artifacts', 'test'],
    why: 'fills the ESP without mounting vfat',
  },
  {
    name: 'mkfs.ext4',
    versionArg: '-V',
    deb: 'e2fsprogs',
    fedora: 'e2fsprogs',
    stages: ['artifacts', 'test'],
    why: 'boot filesystem of disk images',
  },
  {
    name: 'losetup',
    versionArg: '--version',
    deb: 'mount',
    fedora: 'util-linux',
    stages: ['artifacts', 'test'],
    why: 'loop devices on disk image partitions (native backend)',
  },
  {
    name: 'fallocate',
    versionArg: '--version',
    deb: 'util-linux',
    fedora: 'util-linux',
    stages: ['artifacts'],
    why: 'disk image blocks given back while the image is compressed (compress.ts)',
  },
  {
    name: 'unshare',
    versionArg: '--version',
    deb: 'util-linux',
    fedora: 'util-linux',
    stages: ['artifacts'],
    why: 'a mount namespace of its own for the artifacts run (mount-namespace.ts)',
  },
  {
    name: 'setpriv',
    versionArg: '--version',
    deb: 'util-linux',
    fedora: 'util-linux',
    stages: ['artifacts'],
    why: 'the re-executed artifacts run ends with the one that started it (mount-namespace.ts)',
  },
  {
    name: 'mksquashfs',
    versionArg: '-version',
    deb: 'squashfs-tools',
    fedora: 'squashfs-tools',
    stages: ['artifacts', 'test'],
    why: 'PXE live rootfs (native backend)',
  },
  {
    name: 'grub-mkimage',
    versionArg: '--version',
    deb: 'grub-common',
    fedora: 'grub2-tools-minimal',
    stages: ['artifacts', 'test'],
    why: 'GRUB core images for BIOS and UEFI (native backend)',
  },
  {
    name: 'grub i386-pc',
    versionArg: null,
    deb: 'grub-pc-bin',
    fedora: 'grub2-pc-modules',
    stages: ['artifacts', 'test'],
    why: 'GRUB BIOS modules and boot.img (x86_64 disks)',
    file: '/usr/lib/grub/i386-pc/boot.img',
    hosts: ['x64'],
  },
  {
    name: 'grub x86_64-efi',
    versionArg: null,
    deb: 'grub-efi-amd64-bin',
    fedora: 'grub2-efi-x64-modules',
    stages: ['artifacts', 'test'],
    why: 'GRUB UEFI modules (x86_64 disks)',
    file: '/usr/lib/grub/x86_64-efi/linux.mod',
    hosts: ['x64'],
  },
  {
    name: 'grub arm64-efi',
    versionArg: null,
    deb: 'grub-efi-arm64-bin:arm64',
    fedora: 'grub2-efi-aa64-modules',
    stages: ['artifacts', 'test'],
    why: 'GRUB UEFI modules (aarch64 disks; a Multi-Arch: foreign package, installable on amd64)',
    file: '/usr/lib/grub/arm64-efi/linux.mod',
  },
  {
    name: 'qemu-img',
    versionArg: '--version',
    deb: 'qemu-utils',
    fedora: 'qemu-img',
    stages: ['artifacts', 'test'],
    why: 'qcow2 images',
  },
  {
    name: 'qemu-system-x86_64',
    versionArg: '--version',
    deb: 'qemu-system-x86',
    fedora: 'qemu-system-x86-core',
    stages: ['boot-test', 'test'],
    why: 'boots x86_64 artifacts',
  },
  {
    name: 'qemu-system-aarch64',
    versionArg: '--version',
    deb: 'qemu-system-arm',
    fedora: 'qemu-system-aarch64-core',
    stages: ['boot-test', 'test'],
    why: 'boots aarch64 artifacts',
  },
  {
    name: 'OVMF',
    versionArg: null,
    deb: 'ovmf',
    fedora: 'edk2-ovmf',
    stages: ['boot-test', 'test'],
    why: 'UEFI firmware for x86_64 disk boots',
    file: '/usr/share/ovmf/OVMF.fd',
  },
  {
    name: 'AAVMF',
    versionArg: null,
    deb: 'qemu-efi-aarch64',
    fedora: 'edk2-aarch64',
    stages: ['boot-test', 'test'],
    why: 'UEFI firmware for aarch64 disk boots',
    file: '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd',
  },
  {
    name: 'AAVMF pflash',
    versionArg: null,
    deb: 'qemu-efi-aarch64',
    fedora: 'edk2-aarch64',
    stages: ['boot-test', 'test'],
    why: 'UEFI code and variable store of aarch64 boot tests (pflash, vars copied per run)',
    file: '/usr/share/AAVMF/AAVMF_VARS.fd',
  },
  {
    name: 'OVMF pflash',
    versionArg: null,
    deb: 'ovmf',
    fedora: 'edk2-ovmf',
    stages: ['boot-test', 'test'],
    why: 'UEFI code and variable store of x86_64 boot tests (pflash, vars copied per run)',
    file: '/usr/share/OVMF/OVMF_VARS_4M.fd',
  },
  {
    name: 'SeaBIOS',
    versionArg: null,
    deb: 'seabios',
    fedora: 'seabios-bin',
    stages: ['boot-test', 'test'],
    why: 'BIOS of x86_64 disk and iPXE network boot tests',
    file: '/usr/share/seabios/bios-256k.bin',
  },
  {
    name: 'iPXE ROMs',
    versionArg: null,
    deb: 'ipxe-qemu',
    fedora: 'ipxe-roms-qemu',
    stages: ['boot-test', 'test'],
    why: 'network boot ROM of the virtio NIC (x86_64 PXE boot test through QEMU TFTP)',
    file: '/usr/lib/ipxe/qemu/efi-virtio.rom',
  },
  {
    name: 'depmod',
    versionArg: '--version',
    deb: 'kmod',
    fedora: 'kmod',
    stages: ['test'],
    why: 'module dependencies of the Debian kernel in the boot-test initramfs',
  },
  {
    name: 'docker-registry',
    versionArg: '--version',
    deb: 'docker-registry',
    fedora: 'distribution',
    stages: ['test'],
    why: 'local registry for publish tests',
  },
  {
    name: 'openssl',
    versionArg: 'version',
    deb: 'openssl',
    fedora: 'openssl',
    stages: ['test'],
    why: 'a TLS certificate for the HTTPS upload test',
  },
  {
    name: 'htpasswd',
    versionArg: null,
    deb: 'apache2-utils',
    fedora: 'httpd-tools',
    stages: ['test'],
    why: 'registry credentials in tests',
  },
  {
    name: 'gpg',
    versionArg: '--version',
    deb: 'gnupg',
    fedora: 'gnupg2',
    stages: ['build', 'compose', 'artifacts', 'publish', 'test'],
    why: 'checks the publish.trust keys whenever the manifests are loaded; simple signing of images and artifacts',
  },
  {
    name: 'xz',
    versionArg: '--version',
    deb: 'xz-utils',
    fedora: 'xz',
    stages: ['artifacts', 'test'],
    why: 'artifact compression',
  },
  {
    name: 'zstd',
    versionArg: '--version',
    deb: 'zstd',
    fedora: 'zstd',
    stages: ['artifacts', 'test'],
    why: 'artifact compression',
  },
  {
    name: 'shellcheck',
    versionArg: '--version',
    deb: 'shellcheck',
    fedora: 'ShellCheck',
    stages: ['test'],
    why: 'lints the overlay shell scripts',
  },
  {
    name: 'mmdebstrap',
    versionArg: '--version',
    deb: 'mmdebstrap',
    fedora: 'mmdebstrap',
    stages: ['test'],
    why: 'builds the bootable Debian sensor-OS base of the test world (test/world/sensor-base.ts)',
  },
  {
    name: 'arch-test',
    versionArg: '-h',
    deb: 'arch-test',
    fedora: 'arch-test',
    stages: ['test'],
    why: 'lets mmdebstrap build the aarch64 sensor-OS base under qemu-user (it refuses a foreign arch without it)',
  },
  {
    name: 'ssh',
    versionArg: '-V',
    deb: 'openssh-client',
    fedora: 'openssh-clients',
    stages: ['test'],
    why: 'works on the booted sensor OS in the tests, as its admin (kola-style)',
  },
  {
    name: 'chroot',
    versionArg: '--version',
    deb: 'coreutils',
    fedora: 'coreutils',
    stages: ['artifacts', 'test'],
    why: "runs the image's own ostree and GRUB tools (native backend)",
  },
  {
    name: 'busybox',
    versionArg: '--help',
    deb: 'busybox-static',
    fedora: 'busybox',
    stages: ['test'],
    why: 'shell of the test fixture base images',
  },
  {
    name: 'cpio',
    versionArg: '--version',
    deb: 'cpio',
    fedora: 'cpio',
    stages: ['artifacts', 'boot-test', 'test'],
    why: 'PXE live rootfs archive; packs the small initramfs of the QEMU tests',
  },
  {
    name: 'dracut',
    versionArg: '--version',
    deb: 'dracut',
    fedora: 'dracut',
    stages: ['test'],
    why: 'builds the Ignition initramfs of the first-boot test',
  },
  {
    name: 'dracut url-lib',
    versionArg: null,
    deb: 'dracut-network',
    fedora: 'dracut-network',
    stages: ['test'],
    why: 'network modules the Ignition dracut module depends on (first-boot test)',
    file: '/usr/lib/dracut/modules.d/45url-lib/module-setup.sh',
  },
  {
    name: 'ignition dracut module',
    versionArg: null,
    deb: 'ignition',
    fedora: 'ignition',
    stages: ['test'],
    why: 'the real Ignition engine run by the first-boot test',
    file: '/usr/lib/dracut/modules.d/30ignition/ignition',
  },
  {
    name: 'mkfs.ext4',
    versionArg: '-V',
    deb: 'e2fsprogs',
    fedora: 'e2fsprogs',
    stages: ['artifacts', 'test'],
    why: 'boot partition of disk images (debugfs reads it in tests)',
  },
  {
    name: 'setfiles',
    versionArg: null,
    deb: 'policycoreutils',
    fedora: 'policycoreutils',
    stages: ['test'],
    why: 'Ignition relabels the files it writes with it (first-boot test initramfs)',
  },
  {
    name: 'linux kernel',
    versionArg: null,
    deb: 'linux-image-amd64',
    fedora: 'kernel-core',
    stages: ['test'],
    why: 'kernel the QEMU tests boot (first boot, tiny initramfs boots)',
    file: '/boot/vmlinuz-*',
  },
];

/** Finds an executable on PATH (plus the sbin directories root normally has). */
export function which(name: string, path = process.env.PATH ?? ''): string | undefined {
  const dirs = [...path.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, name);
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

/** Where a tool of the table is installed: its `file` when it has one, else the command on PATH. */
export function findTool(tool: Tool): string | undefined {
  if (!tool.file) return which(tool.name);
  const dir = dirname(tool.file);
  const base = basename(tool.file);
  if (!base.endsWith('*')) return existsSync(tool.file) ? tool.file : undefined;
  const prefix = base.slice(0, -1);
  const hit = existsSync(dir) ? readdirSync(dir).find((f) => f.startsWith(prefix)) : undefined;
  return hit ? join(dir, hit) : undefined;
}

/** Throws a ToolMissingError naming the package to install when `name` is not on PATH. */
export function requireTool(name: string): string {
  const found = which(name);
  if (found) return found;
  const tool = tools.find((t) => t.name === name);
  throw new ToolMissingError(
    name,
    tool ? `install '${tool.deb}' (Debian/Ubuntu) or '${tool.fedora}' (Fedora)` : 'not on PATH',
  );
}

export function toolsFor(stages: Stage[], host: string = process.arch): Tool[] {
  return tools.filter(
    (t) => t.stages.some((s) => stages.includes(s)) && (!t.hosts || t.hosts.includes(host)),
  );
}

/** Host arch in the names Fedora uses (x86_64, aarch64). */
export function hostArch(nodeArch: string = process.arch): string {
  return nodeArch === 'x64' ? 'x86_64' : nodeArch === 'arm64' ? 'aarch64' : nodeArch;
}

/** True when binfmt_misc can run binaries of `arch` (needed for RUN steps of foreign images). */
export function canRunArch(arch: string, host = hostArch()): boolean {
  if (arch === host) return true;
  return existsSync(`/proc/sys/fs/binfmt_misc/qemu-${arch}`);
}
