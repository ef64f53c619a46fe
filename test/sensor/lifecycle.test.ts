// The sensor OS for real, x86_64 (issue 13): an image `rock-image build` made on the Fedora
// CoreOS-shaped Debian base (test/world/sensor-base.ts), with its own dracut, deployed by
// `rock-image artifacts` with its own ostree and GRUB, boots in QEMU through GRUB (blscfg), the
// image's kernel and initramfs, Ignition, ostree-prepare-root and systemd:
// 1. `rock-image test` boots the metal image (SeaBIOS) to the report of the image's own
//    rocknsm-boot-report.service: composefs root, every service active. The background child
//    that made the builds runs it (world.ts x86Builds), beside 2-5; the last test reads it.
// 2. First boot of the qcow2 image with a user config holding only the admin's SSH key: the
//    base config in the initramfs lays out the default profile; then, over SSH, the data
//    filesystems, their owners and modes, the services after their mounts, composefs.
// 3. An update (a second build, one overlay changed) from an air-gapped site (offline.ts): the
//    build published and bundled, a tampered copy of the bundle refused, the bundle loaded into an
//    empty site registry; the sensor, its route out removed, refuses the image signed by another
//    key, pulls ours with its own policy.json from the site, imports and stages it; GRUB boots
//    it, the booted commit records the digest the sensor verified; data and the admin's /etc
//    change survive. 4. A rollback boots the first again.
// 5. rocknsm-purge-data on the running system (data gone, partitions kept, services back), then
//    rocknsm-factory-reset from a unit, which reboots: the next boot is a first boot again
//    (Ignition with the flag, a new machine-id), same partitions and UUIDs, /etc reverted.
// One disk goes through 2-5; each boot is one QEMU process (a reboot ends it).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { SENTINEL_FS_UUID } from '../../pipeline/artifacts/layout.ts';
import { consoleReport, consoleTail } from '../../pipeline/boot/run.ts';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { catalogFromProject, loadProfile } from '../../pipeline/config/profile.ts';
import { repositoryOf } from '../../pipeline/plan/image-pins.ts';
import { keyPaths, POLICY_PATH, registriesDPath } from '../../pipeline/plan/trust.ts';
import {
  CINCINNATI_DROPIN,
  renderCincinnatiDropin,
  renderUpdatesDropin,
  UPDATES_DROPIN,
  updateServer,
} from '../../pipeline/plan/zincati.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { MONITOR_INTERFACE, SERVICES, serviceImage } from '../world/sensor-project.ts';
import {
  bootSensor,
  type Guest,
  makeSshKey,
  overlayDisk,
  type SshKey,
  sshKeyConfig,
} from '../world/sensor-vm.ts';
import { needTool, sh } from '../world/tools.ts';
import { type OfflineSite, offlineSite, type SiteUpdate, updateFromSite } from './offline.ts';
import {
  type Build,
  bootResult,
  NAME,
  OSNAME,
  projectOf,
  releaseKey,
  sensorWork,
  serviceDigest,
  serviceRegistry,
  V1,
  V2,
  x86Builds,
} from './world.ts';

const arch = 'x86_64';
const lifeDir = join(sensorWork, 'lifecycle');
const seconds: string[] = [];

interface DataPath {
  id: string;
  path: string;
  mode: string;
  owner: string;
  group: string;
}
const image = parse(readFileSync(join(repoRoot, 'manifests/image.yaml'), 'utf8'));
const dataPaths: DataPath[] = Object.entries(
  image['data-paths'] as Record<string, { path: string; mode?: string; owner?: string; group?: string }>,
).map(([id, d]) => ({
  id,
  path: d.path,
  mode: d.mode ?? '0750',
  owner: d.owner ?? 'root',
  group: d.group ?? 'root',
}));
const profile = parse(readFileSync(join(repoRoot, 'manifests/profiles/default.yaml'), 'utf8'));

