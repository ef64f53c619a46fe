// The world of the first-boot tests: Debian's kernel, an initramfs built by the real dracut with
// Debian's Ignition dracut module (cached by a hash of its inputs), and sparse virtual disks
// pre-laid with the Fedora CoreOS base layout (formats.md section 3) by sgdisk, losetup and mkfs.
//
// The initramfs adds four small things to what dracut makes; none changes what Ignition does:
// - a udev rule giving the virtio disk with serial `coreos-boot` the name
//   /dev/disk/by-id/coreos-boot-disk (Fedora CoreOS makes that link from the boot partition's
//   UUID; the profiles target it);
// - `rocknsm-test-poweroff.service`: once ignition-complete.target is reached (every Ignition
//   stage succeeded) it prints FIRSTBOOT_DONE on the console, lets Ignition unmount what it
//   mounted and powers the VM off, so the test reads the disks after a clean unmount instead of
//   switching into a root that has no OS;
// - a udev rule and a drop-in that keep udev off the disks while Ignition partitions them, the
//   way Ignition 2.14 expects (Ignition 2.14's partition-table race, below);
// - nothing else: failures go to dracut's emergency handler, which powers off with
//   `rd.shell=0 rd.emergency=poweroff`.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './fcos-base.ts';
import { needTool, sh, shResult } from './tools.ts';

export const firstbootCache = join(repoRoot, '.cache', 'firstboot');
export const FIRSTBOOT_DONE = 'rocknsm-firstboot: ignition complete, powering off';
export const BOOT_DISK_SERIAL = 'coreos-boot';

const bootDiskRule = `# Test initramfs: the boot disk of the first-boot VM (virtio serial ${BOOT_DISK_SERIAL}).
SUBSYSTEM=="block", ENV{DEVTYPE}=="disk", ENV{ID_SERIAL}=="${BOOT_DISK_SERIAL}", SYMLINK+="disk/by-id/coreos-boot-disk"
`;

// Wants (not Requires) ignition-complete.target: stopping ignition-mount.service, which runs
// Ignition's umount stage, stops that target too, and must not stop this unit. Without that
// explicit stop, power off would unmount /sysroot/var/... in parallel with Ignition's umount
// stage, which then fails on what is already gone.
const poweroffUnit = `[Unit]
Description=RockNSM first-boot test: power off once Ignition is complete
DefaultDependencies=no
ConditionPathExists=/etc/initrd-release
Wants=ignition-complete.target
After=ignition-complete.target ignition-files.service
Before=initrd.target

[Service]
Type=oneshot
StandardOutput=journal+console
ExecStart=/usr/bin/systemctl is-active --quiet ignition-complete.target
ExecStart=/bin/echo ${FIRSTBOOT_DONE}
ExecStart=/usr/bin/systemctl stop ignition-mount.service
ExecStart=/usr/bin/systemctl --no-block poweroff
`;

// Ignition 2.14 assumes it alone touches a disk while it partitions it; udev breaks that
// (upstream: coreos/ignition#1302, flatcar/Flatcar#1194). udev watches every block device and,
// when a tool closes one it had open for writing (even `sgdisk --pretend`, which Ignition runs
// first), re-reads the partition table itself and re-probes every partition. If those probes
// still hold a partition open when the real sgdisk asks the kernel to re-read the new table,
// the kernel refuses (EBUSY) and keeps the old one: the new by-partlabel links never come and
// the disks stage times out. Under TCG the probes are slow, so on a loaded machine this hit
// every profile. Two changes make the disks stage own the disks again:
// - this rule turns udev's write watch off for the virtio disks (only in this test initramfs;
//   the kernel's own events after sgdisk's re-read still make udev create every link);
// - the drop-in below starts the disks stage only once coldplug probing is done.
// Nothing else in udev or Ignition changes.
const noWatchRule = `# Test initramfs: no udev write watch on the virtio disks (see test/world/firstboot.ts).
ACTION!="remove", SUBSYSTEM=="block", KERNEL=="vd*", OPTIONS+="nowatch"
`;

// When the stage fails anyway, the kernel's and udev's view of the disks goes to the console.
const disksDropin = `[Unit]
Wants=systemd-udev-settle.service
After=systemd-udev-settle.service

[Service]
StandardOutput=journal+console
ExecStopPost=-/bin/sh -c 'echo "rocknsm-firstboot: disks stage $SERVICE_RESULT"; cat /proc/partitions; ls -l /dev/disk/by-partlabel'
`;

