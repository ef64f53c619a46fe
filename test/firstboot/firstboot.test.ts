// The real first boot: each sensor profile is rendered to Ignition and handed (fw_cfg
// opt/com.coreos/config, ignition.firstboot ignition.platform.id=qemu) to the real Ignition 2.14
// in a dracut initramfs, booted with Debian's kernel in QEMU (TCG), against sparse virtual disks
// pre-laid with the Fedora CoreOS base layout. After the VM powers off the test reads the disks
// with sgdisk, blkid and xfs_db: every partition of the profile with its GPT label, type and size,
// in order after root, every XFS filesystem with its label filling its partition, root grown to
// the profile's size, the files and units Ignition wrote into root. Then it writes a marker into
// every data filesystem, boots again with the same config and checks that the partition table
// is unchanged, every filesystem kept its UUID and every marker is still there.
//
// The profiles boot two at a time (TCG VMs are CPU-bound: one per core). Console logs stay in
// .cache/firstboot/work/<profile>/boot{1,2}.log; the disk images are removed after a pass.
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProject, projectPaths } from '../../pipeline/config/index.ts';
import {
  catalogFromProject,
  loadProfile,
  parseSshKeyFile,
  type SensorProfile,
} from '../../pipeline/config/profile.ts';
import { bootVm, type VmDrive, type VmResult } from '../../pipeline/exec/qemu.ts';
import {
  FCOS_ROOT_START_MIB,
  LINUX_DATA_GUID,
  mountUnitName,
  renderIgnition,
  serializeIgnition,
} from '../../pipeline/plan/ignition.ts';
import { repoRoot } from '../world/fcos-base.ts';
import {
  BOOT_DISK_SERIAL,
  blankDisk,
  FCOS_PARTITIONS,
  FIRSTBOOT_DONE,
  type FsProbe,
  fcosDisk,
  firstbootAppend,
  firstbootCache,
  type GptPartition,
  IMAGE_ROOT_MIB,
  ignitionInitramfs,
  probeFs,
  readGpt,
  withMount,
  withPartition,
} from '../world/firstboot.ts';

const MiB = 1024 * 1024;
const catalog = catalogFromProject(loadProject(projectPaths(repoRoot)));
const keyFile = 'test/fixtures/profiles/test-keys.pub';
const keys = parseSshKeyFile(readFileSync(join(repoRoot, keyFile), 'utf8'), keyFile);
const MARKER_FILE = 'rocknsm-firstboot-marker';

interface Case {
  profile: string;
  /** Boot disk size when the profile does not give one for it. */
  bootDiskMiB: number;
}
// default: the profile's sizes suit a 1 TiB disk; separate-data-disk: a 10 GiB boot disk and the
// profile's 2 TiB data disk (virtio serial rocknsm-data, the profile's by-id name);
// capture-heavy: the profile's 8 TiB boot disk. All sparse: only what Ignition writes is stored.
const cases: Case[] = [
  { profile: 'default', bootDiskMiB: 1024 * 1024 },
  { profile: 'separate-data-disk', bootDiskMiB: 10 * 1024 },
  { profile: 'capture-heavy', bootDiskMiB: 0 },
];

interface Disk {
  file: string;
  serial: string;
  sectors: number;
}
interface Snapshot {
  gpt: Map<string, GptPartition[]>;
  fs: Map<string, FsProbe>;
  verify: Map<string, string>;
}
interface CaseResult {
  profile: SensorProfile;
  disks: Disk[];
  boot1: VmResult;
  boot2: VmResult;
  first: Snapshot;
  second: Snapshot;
  rootTree: { hostname: string; passwd: string; units: Record<string, string>; follows: string };
  markers: Record<string, { wrote: string; found: string | null }>;
}

const load = (name: string) =>
  loadProfile(
    join(repoRoot, 'manifests/profiles', `${name}.yaml`),
    `manifests/profiles/${name}.yaml`,
    catalog,
    keys,
  );

function snapshot(disks: Disk[]): Snapshot {
  const gpt = new Map<string, GptPartition[]>();
  const fs = new Map<string, FsProbe>();
  const verify = new Map<string, string>();
  for (const d of disks) {
    const r = readGpt(d.file);
    gpt.set(d.serial, r.partitions);
    verify.set(d.serial, r.verify);
    for (const p of r.partitions) fs.set(p.name, probeFs(d.file, p));
  }
  return { gpt, fs, verify };
}

