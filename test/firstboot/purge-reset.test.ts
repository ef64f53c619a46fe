// rocknsm-purge-data and rocknsm-factory-reset (overlays/20sensor-tools) against a real disk
// image: the Fedora CoreOS base layout plus /var and every sensor data partition (GPT labels and
// XFS labels from the same layout planner the Ignition config uses), each filesystem mounted at
// its path under a sensor root, /boot being the real ext4 boot partition. Purge must empty every
// data filesystem and change nothing else (every other file on every partition compared before
// and after, filesystems keep their UUIDs); factory reset must leave the machine set to run
// Ignition again (flag on the boot partition, machine-id uninitialized, /etc back to /usr/etc, /var
// reduced to the data paths).
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProject, projectPaths } from '../../pipeline/config/index.ts';
import { catalogFromProject, parseProfile, parseSshKeyFile } from '../../pipeline/config/profile.ts';
import { LINUX_DATA_GUID, planLayout } from '../../pipeline/plan/ignition.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { fcosDisk, firstbootCache, type GptPartition, probeFs, readGpt } from '../world/firstboot.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const project = loadProject(projectPaths(repoRoot));
const catalog = catalogFromProject(project);
const keyFile = 'test/fixtures/profiles/test-keys.pub';
const keys = parseSshKeyFile(readFileSync(join(repoRoot, keyFile), 'utf8'), keyFile);
const bin = join(repoRoot, 'overlays/20sensor-tools/usr/bin');

// Every data path on its own small XFS partition (XFS needs about 300 MiB).
const profile = parseProfile(
  `hostname: purge-test
follows: ghcr.io/rocknsm/rocknsm-coreos:stable
root-size: 8GiB
disk:
  size: 12GiB
partitions:
  var: {size: 320MiB}
  zeek-logs: {size: 320MiB}
  zeek-spool: {size: 320MiB}
  suricata: {size: 320MiB}
  fsf: {size: 320MiB}
  elasticsearch: {size: 320MiB}
  kafka: {size: 320MiB}
  docket: {size: 320MiB}
  stenographer: {size: rest}
`,
  'purge-test.yaml',
  catalog,
  keys,
);
const layout = planLayout(profile);

interface Sensor {
  dir: string;
  disk: string;
  mnt: string;
  loops: string[];
}

/** The disk: FCOS layout, root grown to root-size, the profile's partitions with XFS. */
function makeDisk(disk: string): void {
  fcosDisk(disk, profile.diskMiB!);
  const args = [
    '-d',
    '4',
    '-n',
    `4:${513 * 2048}:+${profile.rootMiB}M`,
    '-t',
    '4:0FC63DAF-8483-4772-8E79-3D69D8477DE4',
    '-c',
    '4:root',
  ];
  for (const p of layout.partitions)
    args.push(
      '-n',
      `${p.number}:0:${p.size === 'rest' ? 0 : `+${p.size}M`}`,
      '-t',
      `${p.number}:${LINUX_DATA_GUID}`,
      '-c',
      `${p.number}:${p.label}`,
    );
  sh('sgdisk', [...args, disk]);
  const gpt = readGpt(disk).partitions;
  for (const p of layout.partitions) {
    const g = gpt.find((x) => x.name === p.label)!;
    const dev = attach(disk, g);
    try {
      sh('mkfs.xfs', ['-q', '-L', p.fsLabel, dev]);
    } finally {
      sh('losetup', ['-d', dev]);
    }
  }
}

function attach(disk: string, g: GptPartition): string {
  return sh('losetup', [
    '-f',
    '--show',
    '-o',
    String(g.firstSector * 512),
    '--sizelimit',
    String((g.lastSector - g.firstSector + 1) * 512),
    disk,
  ]).trim();
}

/** Mounts root, boot and every data filesystem at its place under one directory. */
function mountSensor(sensor: Sensor): void {
  const gpt = readGpt(sensor.disk).partitions;
  const order: [string, string][] = [
    ['root', '/'],
    ['boot', '/boot'],
    ...layout.partitions.map((p): [string, string] => [p.label, p.mountPath]),
  ];
  for (const [label, path] of order) {
    const g = gpt.find((x) => x.name === label)!;
    const dev = attach(sensor.disk, g);
    sensor.loops.push(dev);
    const at = join(sensor.mnt, path);
    mkdirSync(at, { recursive: true });
    sh('mount', [dev, at]);
  }
}

function unmountSensor(sensor: Sensor): void {
  shResult('umount', ['-R', sensor.mnt]);
  for (const dev of sensor.loops.splice(0)) shResult('losetup', ['-d', dev]);
}