export function kernelVersion(): string {
  const k = existsSync('/boot') ? readdirSync('/boot').find((f) => f.startsWith('vmlinuz-')) : undefined;
  if (!k)
    throw new Error(
      "test needs /boot/vmlinuz-*: run 'npx rock-image doctor --install test' (linux-image-amd64)",
    );
  return k.slice('vmlinuz-'.length);
}

export interface Initramfs {
  kernel: string;
  initrd: string;
  /** Whether this call built it (false: taken from the cache). */
  built: boolean;
  seconds: number;
}

/** Builds (or takes from .cache/firstboot) the Ignition initramfs for Debian's kernel. */
export function ignitionInitramfs(): Initramfs {
  needTool('dracut');
  needTool('setfiles');
  const ignitionBin = '/usr/lib/dracut/modules.d/30ignition/ignition';
  if (!existsSync(ignitionBin))
    throw new Error(
      "test needs Debian's Ignition dracut module: run 'npx rock-image doctor --install test' (ignition)",
    );
  if (!existsSync('/usr/lib/dracut/modules.d/45url-lib'))
    throw new Error(
      "test needs dracut's url-lib module: run 'npx rock-image doctor --install test' (dracut-network)",
    );
  const kver = kernelVersion();
  const args = [
    '--force',
    '--no-hostonly',
    '--no-hostonly-cmdline',
    '--add',
    'ignition',
    '--omit',
    'plymouth i18n',
    '--add-drivers',
    'virtio_blk virtio_pci xfs ext4',
    '--kver',
    kver,
  ];
  const versions = sh('dpkg-query', [
    '-W',
    'dracut',
    'dracut-core',
    'dracut-network',
    'ignition',
    'systemd',
    'xfsprogs',
    'gdisk',
    'policycoreutils',
    `linux-image-${kver}`,
  ]);
  const key = createHash('sha256')
    .update(JSON.stringify({ args, versions, bootDiskRule, noWatchRule, poweroffUnit, disksDropin }))
    .digest('hex')
    .slice(0, 16);
  const initrd = join(firstbootCache, `initramfs-ignition-${key}.img`);
  const kernel = `/boot/vmlinuz-${kver}`;
  if (existsSync(initrd)) return { kernel, initrd, built: false, seconds: 0 };

  mkdirSync(firstbootCache, { recursive: true });
  const extra = join(firstbootCache, `initrd-extra-${key}`);
  rmSync(extra, { recursive: true, force: true });
  const units = join(extra, 'usr/lib/systemd/system');
  mkdirSync(join(units, 'initrd.target.wants'), { recursive: true });
  mkdirSync(join(extra, 'usr/lib/udev/rules.d'), { recursive: true });
  writeFileSync(join(units, 'rocknsm-test-poweroff.service'), poweroffUnit);
  mkdirSync(join(units, 'ignition-disks.service.d'));
  writeFileSync(join(units, 'ignition-disks.service.d/10-rocknsm-udev-settle.conf'), disksDropin);
  symlinkSync(
    '../rocknsm-test-poweroff.service',
    join(units, 'initrd.target.wants/rocknsm-test-poweroff.service'),
  );
  writeFileSync(join(extra, 'usr/lib/udev/rules.d/61-rocknsm-coreos-boot-disk.rules'), bootDiskRule);
  writeFileSync(join(extra, 'usr/lib/udev/rules.d/61-rocknsm-test-nowatch.rules'), noWatchRule);

  const tmp = `${initrd}.tmp-${process.pid}`;
  const started = Date.now();
  try {
    sh('dracut', [...args, '--include', extra, '/', tmp]);
    renameSync(tmp, initrd);
  } finally {
    rmSync(tmp, { force: true });
    rmSync(extra, { recursive: true, force: true });
  }
  return { kernel, initrd, built: true, seconds: (Date.now() - started) / 1000 };
}

/** Kernel command line of the first-boot VM. */
export function firstbootAppend(): string {
  return [
    'console=ttyS0',
    'root=LABEL=root',
    'rw',
    'ignition.firstboot',
    'ignition.platform.id=qemu',
    'rd.shell=0',
    'rd.emergency=poweroff',
    'systemd.journald.forward_to_console=1',
    'loglevel=4',
    // Ignition waits for new partitions through systemd device jobs: give a loaded TCG VM time.
    'systemd.default_timeout_start_sec=300',
    'panic=-1',
  ].join(' ');
}