/** The trust files (policy.json, registries.d entry, key) in an Ignition config, with the sha256 of their contents. */
function trustFilesOf(ignFile: string): { path: string; sha256: string }[] {
  const ign = JSON.parse(readFileSync(ignFile, 'utf8')) as {
    storage?: { files?: { path: string; contents?: { source?: string } }[] };
  };
  const wanted = new Set([POLICY_PATH, registriesDPath(NAME), keyPaths(NAME).gpg]);
  return (ign.storage?.files ?? [])
    .filter((f) => wanted.has(f.path))
    .map((f) => {
      const src = f.contents?.source ?? '';
      // Ignition's data URLs as plan/ignition.ts writes them: percent-encoded text or base64.
      const bytes = src.startsWith('data:;base64,')
        ? Buffer.from(src.slice('data:;base64,'.length), 'base64')
        : Buffer.from(decodeURIComponent(src.replace(/^data:,/, '')), 'utf8');
      return { path: f.path, sha256: createHash('sha256').update(bytes).digest('hex') };
    })
    .sort((a, b) => [...wanted].indexOf(a.path) - [...wanted].indexOf(b.path));
}

/** Console text without terminal control sequences. */
const plain = (log: string) => consoleTail(log, 1_000_000);

let b1: Build;
let key: SshKey;
let disk: string;
let site: OfflineSite;
const ref2 = `${OSNAME}/${V2}/${arch}`;
// The base and both builds start now, in a child process, beside the suites that run first.
void x86Builds();

interface Facts {
  cmdline: string;
  root: { fstype: string; source: string };
  /** partition label -> { uuid (filesystem), partuuid, fstype, mountpoint } */
  parts: Record<string, { uuid: string; fstype: string; mountpoints: string[] }>;
  diskGuid: string;
  states: Record<string, string>;
  release: string;
  machineId: string;
  bootedVersion: string;
}

/** What the tests read off a running sensor. */
function facts(g: Guest): Facts {
  const lsblk = JSON.parse(g.sh('lsblk -J -o NAME,PARTLABEL,FSTYPE,UUID,MOUNTPOINTS /dev/vda').stdout) as {
    blockdevices: {
      children?: {
        partlabel: string;
        fstype: string | null;
        uuid: string | null;
        mountpoints: (string | null)[];
      }[];
    }[];
  };
  const parts: Facts['parts'] = {};
  for (const c of lsblk.blockdevices[0]!.children ?? [])
    parts[c.partlabel] = {
      uuid: c.uuid ?? '',
      fstype: c.fstype ?? '',
      mountpoints: c.mountpoints.filter((m): m is string => !!m),
    };
  const [fstype, source] = g.sh('findmnt -n -o FSTYPE,SOURCE /').stdout.trim().split(/\s+/);
  const units = ['rocknsm.target', ...SERVICES.map((s) => `rocknsm-${s}.service`)];
  const states = Object.fromEntries(
    g
      .sh(`for u in ${units.join(' ')}; do echo "$u $(systemctl is-active $u)"; done`)
      .stdout.trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  );
  const booted = g.sh('. /usr/lib/os-release; echo "$IMAGE_VERSION"').stdout.trim();
  return {
    cmdline: g.sh('cat /proc/cmdline').stdout.trim(),
    root: { fstype: fstype!, source: source! },
    parts,
    diskGuid: g
      .sh("sgdisk -p /dev/vda | sed -n 's/^Disk identifier (GUID): //p'")
      .stdout.trim()
      .toLowerCase(),
    states,
    release: g.sh('cat /usr/share/rocknsm-test/release').stdout.trim(),
    machineId: g.sh('cat /etc/machine-id').stdout.trim(),
    bootedVersion: booted,
  };
}

/** The default profile's partitions that must exist: var and every data path the profile lists. */
const profileParts = () =>
  Object.entries(profile.partitions as Record<string, { enabled?: boolean }>)
    .filter(([, p]) => p.enabled !== false)
    .map(([id]) => ({
      id,
      label: id === 'var' ? 'var' : `rock-${id}`,
      path: id === 'var' ? '/var' : dataPaths.find((d) => d.id === id)!.path,
    }));

/** One boot of the sensor's disk (the qcow2 overlay all boots after the first share). */
const bootDisk = (log: string, timeoutSec: number, work: (g: Guest) => Promise<void>, config?: string) =>
  bootSensor({
    arch,
    disk,
    key,
    serialLog: join(lifeDir, log),
    timeoutSec,
    work,
    ...(config ? { config } : {}),
  });