function partitionOf(s: Snapshot, disk: Disk, name: string): GptPartition {
  const p = s.gpt.get(disk.serial)?.find((x) => x.name === name);
  if (!p) throw new Error(`no partition '${name}' on ${disk.file}`);
  return p;
}

function readRootTree(boot: Disk, s: Snapshot, profile: SensorProfile): CaseResult['rootTree'] {
  const root = partitionOf(s, boot, 'root');
  return withPartition(boot.file, root, (dev) =>
    withMount(
      dev,
      (dir) => {
        const units: Record<string, string> = {};
        const unitDir = join(dir, 'etc/systemd/system');
        for (const p of profile.partitions) {
          const f = join(unitDir, mountUnitName(p.mountPath));
          units[mountUnitName(p.mountPath)] = existsSync(f) ? readFileSync(f, 'utf8') : '';
        }
        for (const svc of profile.services.filter((x) => !x.enabled)) {
          const f = join(unitDir, `rocknsm-${svc.name}.service`);
          units[`rocknsm-${svc.name}.service`] =
            existsSync(f) || lstatSync(f, { throwIfNoEntry: false }) ? `-> ${readlinkSync(f)}` : '';
        }
        return {
          hostname: readFileSync(join(dir, 'etc/hostname'), 'utf8'),
          passwd: readFileSync(join(dir, 'etc/passwd'), 'utf8'),
          follows: readFileSync(join(dir, 'etc/rocknsm/follows'), 'utf8'),
          units,
        };
      },
      ['-o', 'ro,norecovery'],
    ),
  );
}

/** Writes (wrote) or reads (found) the marker of every data filesystem. */
function markers(disk: Disk, s: Snapshot, profile: SensorProfile, write?: Record<string, string>) {
  const out: Record<string, string | null> = {};
  for (const pp of profile.partitions) {
    const p = partitionOf(s, disk, pp.label);
    out[pp.label] = withPartition(disk.file, p, (dev) =>
      withMount(dev, (dir) => {
        const f = join(dir, MARKER_FILE);
        if (write) writeFileSync(f, write[pp.label]!);
        return existsSync(f) ? readFileSync(f, 'utf8') : null;
      }),
    );
  }
  return out;
}

async function runCase(c: Case, initramfs: { kernel: string; initrd: string }): Promise<CaseResult> {
  const profile = load(c.profile);
  const dir = join(firstbootCache, 'work', c.profile);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.ign');
  writeFileSync(config, serializeIgnition(renderIgnition(profile)));

  const bootMiB = profile.bootDisk ? (profile.diskMiB ?? c.bootDiskMiB) : c.bootDiskMiB;
  const boot: Disk = {
    file: join(dir, 'boot.raw'),
    serial: BOOT_DISK_SERIAL,
    sectors: (bootMiB * MiB) / 512,
  };
  fcosDisk(boot.file, bootMiB);
  const disks = [boot];
  if (!profile.bootDisk) {
    const serial = /^\/dev\/disk\/by-id\/virtio-(.+)$/.exec(profile.device)?.[1];
    if (!serial || profile.diskMiB === undefined)
      throw new Error(`${c.profile}: the data disk must be /dev/disk/by-id/virtio-<serial> with a size`);
    const data: Disk = { file: join(dir, 'data.raw'), serial, sectors: (profile.diskMiB * MiB) / 512 };
    blankDisk(data.file, profile.diskMiB);
    disks.push(data);
  }
  const drives: VmDrive[] = disks.map((d) => ({ file: d.file, format: 'raw', serial: d.serial }));
  const boot1Vm = (log: string) =>
    bootVm({
      arch: 'x86_64',
      firmware: 'direct',
      ...initramfs,
      append: firstbootAppend(),
      memoryMiB: 2048,
      drives,
      fwCfg: [{ name: 'opt/com.coreos/config', file: config }],
      serialLog: join(dir, log),
      timeoutSec: 600,
    });

  const boot1 = await boot1Vm('boot1.log');
  if (boot1.outcome !== 'poweroff' || !boot1.log.includes(FIRSTBOOT_DONE))
    throw new Error(
      `${c.profile} first boot: ${boot1.outcome}, see ${join(dir, 'boot1.log')}\n${tail(boot1.log)}`,
    );
  const first = snapshot(disks);
  const rootTree = readRootTree(boot, first, profile);
  const dataDisk = disks[disks.length - 1]!;
  const wrote = Object.fromEntries(
    profile.partitions.map((p) => [p.label, `${p.label} ${randomBytes(8).toString('hex')}\n`]),
  );
  markers(dataDisk, first, profile, wrote);

  const boot2 = await boot1Vm('boot2.log');
  if (boot2.outcome !== 'poweroff' || !boot2.log.includes(FIRSTBOOT_DONE))
    throw new Error(
      `${c.profile} second boot: ${boot2.outcome}, see ${join(dir, 'boot2.log')}\n${tail(boot2.log)}`,
    );
  const second = snapshot(disks);
  const found = markers(dataDisk, second, profile);
  for (const d of disks) rmSync(d.file, { force: true });
  return {
    profile,
    disks,
    boot1,
    boot2,
    first,
    second,
    rootTree,
    markers: Object.fromEntries(
      profile.partitions.map((p) => [p.label, { wrote: wrote[p.label]!, found: found[p.label] ?? null }]),
    ),
  };
}