const MiB = 1024 * 1024;

/** Fedora CoreOS partition type GUIDs and labels (formats.md section 3, x86_64). */
export const FCOS_PARTITIONS = [
  { number: 1, label: 'BIOS-BOOT', startMiB: 1, sizeMiB: 1, type: '21686148-6449-6E6F-744E-656564454649' },
  { number: 2, label: 'EFI-SYSTEM', startMiB: 2, sizeMiB: 127, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' },
  { number: 3, label: 'boot', startMiB: 129, sizeMiB: 384, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' },
  { number: 4, label: 'root', startMiB: 513, sizeMiB: 0, type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4' },
] as const;

/** Size of the root partition in the pre-laid image (Ignition grows it when a profile says so). */
export const IMAGE_ROOT_MIB = 1024;

/** Runs fn with a loop device over [offset, offset+size) of file; always detaches it. */
export function withLoop<T>(file: string, offsetBytes: number, sizeBytes: number, fn: (dev: string) => T): T {
  needTool('losetup');
  const dev = sh('losetup', [
    '-f',
    '--show',
    '-o',
    String(offsetBytes),
    '--sizelimit',
    String(sizeBytes),
    file,
  ]).trim();
  try {
    return fn(dev);
  } finally {
    sh('losetup', ['-d', dev]);
  }
}

/** Runs `mount ...args target` for fn; always unmounts. */
export function withMountAt<T>(args: string[], target: string, fn: () => T): T {
  sh('mount', [...args, target]);
  try {
    return fn();
  } finally {
    sh('umount', [target]);
  }
}

/** Mounts dev on a temporary directory for fn; always unmounts. */
export function withMount<T>(dev: string, fn: (dir: string) => T, opts: string[] = []): T {
  mkdirSync(firstbootCache, { recursive: true });
  const dir = mkdtempSync(join(firstbootCache, 'mnt-'));
  try {
    return withMountAt([...opts, dev], dir, () => fn(dir));
  } finally {
    rmdirSync(dir);
  }
}

// Just enough of an OS tree on root for Ignition's mount and files stages: account databases
// (useradd --root edits them), the groups a non-core admin joins, os-release, the SELinux
// config and file contexts Ignition relabels with, /var and /home.
function writeRootTree(dir: string): void {
  for (const d of ['etc/systemd/system', 'usr/lib', 'var', 'home', 'root'])
    mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  writeFileSync(join(dir, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nwheel:x:10:\nsudo:x:27:\n');
  writeFileSync(join(dir, 'etc/gshadow'), 'root:*::\nwheel:*::\nsudo:*::\n', { mode: 0o600 });
  writeFileSync(
    join(dir, 'usr/lib/os-release'),
    'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=41\nVARIANT="RockNSM"\nVARIANT_ID=rocknsm\n',
  );
  symlinkSync('../usr/lib/os-release', join(dir, 'etc/os-release'));
  // Debian's Ignition relabels what it creates with setfiles (policycoreutils, packed into the
  // initramfs by the ignition dracut module) and the file_contexts of the policy named here.
  // The policy is not what this test proves: one rule labels everything default_t.
  const contexts = join(dir, 'etc/selinux/targeted/contexts/files');
  mkdirSync(contexts, { recursive: true });
  writeFileSync(join(dir, 'etc/selinux/config'), 'SELINUX=permissive\nSELINUXTYPE=targeted\n');
  writeFileSync(join(contexts, 'file_contexts'), '/.*    system_u:object_r:default_t:s0\n');
}

/**
 * Writes a sparse raw disk of diskMiB with the Fedora CoreOS base layout: BIOS-BOOT, EFI-SYSTEM
 * (vfat), boot (ext4), root (xfs, IMAGE_ROOT_MIB, a minimal tree). Written to a temporary name
 * and renamed, so a failure leaves nothing half-made.
 */
export function fcosDisk(file: string, diskMiB: number): void {
  for (const t of ['sgdisk', 'mkfs.vfat', 'mkfs.ext4', 'mkfs.xfs', 'losetup']) needTool(t);
  const tmp = `${file}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    sh('truncate', ['-s', `${diskMiB}M`, tmp]);
    const args = ['-U', 'R'];
    for (const p of FCOS_PARTITIONS) {
      const size = p.label === 'root' ? IMAGE_ROOT_MIB : p.sizeMiB;
      args.push(
        '-n',
        `${p.number}:${p.startMiB * 2048}:+${size}M`,
        '-t',
        `${p.number}:${p.type}`,
        '-c',
        `${p.number}:${p.label}`,
      );
    }
    sh('sgdisk', [...args, tmp]);
    const part = (label: string) => {
      const p = FCOS_PARTITIONS.find((x) => x.label === label)!;
      return [p.startMiB * MiB, (label === 'root' ? IMAGE_ROOT_MIB : p.sizeMiB) * MiB] as const;
    };
    withLoop(tmp, ...part('EFI-SYSTEM'), (dev) => sh('mkfs.vfat', ['-F', '32', '-n', 'EFI-SYSTEM', dev]));
    withLoop(tmp, ...part('boot'), (dev) => sh('mkfs.ext4', ['-q', '-L', 'boot', dev]));
    withLoop(tmp, ...part('root'), (dev) => {
      sh('mkfs.xfs', ['-q', '-L', 'root', dev]);
      withMount(dev, writeRootTree);
    });
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** A blank sparse disk (the separate data disk). */
export function blankDisk(file: string, diskMiB: number): void {
  rmSync(file, { force: true });
  sh('truncate', ['-s', `${diskMiB}M`, file]);
}

export interface GptPartition {
  number: number;
  name: string;
  typeGuid: string;
  firstSector: number;
  lastSector: number;
  startMiB: number;
  sizeMiB: number;
}

/** The GPT of a disk image as sgdisk reads it (-p for the list, -i for each entry). */
export function readGpt(file: string): { partitions: GptPartition[]; verify: string } {
  needTool('sgdisk');
  const list = sh('sgdisk', ['-p', file]);
  const numbers = list
    .split('\n')
    .map((l) => /^\s+(\d+)\s+\d+\s+\d+/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
  const partitions = numbers.map((number) => {
    const info = sh('sgdisk', ['-i', String(number), file]);
    const field = (re: RegExp) => {
      const m = re.exec(info);
      if (!m?.[1]) throw new Error(`sgdisk -i ${number}: no match for ${re} in:\n${info}`);
      return m[1];
    };
    const firstSector = Number(field(/^First sector: (\d+)/m));
    const lastSector = Number(field(/^Last sector: (\d+)/m));
    return {
      number,
      name: field(/^Partition name: '(.*)'$/m),
      typeGuid: field(/^Partition GUID code: ([0-9A-F-]+)/m),
      firstSector,
      lastSector,
      startMiB: (firstSector * 512) / MiB,
      sizeMiB: ((lastSector - firstSector + 1) * 512) / MiB,
    };
  });
  const verify = sh('sgdisk', ['-v', file]);
  return { partitions, verify };
}

export interface FsProbe {
  type?: string;
  label?: string;
  uuid?: string;
  /** XFS only: data blocks x block size from the superblock (xfs_db). */
  xfsBytes?: number;
  /** XFS only: the block size. */
  xfsBlockSize?: number;
}

/** withLoop over one GPT partition of a disk image. */
export function withPartition<T>(file: string, p: GptPartition, fn: (dev: string) => T): T {
  return withLoop(file, p.firstSector * 512, (p.lastSector - p.firstSector + 1) * 512, fn);
}

/** blkid (and for XFS xfs_db) on one partition of a disk image. */
export function probeFs(file: string, p: GptPartition): FsProbe {
  needTool('blkid');
  needTool('xfs_db');
  return withPartition(file, p, (dev) => {
    // blkid exits 2 when it finds no filesystem: that is an answer, not an error.
    const r = shResult('blkid', ['-p', '-o', 'export', dev]);
    if (r.code !== 0 && r.code !== 2) throw new Error(`blkid -p ${dev}: exit ${r.code}: ${r.stderr}`);
    const out = r.stdout.trim();
    const kv = Object.fromEntries(
      out
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const probe: FsProbe = { type: kv.TYPE, label: kv.LABEL, uuid: kv.UUID };
    if (kv.TYPE === 'xfs') {
      const sb = sh('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p dblocks', '-c', 'p blocksize', dev]);
      const num = (k: string) => Number(new RegExp(`^${k} = (\\d+)`, 'm').exec(sb)?.[1]);
      probe.xfsBytes = num('dblocks') * num('blocksize');
      probe.xfsBlockSize = num('blocksize');
    }
    return probe;
  });
}