function checkLayout(f: Facts, when: string): void {
  for (const p of profileParts()) {
    const got = f.parts[p.label];
    assert.ok(got, `${when}: partition ${p.label} exists`);
    assert.is(got!.fstype, 'xfs', `${when}: ${p.label} is XFS`);
    assert.ok(
      got!.mountpoints.includes(p.path),
      `${when}: ${p.label} mounted at ${p.path} (${got!.mountpoints})`,
    );
  }
  assert.equal(f.root, { fstype: 'overlay', source: 'composefs' }, `${when}: / is composefs`);
  for (const [u, s] of Object.entries(f.states)) assert.is(s, 'active', `${when}: ${u}`);
}

/** Every partition of the profile keeps the filesystem UUID of the first boot. */
function sameUuids(f: Facts, when: string): void {
  for (const p of profileParts())
    assert.is(f.parts[p.label]!.uuid, first.parts[p.label]!.uuid, `${p.label} UUID ${when}`);
}

test.before(async () => {
  for (const t of ['qemu-system-x86_64', 'qemu-img', 'zstd', 'ssh', 'ssh-keygen', 'sgdisk']) needTool(t);
  const t0 = Date.now();
  await serviceRegistry();
  b1 = await x86Builds()[0]!;
  const b2 = await x86Builds()[1]!;
  // The update comes from an air-gapped site: V2 published, bundled, loaded from the bundle.
  site = await offlineSite(b2, projectOf(arch, 'release-2'), releaseKey(), join(lifeDir, 'offline'));
  key = makeSshKey(join(lifeDir, 'key'));
  const qcow2 = join(lifeDir, 'qemu.qcow2');
  sh('zstd', ['-q', '-d', '-f', '-o', qcow2, join(b1.dir, b1.meta.images.qemu!.path)]);
  disk = overlayDisk(qcow2, 'qcow2', join(lifeDir, 'sensor.qcow2'));
  seconds.push(
    `base ${b1.baseSeconds} s, builds ${b1.seconds} s + ${b2.seconds} s (in the background), offline site (publish, bundle, load) ${site.seconds} s, set-up ${(Date.now() - t0) / 1000} s`,
  );
});
test.after(async () => {
  console.log(`sensor lifecycle: ${seconds.join('; ')}`);
  await site?.close();
});

let first: Facts;
let update: SiteUpdate;

