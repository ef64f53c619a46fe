// pipeline/boot/plan.ts: the case matrix, how each artifact is staged, the exact QEMU command
// line of every case (through qemuArgv, as `rock-image test` runs it), the rewriting of the
// build's own PXE scripts, refusals, and the meta.json record.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BootPlanError,
  type BootPlanInput,
  bootCases,
  DEFAULT_MARKER,
  directKargs,
  FAIL_MARKERS,
  grubNetConfig,
  localGrubPxe,
  localIpxe,
  planBoot,
  recordResults,
} from '../../pipeline/boot/plan.ts';
import { qemuArgv } from '../../pipeline/exec/qemu.ts';

const V = '41.20261122.3.0';
const N = 'rocknsm-coreos';
const f = (arch: string, p: string) => `${N}-${V}-${p}.${arch}`;
const images = (arch: 'x86_64' | 'aarch64') => ({
  ostree: { path: `${f(arch, 'ostree')}.ociarchive`, sha256: 'o'.repeat(64) },
  metal: { path: `${f(arch, 'metal')}.raw.zst`, sha256: 'm'.repeat(64) },
  qemu: { path: `${f(arch, 'qemu')}.qcow2.xz`, sha256: 'q'.repeat(64) },
  'live-kernel': { path: f(arch, 'live-kernel'), sha256: 'k'.repeat(64) },
  'live-initramfs': { path: `${f(arch, 'live-initramfs')}.img`, sha256: 'i'.repeat(64) },
  'live-rootfs': { path: `${f(arch, 'live-rootfs')}.img`, sha256: 'r'.repeat(64) },
  'pxe-ipxe': { path: `${f(arch, 'live-pxe')}.ipxe`, sha256: 'p'.repeat(64) },
  'pxe-grub': { path: `${f(arch, 'live-grub')}.cfg`, sha256: 'g'.repeat(64) },
});
const site = (arch: string) => `https://example.org/builds/${V}/${arch}`;
const ipxe = (arch: 'x86_64' | 'aarch64') =>
  [
    '#!ipxe',
    '# comment',
    `set base-url ${site(arch)}`,
    `set ignition-url ${site(arch)}/x.ign`,
    `kernel \${base-url}/${f(arch, 'live-kernel')} initrd=main coreos.live.rootfs_url=\${base-url}/${f(arch, 'live-rootfs')}.img ignition.firstboot ignition.platform.id=metal ignition.config.url=\${ignition-url} console=tty0 console=${arch === 'x86_64' ? 'ttyS0' : 'ttyAMA0'},115200n8 ostree=/ostree/boot.1/${N}/abc/0`,
    `initrd --name main \${base-url}/${f(arch, 'live-initramfs')}.img`,
    'boot',
    '',
  ].join('\n');
const grub = (arch: string) =>
  [
    '# grub',
    'set timeout=1',
    `menuentry 'x' {`,
    `  linux ${f(arch, 'live-kernel')} coreos.live.rootfs_url=${site(arch)}/${f(arch, 'live-rootfs')}.img ignition.firstboot ostree=/ostree/boot.1/${N}/abc/0`,
    `  initrd ${f(arch, 'live-initramfs')}.img`,
    '}',
    '',
  ].join('\n');

const input = (arch: 'x86_64' | 'aarch64', extra: Partial<BootPlanInput> = {}): BootPlanInput => ({
  arch,
  version: V,
  buildDir: `/o/builds/${V}/${arch}`,
  workDir: `/o/work/boot/${arch}`,
  images: images(arch),
  ...extra,
});
const texts = (p: string) => {
  const arch = p.includes('aarch64') ? 'aarch64' : 'x86_64';
  if (p.endsWith('.ipxe')) return ipxe(arch);
  if (p.endsWith('.cfg')) return grub(arch);
  throw new Error(`unexpected read of ${p}`);
};
const plan = (arch: 'x86_64' | 'aarch64', extra: Partial<BootPlanInput> = {}) =>
  planBoot(input(arch, extra), texts);