const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');
const tail = (log: string) => log.replace(ansi, '').split('\n').slice(-60).join('\n');

let all: Promise<Map<string, CaseResult>> | undefined;
/** Boots every case, two VMs at a time; the tests below each assert on one profile's result. */
function results(): Promise<Map<string, CaseResult>> {
  all ??= (async () => {
    const initramfs = ignitionInitramfs();
    console.log(
      `  initramfs ${initramfs.built ? `built in ${initramfs.seconds.toFixed(0)} s` : 'from cache'}: ${initramfs.initrd}`,
    );
    const out = new Map<string, CaseResult>();
    const queue = [...cases];
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const r = await runCase(c, initramfs);
        console.log(
          `  ${c.profile}: boot 1 ${r.boot1.seconds.toFixed(0)} s, boot 2 ${r.boot2.seconds.toFixed(0)} s`,
        );
        out.set(c.profile, r);
      }
    };
    await Promise.all([worker(), worker()]);
    return out;
  })();
  return all;
}

async function result(name: string): Promise<CaseResult> {
  const r = (await results()).get(name);
  if (!r) throw new Error(`no result for ${name}`);
  return r;
}

function checkLayout(r: CaseResult, s: Snapshot, when: string) {
  const { profile } = r;
  const boot = r.disks[0]!;
  const dataDisk = r.disks[r.disks.length - 1]!;
  for (const d of r.disks)
    assert.match(s.verify.get(d.serial)!, /No problems found/, `${when}: sgdisk -v ${d.file}`);

  // The Fedora CoreOS partitions before root are untouched.
  const bootParts = s.gpt.get(boot.serial)!;
  for (const f of FCOS_PARTITIONS.filter((x) => x.label !== 'root')) {
    const p = bootParts.find((x) => x.number === f.number);
    assert.ok(p, `${when}: partition ${f.number}`);
    assert.equal(
      [p.name, p.typeGuid, p.startMiB, p.sizeMiB],
      [f.label, f.type, f.startMiB, f.sizeMiB],
      `${when}: ${f.label}`,
    );
  }
  assert.equal(
    [
      s.fs.get('EFI-SYSTEM')?.type,
      s.fs.get('EFI-SYSTEM')?.label,
      s.fs.get('boot')?.type,
      s.fs.get('boot')?.label,
    ],
    ['vfat', 'EFI-SYSTEM', 'ext4', 'boot'],
  );
  // Root: grown to the profile's root-size when partitions follow it, else as the image made it.
  const root = bootParts.find((x) => x.number === 4)!;
  assert.equal(
    [root.name, root.typeGuid, root.startMiB],
    ['root', FCOS_PARTITIONS[3].type, FCOS_ROOT_START_MIB],
  );
  assert.is(root.sizeMiB, profile.bootDisk ? profile.rootMiB : IMAGE_ROOT_MIB, `${when}: root size`);
  assert.equal([s.fs.get('root')?.type, s.fs.get('root')?.label], ['xfs', 'root']);

  // Every data partition of the profile, in layout order, back to back, the `rest` one to the end.
  const dataParts = s.gpt.get(dataDisk.serial)!;
  const expectedCount = profile.partitions.length + (profile.bootDisk ? 4 : 0);
  assert.is(dataParts.length, expectedCount, `${when}: partition count on ${dataDisk.file}`);
  let next = profile.bootDisk ? root.lastSector + 1 : 2048;
  const lastUsable = dataDisk.sectors - 34;
  // Layout order: as the profile lists them, the one sized `rest` last, numbered from 5 (boot disk) or 1.
  const ordered = [
    ...profile.partitions.filter((p) => p.size !== 'rest'),
    ...profile.partitions.filter((p) => p.size === 'rest'),
  ];
  for (const [i, pp] of ordered.entries()) {
    const p = dataParts.find((x) => x.name === pp.label);
    assert.ok(p, `${when}: partition ${pp.label} exists`);
    assert.is(p.number, i + (profile.bootDisk ? 5 : 1), `${when}: ${pp.label} number`);
    assert.is(p.typeGuid, LINUX_DATA_GUID, `${when}: ${pp.label} type`);
    assert.is(p.firstSector, next, `${when}: ${pp.label} starts right after the previous one`);
    if (pp.size === 'rest')
      assert.is(p.lastSector, lastUsable, `${when}: ${pp.label} takes the rest of the disk`);
    else assert.is(p.sizeMiB, pp.size, `${when}: ${pp.label} size`);
    const fs = s.fs.get(pp.label);
    assert.is(fs?.type, 'xfs', `${when}: ${pp.label} filesystem`);
    assert.is(fs?.label, pp.fsLabel, `${when}: ${pp.label} XFS label`);
    // mkfs.xfs uses every whole block of the partition (the `rest` one ends off a 4 KiB boundary).
    const partBytes = (p.lastSector - p.firstSector + 1) * 512;
    const block = fs?.xfsBlockSize ?? 0;
    assert.ok(block > 0, `${when}: ${pp.label} XFS block size`);
    assert.is(fs?.xfsBytes, partBytes - (partBytes % block), `${when}: ${pp.label} XFS fills its partition`);
    next = p.lastSector + 1;
  }
}