test('first boot: the base config in the initramfs lays out the default profile; services start after their mounts', async () => {
  const config = sshKeyConfig(key);
  assert.equal(
    Object.keys(JSON.parse(config)).sort(),
    ['ignition', 'passwd'],
    'the user config has no storage',
  );
  const t = Date.now();
  let ordering = '';
  let owners = '';
  let containers = '';
  let prepareRoot = '';
  let zeekLog = '';
  let flag = '';
  let zincatiImage = '';
  let zincatiUpdates = '';
  // The followed stream's trust files, as the profile's Ignition config writes them.
  const trust = trustFilesOf(join(b1.dir, `${NAME}-${b1.version}-default.ign`));
  assert.equal(
    trust.map((f) => f.path),
    [POLICY_PATH, registriesDPath(NAME), keyPaths(NAME).gpg],
    'the default profile writes the three trust files',
  );
  let trustOnSensor = '';
  const r = await bootSensor({
    arch,
    disk,
    key,
    config,
    serialLog: join(lifeDir, 'boot1.log'),
    // The boot, then the update: the OS image pulled and imported under TCG.
    timeoutSec: 2700,
    work: async (g) => {
      first = facts(g);
      owners = g.sh(`stat -c '%n %u %g %a' ${dataPaths.map((d) => d.path).join(' ')}`).stdout;
      // Each service began starting only after each of its data mounts was active.
      // For each path a service requires mounted: the filesystem that holds it now, and when its
      // mount unit became active (paths on the root filesystem are left out).
      ordering = g.sh(
        `for s in ${SERVICES.map((s) => `rocknsm-${s}.service`).join(' ')}; do
           start=$(systemctl show -p InactiveExitTimestampMonotonic --value $s)
           for p in $(systemctl show -p RequiresMountsFor --value $s); do
             t=$(findmnt -n -o TARGET -T $p)
             [ "$t" = / ] && continue
             u=$(systemd-escape --path --suffix=mount $t)
             mounted=$(systemctl show -p ActiveEnterTimestampMonotonic --value $u)
             echo "$s $u $mounted $start"
           done
         done`,
      ).stdout;
      containers = g.sh("podman ps --format '{{.Names}} {{.Image}}'").stdout;
      prepareRoot = g.sh('journalctl -b -o cat -u ostree-prepare-root.service').stdout;
      zeekLog = g.sh('journalctl -b -o cat -u rocknsm-zeek.service').stdout;
      flag = g.sh('test -e /boot/ignition.firstboot && echo present || echo absent').stdout.trim();
      // Zincati's drop-ins: the image's graph, and the update strategy Ignition wrote (base config).
      zincatiImage = g.sh(`cat ${CINCINNATI_DROPIN}`, { allowFailure: true }).stdout;
      zincatiUpdates = g.sh(`cat ${UPDATES_DROPIN}`, { allowFailure: true }).stdout;
      trustOnSensor = g.sh(`sha256sum ${trust.map((f) => f.path).join(' ')}`, { allowFailure: true }).stdout;
      // For the next boots: a marker on every data filesystem, a change of the admin's in /etc.
      g.sh(
        `for d in ${dataPaths.map((d) => d.path).join(' ')}; do echo boot1 > "$d/rocknsm-test-marker"; done`,
      );
      g.sh('echo "site-note=kept across updates" > /etc/rocknsm/site-note.conf');
      // The update, from the air-gapped site only, staged as bootc stages one.
      update = updateFromSite(g, site, { os: OSNAME, ref: ref2, version: V2 });
      g.sh(update.commit ? 'systemctl reboot' : 'systemctl poweroff', { allowFailure: true });
    },
  });
  seconds.push(`first boot ${(Date.now() - t) / 1000} s`);
  const log = plain(r.log);
  assert.is(r.outcome, 'marker', consoleReport(r.log, 40));
  assert.match(log, /ROCKNSM-BOOT-OK VARIANT_ID=rocknsm/);
  // Ignition ran from the image's initramfs, with the base config baked into it.
  assert.ok(first.cmdline.includes('ignition.firstboot'), first.cmdline);
  assert.match(log, /Finished .*ignition-files\.service/);
  checkLayout(first, 'first boot');
  // The pristine disk's sentinel GUID was replaced (the GPT moved to the end of the real disk).
  assert.is.not(first.diskGuid, '00000000-0000-4000-a000-000000000001');
  // So were the sentinel filesystem UUIDs of boot and root (FCOS ignition-ostree-firstboot-uuid),
  // and the disk came with no root= or boot=: the first boot names the new UUIDs in the BLS entry
  // (FCOS coreos-boot-edit.sh), checked on the next boot's command line.
  assert.is.not(first.parts.boot!.uuid, SENTINEL_FS_UUID.boot);
  assert.is.not(first.parts.root!.uuid, SENTINEL_FS_UUID.root);
  assert.match(first.parts.boot!.uuid, /^[0-9a-f-]{36}$/);
  assert.match(first.parts.root!.uuid, /^[0-9a-f-]{36}$/);
  assert.not.match(first.cmdline, /(^| )(root|boot)=/, first.cmdline);
  assert.match(log, /fcos-standin-firstboot-uuid: boot had the sentinel UUID/);
  assert.match(log, /fcos-standin-firstboot-uuid: root had the sentinel UUID/);
  assert.match(prepareRoot, /composefs/i, prepareRoot);
  // tmpfiles made every data directory with its owner and mode, on its own filesystem.
  const id = (name: string) => (name === 'root' ? 0 : Number(name));
  for (const d of dataPaths)
    assert.ok(
      owners.includes(`${d.path} ${id(d.owner)} ${id(d.group)} ${Number.parseInt(d.mode, 8).toString(8)}\n`),
      `${d.path} ${d.owner}:${d.group} ${d.mode} in:\n${owners}`,
    );
  // The partitions' mount units (systemd-escape --path): the mounts made after switch-root.
  // /etc and /sysroot are mounted in the initramfs, before the units exist; they are left out.
  const unitOf = (path: string) => `${path.slice(1).replace(/-/g, '\\x2d').replace(/\//g, '-')}.mount`;
  const partUnits = new Set(profileParts().map((p) => unitOf(p.path)));
  const ordered = new Set<string>();
  for (const line of ordering.trim().split('\n')) {
    const [svc, mount, mounted, start] = line.split(' ');
    if (!partUnits.has(mount!)) continue;
    ordered.add(mount!);
    assert.ok(
      Number(mounted) > 0 && Number(mounted) <= Number(start),
      `${svc} started after ${mount}: ${line}`,
    );
  }
  // Every data partition of the profile is one that some service waits for.
  for (const p of profileParts().filter((p) => p.id !== 'var'))
    assert.ok(ordered.has(unitOf(p.path)), `a service requires ${p.path}: ${[...ordered].join(' ')}`);
  // The services are the quadlets of the image, running the stream's images by the digest the
  // project pinned (the quadlet's Image=, which podman records as the container's image name).
  for (const s of SERVICES) {
    const pinned = `${repositoryOf(serviceImage(s))}@${serviceDigest()}`;
    assert.match(containers, new RegExp(`^rocknsm-${s} ${pinned.replace(/[./]/g, '\\$&')}$`, 'm'));
  }
  assert.match(
    zeekLog,
    new RegExp(`rocknsm-test-service .* started: zeek -i ${MONITOR_INTERFACE} local rocknsm`),
  );
  assert.is(flag, 'absent', 'the first-boot flag is gone after the first boot');
  // Zincati does not run in this Debian world; its configuration is there as a Fedora CoreOS
  // sensor would read it: the image's base_url (the stable stream's site graph) and the default
  // profile's strategy, written by Ignition from the base config in the initramfs.
  const project = loadProject(projectPaths(repoRoot));
  const server = updateServer(resolveStream(project, 'stable', repoRoot).stream.publish)!;
  assert.match(server, /\/graph\/\$\{stream\}\/\$\{basearch\}\/$/);
  assert.fixture(zincatiImage, renderCincinnatiDropin(server, 'stable'));
  const defaults = loadProfile(
    join(repoRoot, 'manifests/profiles/default.yaml'),
    'manifests/profiles/default.yaml',
    catalogFromProject(project),
  );
  assert.match(zincatiUpdates, /^strategy = "periodic"$/m);
  assert.fixture(zincatiUpdates, renderUpdatesDropin(defaults.updates, 'default'));
  // The first pull is verified: the sensor holds our policy, lookaside entry and key with the
  // bytes the config carries, before anything (rocknsm-follow's bootc switch) pulls.
  assert.fixture(trustOnSensor, trust.map((f) => `${f.sha256}  ${f.path}\n`).join(''));
  writeFileSync(join(lifeDir, 'first.json'), JSON.stringify(first, null, 2));
});