const run = (arch: 'x86_64' | 'aarch64', id: string) => {
  const r = plan(arch).runs.find((x) => x.case.id === id);
  if (!r) throw new Error(`no ${arch} ${id}`);
  return r;
};
const B = (arch: string) => `/o/builds/${V}/${arch}`;
const W = (arch: string) => `/o/work/boot/${arch}`;
const marker = `ROCKNSM-BOOT-OK VARIANT_ID=rocknsm VERSION=${V}`;

/** The part of every command line that only depends on arch and memory (disk cases get 2 GiB:
 * a real image starts its services). */
const head = (arch: 'x86_64' | 'aarch64', log: string, mem?: number) =>
  arch === 'x86_64'
    ? ['-machine', 'q35', '-cpu', 'max', '-accel', 'tcg', '-m', String(mem ?? 1024), '-smp', '1']
        .concat(['-nographic', '-no-reboot', '-monitor', 'none'])
        .concat([
          '-chardev',
          `file,id=console0,path=${B(arch)}/boot/${log}.log`,
          '-serial',
          'chardev:console0',
        ])
    : ['-machine', 'virt', '-cpu', 'cortex-a57', '-accel', 'tcg', '-m', String(mem ?? 1536), '-smp', '1']
        .concat(['-nographic', '-no-reboot', '-monitor', 'none'])
        .concat([
          '-chardev',
          `file,id=console0,path=${B(arch)}/boot/${log}.log`,
          '-serial',
          'chardev:console0',
        ]);

const ovmf = (vars: string) => [
  '-drive',
  'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
  '-drive',
  `if=pflash,format=raw,unit=1,file=${vars}`,
];
const aavmf = (vars: string) => [
  '-drive',
  'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd',
  '-drive',
  `if=pflash,format=raw,unit=1,file=${vars}`,
];
/** A disk case's drive: the qcow2 overlay over the artifact; and the network the services pull over. */
const disk = (file: string) => [
  '-drive',
  `if=none,id=disk0,file=${file},format=qcow2,discard=unmap`,
  '-device',
  'virtio-blk-pci,drive=disk0',
  '-netdev',
  'user,id=net0',
  '-device',
  'virtio-net-pci,netdev=net0',
];
const overlay = (arch: string, id: string, from: string, format: 'raw' | 'qcow2') => ({
  kind: 'overlay',
  from,
  format,
  to: `${W(arch)}/${id}.overlay.qcow2`,
  sizeGiB: 1024,
});

test('matrix: the cases of each arch, unique per arch', () => {
  assert.equal(
    bootCases.filter((c) => c.arch === 'x86_64').map((c) => c.id),
    ['metal-bios', 'metal-uefi', 'qemu', 'pxe', 'pxe-direct'],
  );
  assert.equal(
    bootCases.filter((c) => c.arch === 'aarch64').map((c) => c.id),
    ['metal-uefi', 'qemu', 'pxe', 'pxe-direct'],
  );
  assert.ok(!bootCases.some((c) => c.arch === 'aarch64' && c.firmware === 'bios'));
  assert.equal(
    plan('x86_64').runs.map((r) => r.case.id),
    ['metal-bios', 'metal-uefi', 'qemu', 'pxe', 'pxe-direct'],
  );
});

test('x86_64 metal-bios: decompressed raw disk under a 1 TiB overlay, SeaBIOS, network', () => {
  const r = run('x86_64', 'metal-bios');
  const raw = `${W('x86_64')}/${f('x86_64', 'metal')}.raw`;
  assert.equal(r.steps, [
    {
      kind: 'decompress',
      from: `${B('x86_64')}/${f('x86_64', 'metal')}.raw.zst`,
      to: raw,
      compression: 'zstd',
    },
    overlay('x86_64', 'metal-bios', raw, 'raw'),
  ]);
  const { cmd, args } = qemuArgv(r.vm);
  assert.is(cmd, 'qemu-system-x86_64');
  assert.equal(args, [
    ...head('x86_64', 'metal-bios', 2048),
    ...disk(`${W('x86_64')}/metal-bios.overlay.qcow2`),
  ]);
  assert.is(r.vm.marker, marker);
  assert.equal(r.vm.failMarkers, FAIL_MARKERS);
  assert.ok(FAIL_MARKERS.includes('You are in emergency mode'));
  assert.is(r.vm.timeoutSec, 600);
  assert.equal(r.tested, { metal: 'm'.repeat(64) });
});