function put(root: string, path: string, content: string, mode = 0o644) {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

/** A sensor as the image and some weeks of capture leave it. */
function populate(m: string): void {
  put(m, 'usr/lib/rocknsm/data-paths', catalog.dataPaths.map((p) => `${p.id} ${p.path}\n`).join(''));
  put(m, 'usr/etc/hostname', 'localhost\n');
  put(m, 'usr/etc/rocknsm/rocknsm.env', 'ROCKNSM_MONITOR_INTERFACE=\n');
  put(m, 'etc/hostname', 'sensor-07\n');
  put(m, 'etc/rocknsm/rocknsm.env', 'ROCKNSM_MONITOR_INTERFACE=ens3\n');
  put(m, 'etc/added-by-admin.conf', 'x=1\n');
  put(m, 'etc/machine-id', '0123456789abcdef0123456789abcdef\n', 0o444);
  put(m, 'var/lib/containers/storage/overlay/l/abc', 'layer\n');
  put(m, 'var/home/core/.bash_history', 'ls\n');
  put(m, 'var/log/journal/abc/system.journal', 'journal\n');
  put(m, 'boot/loader/entries/ostree-1.conf', 'title Fedora CoreOS\n');
  for (const p of catalog.dataPaths) {
    put(m, `${p.path.slice(1)}/data-${p.id}.bin`, `${p.id} data\n`);
    put(m, `${p.path.slice(1)}/.hidden`, 'dot\n');
    put(m, `${p.path.slice(1)}/sub/dir/deep.log`, 'deep\n');
  }
}

/** Every entry under dir: path -> type, mode and content hash (symlink target). */
function tree(dir: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      if (skip(r)) continue;
      const p = join(dir, r);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(r, `link ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(r, `dir ${st.mode.toString(8)}`);
        walk(r);
      } else
        out.set(
          r,
          `file ${st.mode.toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`,
        );
    }
  };
  walk('');
  return out;
}

const dataRel = catalog.dataPaths.map((p) => p.path.slice(1));
const isInData = (rel: string) => dataRel.some((d) => rel.startsWith(`${d}/`));

function withSensor(name: string, fn: (s: Sensor) => void): void {
  for (const t of ['sgdisk', 'losetup', 'mkfs.xfs', 'blkid', 'xfs_db', 'bash', 'find']) needTool(t);
  const dir = join(firstbootCache, 'work', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const sensor: Sensor = { dir, disk: join(dir, 'disk.raw'), mnt: join(dir, 'mnt'), loops: [] };
  try {
    makeDisk(sensor.disk);
    fn(sensor);
  } finally {
    unmountSensor(sensor);
    rmSync(dir, { recursive: true, force: true });
  }
}

function uuids(disk: string): Record<string, string | undefined> {
  return Object.fromEntries(readGpt(disk).partitions.map((g) => [g.name, probeFs(disk, g).uuid]));
}

test('purge empties every data filesystem and changes nothing else on the disk', () => {
  withSensor('purge', (s) => {
    mountSensor(s);
    populate(s.mnt);
    const before = tree(s.mnt);
    unmountSensor(s);
    const uuidsBefore = uuids(s.disk);
    mountSensor(s);

    const r = shResult(join(bin, 'rocknsm-purge-data'), ['--yes', '--root', s.mnt]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, `purged ${catalog.dataPaths.length} data path(s)`);

    for (const p of catalog.dataPaths) {
      const at = join(s.mnt, p.path);
      // Nested data paths (none today) would stay as mount points; everything else is gone.
      assert.equal(readdirSync(at), [], `${p.path} is empty`);
      assert.ok(sh('findmnt', ['-n', '-o', 'FSTYPE', at]).includes('xfs'), `${p.path} is still its own XFS`);
    }
    const after = tree(s.mnt);
    const kept = (m: Map<string, string>) => new Map([...m].filter(([rel]) => !isInData(rel)));
    assert.equal(kept(after), kept(before), 'everything outside the data filesystems is unchanged');
    unmountSensor(s);
    assert.equal(uuids(s.disk), uuidsBefore, 'no filesystem was recreated');
    assert.match(readGpt(s.disk).verify, /No problems found/);
  });
});

test('factory reset leaves the machine set to run Ignition again, data paths empty', () => {
  withSensor('reset', (s) => {
    mountSensor(s);
    populate(s.mnt);
    const root = tree(join(s.mnt), (rel) => rel === 'var' || rel === 'etc' || rel === 'boot');
    const r = shResult(join(bin, 'rocknsm-factory-reset'), ['--yes', '--root', s.mnt]);
    assert.is(r.code, 0, r.stderr);

    assert.is(
      readFileSync(join(s.mnt, 'etc/machine-id'), 'utf8'),
      'uninitialized\n',
      'machine-id uninitialized',
    );
    assert.is(readFileSync(join(s.mnt, 'etc/hostname'), 'utf8'), 'localhost\n');
    assert.is(readFileSync(join(s.mnt, 'etc/rocknsm/rocknsm.env'), 'utf8'), 'ROCKNSM_MONITOR_INTERFACE=\n');
    assert.not.ok(existsSync(join(s.mnt, 'etc/added-by-admin.conf')));
    for (const p of catalog.dataPaths)
      assert.equal(readdirSync(join(s.mnt, p.path)), [], `${p.path} is empty`);
    const varLeft = [...tree(join(s.mnt, 'var')).keys()].map((k) => `/var/${k}`);
    for (const v of varLeft)
      assert.ok(
        catalog.dataPaths.some((p) => p.path === v || p.path.startsWith(`${v}/`)),
        `${v} is a data path or leads to one`,
      );
    assert.equal(
      tree(join(s.mnt), (rel) => rel === 'var' || rel === 'etc' || rel === 'boot'),
      root,
      '/usr and the rest of root untouched',
    );
    unmountSensor(s);

    // The flag is on the real boot partition (ext4, label boot), where the boot loader reads it.
    const boot = readGpt(s.disk).partitions.find((g) => g.name === 'boot')!;
    assert.is(probeFs(s.disk, boot).label, 'boot');
    const dev = attach(s.disk, boot);
    s.loops.push(dev);
    const ls = sh('debugfs', ['-R', 'ls -l /', dev]);
    assert.match(ls, /\signition\.firstboot\s*$/m);
    assert.match(ls, /\sloader\s*$/m, 'the rest of /boot is kept');
  });
});

test.run();