test('offline update: a tampered bundle loads nothing; the sensor, with no route out, refuses another key and takes ours from the site', () => {
  seconds.push(`sensor pull ${update.seconds.pull} s, import and stage ${update.seconds.import} s`);
  // The site side: `bundle load` checks SHA256SUMS.sig, then every file, before loading anything.
  assert.is.not(site.tampered.code, 0, site.tampered.out);
  assert.match(site.tampered.out, /images\/os\/blobs\/sha256\/[0-9a-f]{64}/, site.tampered.out);
  assert.equal(site.tampered.catalog, [], 'nothing loaded from the tampered bundle');
  assert.match(site.loaded.out, `loaded stable ${V2} into 127.0.0.1:${site.mirrorPort}`);
  // The sensor: no default route, nothing outside reachable.
  assert.not.match(update.routeOut, /^default /m, update.routeOut);
  assert.match(update.routeOut, /Network is unreachable/, update.routeOut);
  // Its own policy.json (signedBy our key only) refuses the image signed by another key ...
  assert.is.not(update.refused.code, 0, update.refused.out);
  assert.match(update.refused.out, /rejected|signature/i, update.refused.out);
  process.stderr.write(
    `the sensor refused the other key's signature: ${update.refused.out.trim().split('\n').at(-1)}\n`,
  );
  // ... and accepts it with the bundle's signatures, from the site registry loaded from it.
  assert.is(update.accepted.code, 0, update.accepted.out);
  assert.is(update.digest, site.digest, 'the sensor pulled the published x86_64 manifest');
  assert.match(update.commit, /^[0-9a-f]{64}$/, 'the pulled image imported and staged');
});