test('x86_64 metal-uefi: OVMF code read-only from flash, a variable store of its own', () => {
  const r = run('x86_64', 'metal-uefi');
  const raw = `${W('x86_64')}/${f('x86_64', 'metal')}.raw`;
  assert.equal(r.vm.pflash, {
    code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
    varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd',
    vars: `${W('x86_64')}/metal-uefi.vars.fd`,
  });
  assert.equal(r.steps[1], overlay('x86_64', 'metal-uefi', raw, 'raw'));
  assert.equal(qemuArgv(r.vm).args, [
    ...head('x86_64', 'metal-uefi', 2048),
    ...ovmf(`${W('x86_64')}/metal-uefi.vars.fd`),
    ...disk(`${W('x86_64')}/metal-uefi.overlay.qcow2`),
  ]);
});

test('x86_64 qemu: the qcow2 (xz) decompressed, SeaBIOS', () => {
  const r = run('x86_64', 'qemu');
  const q = `${W('x86_64')}/${f('x86_64', 'qemu')}.qcow2`;
  assert.equal(r.steps, [
    { kind: 'decompress', from: `${B('x86_64')}/${f('x86_64', 'qemu')}.qcow2.xz`, to: q, compression: 'xz' },
    overlay('x86_64', 'qemu', q, 'qcow2'),
  ]);
  assert.equal(qemuArgv(r.vm).args, [
    ...head('x86_64', 'qemu', 2048),
    ...disk(`${W('x86_64')}/qemu.overlay.qcow2`),
  ]);
});