for (const c of cases) {
  test(`${c.profile}: the real Ignition lays out every partition and XFS filesystem of the profile`, async () => {
    const r = await result(c.profile);
    assert.not.match(r.boot1.log, /CRITICAL|Ignition failed/);
    assert.match(r.boot1.log, /ignition\[\d+\]: (INFO {5}: )?files: files passed/);
    assert.match(r.boot1.log, /Stage: disks/);
    checkLayout(r, r.first, 'first boot');
  });

  test(`${c.profile}: Ignition wrote hostname, admin user, mount units and masks into root`, async () => {
    const r = await result(c.profile);
    const { profile, rootTree } = r;
    assert.is(rootTree.hostname, `${profile.hostname}\n`);
    assert.is(rootTree.follows, `${profile.follows}\n`);
    assert.match(rootTree.passwd, new RegExp(`^${profile.admin.user}:x:\\d+:\\d+:`, 'm'));
    for (const p of profile.partitions) {
      const unit = rootTree.units[mountUnitName(p.mountPath)];
      assert.match(unit ?? '', `What=/dev/disk/by-partlabel/${p.label}\n`, mountUnitName(p.mountPath));
      assert.match(unit ?? '', `Where=${p.mountPath}\n`);
    }
    for (const svc of profile.services.filter((x) => !x.enabled))
      assert.is(rootTree.units[`rocknsm-${svc.name}.service`], '-> /dev/null', `${svc.name} masked`);
  });

  test(`${c.profile}: a second boot with the same config keeps partitions, filesystems and data`, async () => {
    const r = await result(c.profile);
    assert.not.match(r.boot2.log, /CRITICAL|Ignition failed/);
    checkLayout(r, r.second, 'second boot');
    for (const d of r.disks)
      assert.equal(r.second.gpt.get(d.serial), r.first.gpt.get(d.serial), `GPT of ${d.file}`);
    for (const p of r.profile.partitions)
      assert.is(
        r.second.fs.get(p.label)?.uuid,
        r.first.fs.get(p.label)?.uuid,
        `${p.label} keeps its XFS UUID`,
      );
    for (const [label, m] of Object.entries(r.markers)) assert.is(m.found, m.wrote, `marker on ${label}`);
    assert.is(Object.keys(r.markers).length, r.profile.partitions.length);
  });
}

test.run();