let second: Facts;
let bootedDigest = '';

test('update: the staged second build boots through GRUB; data, UUIDs and the /etc change kept', async () => {
  let note = '';
  let markers = '';
  const t = Date.now();
  const r = await bootDisk('boot2-update.log', 900, async (g) => {
    second = facts(g);
    bootedDigest = g
      .sh(
        "ostree show --print-metadata-key=ostree.manifest-digest $(ostree admin status | sed -n 's/^\\* [^ ]* \\([0-9a-f]\\{64\\}\\)\\..*/\\1/p')",
      )
      .stdout.trim();
    note = g.sh('cat /etc/rocknsm/site-note.conf').stdout;
    markers = g.sh(`cat ${dataPaths.map((d) => `${d.path}/rocknsm-test-marker`).join(' ')}`).stdout;
    // Roll back: the first deployment becomes the default again.
    g.sh('ostree admin set-default 1');
    g.sh('systemctl reboot', { allowFailure: true });
  });
  seconds.push(`update boot ${(Date.now() - t) / 1000} s`);
  assert.is(r.outcome, 'marker', consoleReport(r.log, 40));
  assert.is(second.bootedVersion, V2);
  assert.is(bootedDigest, `'${site.digest}'`, 'the booted commit is the image the sensor verified');
  assert.is(second.release, 'release-2', 'the changed overlay');
  assert.not.ok(second.cmdline.includes('ignition.firstboot'));
  assert.match(second.cmdline, new RegExp(`ostree=/ostree/boot\\.0/${OSNAME}/`));
  checkLayout(second, 'after the update');
  sameUuids(second, 'after the update');
  // The first boot's BLS edit, carried by ostree into the staged deployment's entry.
  assert.match(second.cmdline, new RegExp(` root=UUID=${first.parts.root!.uuid} rw rootflags=prjquota( |$)`));
  assert.match(second.cmdline, new RegExp(` boot=UUID=${first.parts.boot!.uuid}( |$)`));
  for (const l of ['boot', 'root']) assert.is(second.parts[l]!.uuid, first.parts[l]!.uuid, `${l} UUID kept`);
  assert.is(note, 'site-note=kept across updates\n');
  assert.is(markers, 'boot1\n'.repeat(dataPaths.length));
  assert.is(second.machineId, first.machineId);
});

let third: Facts | undefined;

test('rollback: the first deployment boots again; then a live purge, and a factory reset that reboots', async () => {
  let markersAfterPurge = '';
  let afterPurge: Facts | undefined;
  let purgeOut = '';
  const t = Date.now();
  const r = await bootDisk('boot3-rollback.log', 1500, async (g) => {
    third = facts(g);
    // rocknsm-purge-data on the running system: it stops rocknsm.target, empties every data
    // path (a filesystem of its own each), lets tmpfiles make the directories, starts it again.
    purgeOut = g.sh('rocknsm-purge-data --yes 2>&1', { timeoutSec: 900 }).stdout;
    markersAfterPurge = g.sh(
      `for d in ${dataPaths.map((d) => d.path).join(' ')}; do test -e "$d/rocknsm-test-marker" && echo "$d"; done; true`,
    ).stdout;
    afterPurge = facts(g);
    // rocknsm-factory-reset from a unit, as a site would start it (its output on the console);
    // it ends by rebooting, which ends this VM.
    g.sh(
      'systemd-run --unit=rocknsm-test-factory-reset --property=StandardOutput=tty --property=StandardError=tty --property=TTYPath=/dev/ttyS0 rocknsm-factory-reset --yes',
    );
  });
  seconds.push(`rollback boot, purge and factory reset ${(Date.now() - t) / 1000} s`);
  const log = plain(r.log);
  assert.is(r.outcome, 'marker', consoleReport(r.log, 40));
  assert.ok(third);
  assert.is(third!.bootedVersion, V1);
  assert.is(third!.release, 'release-1');
  checkLayout(third!, 'after the rollback');
  // The purge: every marker gone, the partitions (same filesystems) mounted, services back.
  assert.match(purgeOut, /rocknsm\.target/, purgeOut);
  assert.is(markersAfterPurge, '', `markers left after the purge:\n${markersAfterPurge}`);
  checkLayout(afterPurge!, 'after the live purge');
  sameUuids(afterPurge!, 'after the purge');
  // The reset ran to its end and rebooted (the VM ended without the timeout).
  assert.match(log, /Factory reset summary:/);
  assert.match(log, /Rebooting now\./);
});