test('x86_64 pxe: TFTP root with the PXE files and the build iPXE script as boot file', () => {
  const r = run('x86_64', 'pxe');
  const t = `${W('x86_64')}/tftp`;
  assert.equal(r.steps, [
    {
      kind: 'link',
      from: `${B('x86_64')}/${f('x86_64', 'live-kernel')}`,
      to: `${t}/${f('x86_64', 'live-kernel')}`,
    },
    {
      kind: 'link',
      from: `${B('x86_64')}/${f('x86_64', 'live-initramfs')}.img`,
      to: `${t}/${f('x86_64', 'live-initramfs')}.img`,
    },
    {
      kind: 'link',
      from: `${B('x86_64')}/${f('x86_64', 'live-rootfs')}.img`,
      to: `${t}/${f('x86_64', 'live-rootfs')}.img`,
    },
    { kind: 'write', to: `${t}/boot.ipxe`, text: ipxe('x86_64').replace(site('x86_64'), 'tftp://10.0.2.2') },
  ]);
  assert.equal(qemuArgv(r.vm).args, [
    ...head('x86_64', 'pxe'),
    '-netdev',
    `user,id=net0,tftp=${t},bootfile=boot.ipxe`,
    '-device',
    'virtio-net-pci,netdev=net0',
  ]);
  assert.equal(Object.keys(r.tested), ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-ipxe']);
});

test('x86_64 pxe-direct: -kernel, rootfs appended to the initramfs, the iPXE kernel arguments', () => {
  const r = run('x86_64', 'pxe-direct');
  const initrd = `${W('x86_64')}/initramfs+rootfs.img`;
  assert.equal(r.steps, [
    {
      kind: 'concat',
      from: [
        `${B('x86_64')}/${f('x86_64', 'live-initramfs')}.img`,
        `${B('x86_64')}/${f('x86_64', 'live-rootfs')}.img`,
      ],
      to: initrd,
    },
  ]);
  assert.equal(qemuArgv(r.vm).args, [
    ...head('x86_64', 'pxe-direct'),
    '-kernel',
    `${B('x86_64')}/${f('x86_64', 'live-kernel')}`,
    '-initrd',
    initrd,
    '-append',
    `ignition.firstboot ignition.platform.id=metal ignition.config.url=${site('x86_64')}/x.ign console=tty0 console=ttyS0,115200n8 ostree=/ostree/boot.1/${N}/abc/0`,
    '-nic',
    'none',
  ]);
});

test('aarch64 metal-uefi and qemu: virt, cortex-a57, AAVMF from flash', () => {
  const raw = `${W('aarch64')}/${f('aarch64', 'metal')}.raw`;
  const m = run('aarch64', 'metal-uefi');
  const { cmd, args } = qemuArgv(m.vm);
  assert.is(cmd, 'qemu-system-aarch64');
  assert.equal(m.steps[1], overlay('aarch64', 'metal-uefi', raw, 'raw'));
  assert.equal(args, [
    ...head('aarch64', 'metal-uefi', 2048),
    ...aavmf(`${W('aarch64')}/metal-uefi.vars.fd`),
    ...disk(`${W('aarch64')}/metal-uefi.overlay.qcow2`),
  ]);
  assert.is(m.vm.timeoutSec, 1200);
  const q = run('aarch64', 'qemu');
  assert.equal(
    q.steps[1],
    overlay('aarch64', 'qemu', `${W('aarch64')}/${f('aarch64', 'qemu')}.qcow2`, 'qcow2'),
  );
  assert.equal(qemuArgv(q.vm).args, [
    ...head('aarch64', 'qemu', 2048),
    ...aavmf(`${W('aarch64')}/qemu.vars.fd`),
    ...disk(`${W('aarch64')}/qemu.overlay.qcow2`),
  ]);
});

test('aarch64 pxe: UEFI PXE loads a GRUB network image that reads the build GRUB snippet', () => {
  const r = run('aarch64', 'pxe');
  const t = `${W('aarch64')}/tftp`;
  assert.equal(r.steps.slice(3), [
    {
      kind: 'write',
      to: `${t}/grub.cfg`,
      text: grub('aarch64').replace(
        `${site('aarch64')}/${f('aarch64', 'live-rootfs')}`,
        `tftp://10.0.2.2/${f('aarch64', 'live-rootfs')}`,
      ),
    },
    { kind: 'grub-net', to: `${t}/grubnetaa64.efi`, earlyConfig: grubNetConfig },
  ]);
  assert.match(grubNetConfig, /^set root=\(tftp,10\.0\.2\.2\)$/m);
  assert.equal(qemuArgv(r.vm).args, [
    ...head('aarch64', 'pxe'),
    ...aavmf(`${W('aarch64')}/pxe.vars.fd`),
    '-netdev',
    `user,id=net0,tftp=${t},bootfile=grubnetaa64.efi`,
    '-device',
    'virtio-net-pci,netdev=net0',
  ]);
});

test('aarch64 pxe-direct: ttyAMA0 console from the build iPXE script', () => {
  const r = run('aarch64', 'pxe-direct');
  const args = qemuArgv(r.vm).args;
  assert.equal(args.slice(0, head('aarch64', 'pxe-direct').length), head('aarch64', 'pxe-direct'));
  assert.ok(args.join(' ').includes('console=ttyAMA0,115200n8 ostree=/ostree/boot.1/'));
});

test('options: --case, --marker with {version}, --timeout', () => {
  const p = plan('aarch64', { cases: ['pxe-direct'], marker: 'HELLO {version}!', timeoutSec: 9 });
  assert.equal(
    p.runs.map((r) => [r.case.id, r.vm.marker, r.vm.timeoutSec]),
    [['pxe-direct', `HELLO ${V}!`, 9]],
  );
  assert.is(DEFAULT_MARKER.replace('{version}', V), marker);
  // a case of the other arch only: nothing to do on this one
  assert.equal(plan('aarch64', { cases: ['metal-bios'] }).runs, []);
});

test('missing artifacts: skipped with the reason, or refused when the case was asked for', () => {
  const only = { ostree: images('x86_64').ostree, metal: images('x86_64').metal };
  const p = planBoot(input('x86_64', { images: only }), texts);
  assert.equal(
    p.runs.map((r) => r.case.id),
    ['metal-bios', 'metal-uefi'],
  );
  assert.equal(p.skipped, [
    { id: 'qemu', reason: 'the build has no qemu (meta.json images)' },
    {
      id: 'pxe',
      reason: 'the build has no live-kernel, live-initramfs, live-rootfs, pxe-ipxe (meta.json images)',
    },
    {
      id: 'pxe-direct',
      reason: 'the build has no live-kernel, live-initramfs, live-rootfs, pxe-ipxe (meta.json images)',
    },
  ]);
  assert.throws(
    () => planBoot(input('x86_64', { images: only, cases: ['qemu'] }), texts),
    (e: Error) =>
      e instanceof BootPlanError && e.message === 'x86_64 qemu: the build has no qemu (meta.json images)',
  );
  assert.throws(
    () => plan('x86_64', { cases: ['floppy'] }),
    /unknown boot case 'floppy' \(metal-bios, metal-uefi, qemu, pxe, pxe-direct\)/,
  );
});

test('uncompressed disk images are booted where they are', () => {
  const im = { ...images('x86_64'), metal: { path: `${f('x86_64', 'metal')}.raw`, sha256: 'm'.repeat(64) } };
  const r = planBoot(input('x86_64', { images: im, cases: ['metal-bios'] }), texts).runs[0]!;
  assert.equal(r.steps, [
    overlay('x86_64', 'metal-bios', `${B('x86_64')}/${f('x86_64', 'metal')}.raw`, 'raw'),
  ]);
  assert.equal(r.vm.drives, [{ file: `${W('x86_64')}/metal-bios.overlay.qcow2`, format: 'qcow2' }]);
});

test('PXE scripts: only the server changes; malformed scripts are refused', () => {
  const local = localIpxe(ipxe('x86_64'), 'tftp://10.0.2.2');
  assert.equal(
    local.split('\n').filter((l, i) => l !== ipxe('x86_64').split('\n')[i]),
    ['set base-url tftp://10.0.2.2'],
  );
  assert.throws(() => localIpxe('#!ipxe\nkernel x\nboot\n', 'tftp://h'), /no "set base-url URL" line/);
  assert.throws(() => localIpxe('#!gpxe\nset base-url x\n', 'tftp://h'), /not an iPXE script/);
  const g = localGrubPxe(grub('aarch64'), 'tftp://10.0.2.2/r.img');
  assert.match(g, / coreos\.live\.rootfs_url=tftp:\/\/10\.0\.2\.2\/r\.img ignition\.firstboot /);
  assert.not.ok(g.includes('example.org'));
  assert.throws(
    () => localGrubPxe('linux k\n', 'tftp://h/r'),
    /no coreos\.live\.rootfs_url= kernel argument/,
  );
  assert.equal(
    directKargs(`#!ipxe\nset a 1\nkernel k initrd=main x=\${a} y=\${b} coreos.live.rootfs_url=u\n`),
    ['x=1', `y=\${b}`],
  );
  assert.throws(() => directKargs('#!ipxe\nboot\n'), /no "kernel" line/);
});

test('meta.json record: new results merged, other cases kept, keys sorted', () => {
  const r = (result: 'pass' | 'fail') => ({
    result,
    outcome: result === 'pass' ? ('marker' as const) : ('timeout' as const),
    seconds: 1,
    log: 'boot/x.log',
    images: {},
  });
  const meta = { name: N, 'rocknsm.boot-tests': { qemu: r('fail'), pxe: r('pass') } };
  const out = recordResults(meta, { qemu: r('pass'), 'metal-bios': r('pass') });
  assert.equal(Object.keys(out['rocknsm.boot-tests']), ['metal-bios', 'pxe', 'qemu']);
  assert.is(out['rocknsm.boot-tests'].qemu!.result, 'pass');
  assert.is(out.name, N);
  assert.is(meta['rocknsm.boot-tests'].qemu.result, 'fail', 'input not changed');
});

test.run();
