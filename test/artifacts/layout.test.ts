// pipeline/artifacts/layout.ts: the pure parts of artifact planning (sector arithmetic, UUIDs,
// kernel arguments, kargs.d parsing, BLS -> grub.cfg, file names), checked against sgdisk for
// the command line it is given.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  artifactFile,
  diskKargs,
  diskLayout,
  kargsFromToml,
  parseBls,
  platformsOfStream,
  renderBlsGrubCfg,
  renderGrubCfg,
  rootSizeMiB,
  seededUuid,
  setPlatformId,
} from '../../pipeline/artifacts/layout.ts';
import { sgdiskArgs } from '../../pipeline/exec/sgdisk.ts';
import { needTool, sh } from '../world/tools.ts';

const bls = `title Fedora CoreOS 41 41.20261122.3.0 (ostree:0)
version 1
options root=UUID=r rw ignition.platform.id=metal $ignition_firstboot ostree=/ostree/boot.1/rocknsm-coreos/abc/0
linux /ostree/rocknsm-coreos-abc/vmlinuz-6.11
initrd /ostree/rocknsm-coreos-abc/initramfs-6.11.img
`;

test('diskLayout: FCOS sizes in sectors, 1 MiB aligned, file ends 1 MiB after root', () => {
  const l = diskLayout('x86_64', 600, 'seed');
  assert.equal(
    l.table.partitions.map((p) => [p.number, p.label, p.start, p.sectors]),
    [
      [1, 'BIOS-BOOT', 2048, 2048],
      [2, 'EFI-SYSTEM', 4096, 127 * 2048],
      [3, 'boot', 4096 + 127 * 2048, 384 * 2048],
      [4, 'root', 4096 + 511 * 2048, 600 * 2048],
    ],
  );
  assert.is(l.size, (1 + 1 + 127 + 384 + 600 + 1) * 1048576);
  assert.equal(l.ranges.boot, { offset: (2 + 127) * 1048576, size: 384 * 1048576 });
  const a = diskLayout('aarch64', 600, 'seed');
  assert.is(a.table.partitions[0]!.label, 'reserved');
  assert.is(a.table.partitions[3]!.typeGuid, '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
});

test("diskLayout: Fedora CoreOS's sentinel disk GUID and filesystem UUIDs, seeded partition GUIDs", () => {
  const a = diskLayout('x86_64', 512, 'rocknsm-coreos/1/x86_64');
  const b = diskLayout('x86_64', 512, 'rocknsm-coreos/1/x86_64');
  const c = diskLayout('x86_64', 512, 'rocknsm-coreos/2/x86_64');
  assert.equal(a, b);
  // The values the first boot looks for: fedora-coreos-config 35coreos-ignition/coreos-gpt-setup.sh:7
  // and 40ignition-ostree/ignition-ostree-firstboot-uuid:12-13 @2d0fce6d (the same as coreos-assembler
  // coreos.osbuild.x86_64.mpp.yaml:20-26,62 @05db482e).
  for (const l of [a, c]) {
    assert.is(l.table.diskGuid, '00000000-0000-4000-a000-000000000001');
    assert.is(l.uuids.boot, '96d15588-3596-4b3c-adca-a2ff7279ea63');
    assert.is(l.uuids.root, '910678ff-f77e-4a7d-8d53-86f2ac47a823');
  }
  const ids = a.table.partitions.map((p) => p.guid);
  assert.is(new Set(ids).size, ids.length);
  assert.is.not(a.table.partitions[3]!.guid, c.table.partitions[3]!.guid);
  for (const id of ids)
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(a.uuids.espVolumeId, /^[0-9a-f]{8}$/);
  assert.is(seededUuid('x'), seededUuid('x'));
});

test('sgdiskArgs: sgdisk writes exactly the planned table', () => {
  needTool('sgdisk');
  const dir = mkdtempSync(join(tmpdir(), 'rock-layout-'));
  try {
    const l = diskLayout('aarch64', 512, 'seed');
    const file = join(dir, 'disk.raw');
    sh('truncate', ['-s', String(l.size), file]);
    sh('sgdisk', sgdiskArgs(l.table, file));
    const printed = sh('sgdisk', ['--print', file]);
    assert.match(printed, new RegExp(`Disk identifier \\(GUID\\): ${l.table.diskGuid}`, 'i'));
    for (const p of l.table.partitions) {
      const info = sh('sgdisk', ['--info', String(p.number), file]);
      assert.match(info, new RegExp(`First sector: ${p.start} `));
      assert.match(info, new RegExp(`Last sector: ${p.start + p.sectors - 1} `));
      assert.match(info, new RegExp(`Partition GUID code: ${p.typeGuid}`, 'i'));
      assert.match(info, new RegExp(`Partition unique GUID: ${p.guid}`, 'i'));
      assert.match(info, new RegExp(`Partition name: '${p.label}'`));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rootSizeMiB: 1.5x content + 256 MiB, never under 512', () => {
  assert.is(rootSizeMiB(0), 512);
  assert.is(rootSizeMiB(1024 * 1048576), 1536 + 256);
});

test('diskKargs: what Fedora CoreOS deploys, with no root=, boot= or rootflags= before the first boot', () => {
  const k = diskKargs({ arch: 'aarch64', platformId: 'qemu', imageKargs: ['audit=0'] });
  // coreos-assembler build.common.ipp.yaml:128-144 @05db482e: the deploy stage gets `rw`,
  // `$ignition_firstboot` and the extra kargs, and no `rootfs` option, so org.osbuild.ostree.deploy.
  // container (:57-59 @f6b23dbc) adds no root=; rdcore rootmap / bind-boot add root=, rootflags=
  // and boot= on the first boot, with the new UUIDs (rootmap.rs:66,75-81,258-269 @bee45001).
  for (const k0 of k) assert.not.match(k0, /^(root|boot|rootflags)=/, k0);
  assert.ok(k.includes('rw'));
  assert.ok(k.includes('$ignition_firstboot'));
  // fedora-coreos-config image-base.yaml:9-11 @2d0fce6d.
  assert.ok(k.includes('mitigations=auto,nosmt'));
  // org.osbuild.coreos.platform:50,60-61 @f6b23dbc.
  assert.ok(k.includes('ignition.platform.id=qemu'));
  assert.ok(k.includes('console=ttyAMA0,115200n8'));
  assert.is(k.at(-1), 'audit=0', "the image's kargs.d arguments come last");
});

test('kargsFromToml: file order, match-architectures, multi-line arrays', () => {
  const files = [
    { name: '20-b.toml', text: 'kargs = ["b=1"]\nmatch-architectures = ["aarch64"]\n' },
    { name: '10-a.toml', text: 'kargs = [\n  "a=1",\n  "a2",\n]\n' },
    { name: '30-c.toml', text: 'match-architectures = ["x86_64"]\nkargs = ["c"]\n' },
  ];
  assert.equal(kargsFromToml(files, 'x86_64'), ['a=1', 'a2', 'c']);
  assert.equal(kargsFromToml(files, 'aarch64'), ['a=1', 'a2', 'b=1']);
  assert.throws(() => kargsFromToml([{ name: 'x.toml', text: "kargs = ['single']" }], 'x86_64'), /x\.toml/);
});

test('grub.cfg from BLS: one entry with the BLS linux/initrd/options; serial only on x86_64', () => {
  const e = parseBls('ostree-1-rocknsm-coreos.conf', bls);
  assert.is(e.linux, '/ostree/rocknsm-coreos-abc/vmlinuz-6.11');
  const cfg = renderGrubCfg([e], 'x86_64');
  assert.ok(cfg.includes(`menuentry 'Fedora CoreOS 41 41.20261122.3.0 (ostree:0)' --id 'ostree-0' {\n`));
  assert.ok(cfg.includes(`  linux /ostree/rocknsm-coreos-abc/vmlinuz-6.11 ${e.options}\n`));
  assert.ok(cfg.includes('  initrd /ostree/rocknsm-coreos-abc/initramfs-6.11.img\n'));
  assert.match(cfg, /^if serial --unit=0 --speed=115200; then$/m);
  assert.not.match(renderGrubCfg([e], 'aarch64'), /serial/);
  assert.throws(() => renderGrubCfg([], 'x86_64'), /no BLS entries/);
  assert.throws(() => parseBls('x.conf', 'title t\n'), /x\.conf has no 'version' line/);
  // GRUB's own parser accepts it (grub-script-check, shipped with grub-mkimage in grub-common).
  needTool('grub-mkimage');
  const check = sh('sh', ['-c', 'grub-script-check && echo ok'], { input: cfg });
  assert.is(check.trim(), 'ok');
});

test('grub.cfg for a GRUB with blscfg: static; the first-boot switch is set before blscfg reads the entries', () => {
  const cfg = renderBlsGrubCfg('x86_64');
  const lines = cfg.trim().split('\n');
  // GRUB 2.14's blscfg expands the options' variables when it runs (blsuki.c :819-820), so
  // $ignition_firstboot must have its value by then; it is the last command.
  assert.is(lines.at(-1), 'blscfg');
  assert.ok(lines.indexOf('set ignition_firstboot=""') < lines.length - 1);
  assert.match(cfg, /^if \[ -f \(\$root\)\/ignition\.firstboot \]; then$/m);
  assert.not.match(cfg, /menuentry|linux |initrd /, 'no menu written once');
  assert.match(cfg, /^if serial --unit=0 --speed=115200; then$/m);
  assert.not.match(renderBlsGrubCfg('aarch64'), /serial/);
  needTool('grub-mkimage');
  assert.is(sh('sh', ['-c', 'grub-script-check && echo ok'], { input: cfg }).trim(), 'ok');
});

test('setPlatformId rewrites only the options line', () => {
  const q = setPlatformId(bls, 'qemu');
  assert.match(q, /^options .*ignition\.platform\.id=qemu \$ignition_firstboot/m);
  assert.is(q.replace('platform.id=qemu', 'platform.id=metal'), bls);
});

test('file names follow formats.md §4; stream artifacts map to platforms', () => {
  assert.is(artifactFile('n', '1', 'x86_64', 'metal'), 'n-1-metal.x86_64.raw');
  assert.is(artifactFile('n', '1', 'aarch64', 'qemu'), 'n-1-qemu.aarch64.qcow2');
  assert.is(artifactFile('n', '1', 'x86_64', 'live-kernel'), 'n-1-live-kernel.x86_64');
  assert.is(artifactFile('n', '1', 'x86_64', 'live-initramfs'), 'n-1-live-initramfs.x86_64.img');
  assert.is(artifactFile('n', '1', 'x86_64', 'live-rootfs'), 'n-1-live-rootfs.x86_64.img');
  assert.is(artifactFile('n', '1', 'x86_64', 'live-iso'), 'n-1-live-iso.x86_64.iso');
  assert.is(artifactFile('n', '1', 'x86_64', 'metal4k'), 'n-1-metal4k.x86_64.raw');
  assert.equal(platformsOfStream(['ostree', 'pxe', 'metal', 'live-iso', 'metal4k']), [
    'metal',
    'metal4k',
    'pxe',
    'iso',
  ]);
});

test.run();