test('factory reset: the next boot is a first boot again; partitions and UUIDs kept, /etc reverted', async () => {
  let fourth: Facts | undefined;
  let note = '';
  let flag = '';
  const t = Date.now();
  // Ignition provisions the sensor again: the user config (the admin's key) is given again.
  const r = await bootDisk(
    'boot4-reset.log',
    1200,
    async (g) => {
      fourth = facts(g);
      note = g.sh('cat /etc/rocknsm/site-note.conf 2>&1 || true').stdout;
      flag = g.sh('test -e /boot/ignition.firstboot && echo present || echo absent').stdout.trim();
      g.sh('systemctl poweroff', { allowFailure: true });
    },
    sshKeyConfig(key),
  );
  seconds.push(`boot after the factory reset ${(Date.now() - t) / 1000} s`);
  const log = plain(r.log);
  assert.is(r.outcome, 'marker', consoleReport(r.log, 40));
  assert.ok(fourth);
  // A first boot for Ignition (GRUB saw the flag) and for systemd (a new machine-id).
  assert.ok(fourth!.cmdline.includes('ignition.firstboot'), fourth!.cmdline);
  assert.match(log, /Finished .*ignition-disks\.service/);
  assert.match(log, /Detected first boot/);
  assert.is.not(fourth!.machineId, first.machineId);
  assert.is(flag, 'absent');
  // The same deployment, partitions and filesystems; the admin's /etc change is gone.
  assert.is(fourth!.bootedVersion, V1);
  checkLayout(fourth!, 'after the factory reset');
  sameUuids(fourth!, 'after the reset');
  assert.match(note, /No such file/, note);
});

test('rock-image test: the metal image boots through GRUB, its own initramfs and ostree to the boot report', async () => {
  // The background child ran it once V2 was built, beside this suite's boots.
  await x86Builds()[2];
  const r = bootResult(b1, 'metal-bios');
  seconds.push(`rock-image test metal-bios ${r.seconds} s (in the background)`);
  const log = plain(readFileSync(join(b1.dir, 'boot/metal-bios.log'), 'utf8'));
  assert.is(r.code, 0, `${r.stderr}\n${log.slice(-3000)}`);
  // The image's GRUB (2.14, blscfg) booted ostree's BLS entry.
  assert.match(log, /GNU GRUB +version 2\.14/);
  assert.match(
    log,
    new RegExp(
      `Command line: BOOT_IMAGE=/ostree/${OSNAME}-[0-9a-f]{64}/vmlinuz-\\S+ rw ignition\\.firstboot .*ignition\\.platform\\.id=metal .*ostree=/ostree/boot\\.1/${OSNAME}/[0-9a-f]{64}/0`,
    ),
  );
  // A pristine disk: no root= or boot= yet (the first boot names the new UUIDs).
  assert.not.match(/Command line: (.*)/.exec(log)?.[1] ?? '', /(^| )(root|boot)=/);
  // The image's initramfs: Ignition, ostree-prepare-root, switch-root.
  for (const unit of ['ignition-disks', 'ignition-mount', 'ignition-files', 'ostree-prepare-root'])
    assert.match(log, new RegExp(`Finished .*${unit}\\.service`), unit);
  assert.match(log, /Reached target .*initrd-switch-root\.target/);
  // The running system's report: composefs, every service active, the marker.
  assert.match(log, /rocknsm-boot-report: \/ is overlay from composefs/);
  for (const s of SERVICES)
    assert.match(log, new RegExp(`rocknsm-boot-report: rocknsm-${s}\\.service active`));
  assert.match(log, new RegExp(`ROCKNSM-BOOT-OK VARIANT_ID=rocknsm VERSION=${V1.replace(/\./g, '\\.')}`));
  const bt = JSON.parse(readFileSync(join(b1.dir, 'meta.json'), 'utf8'))['rocknsm.boot-tests'];
  assert.is(bt['metal-bios'].result, 'pass');
});

test.run();
