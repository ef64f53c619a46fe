// `rock-image test` for real: a build of both arches from the bootable fixture base (Debian's
// kernel + the busybox init of test/world/boot-base.ts), its artifacts made by the native backend
// (`rock-image artifacts`), then every boot case in QEMU under TCG: x86_64 metal via SeaBIOS and
// via OVMF, x86_64 qcow2, x86_64 network boot through iPXE and QEMU's TFTP, aarch64 metal and
// qcow2 via AAVMF, aarch64 network boot through UEFI PXE and GRUB, and both arches' direct PXE
// fallback. The init prints the marker only after following ostree= to the deployment and reading
// its os-release, so a pass proves layout, bootloader, kernel arguments and deployment.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BootResult } from '../../pipeline/boot/plan.ts';
import { bootVm, plainConsole } from '../../pipeline/exec/qemu.ts';
import { bootBase } from '../world/boot-base.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { readGpt, withMount, withMountAt, withPartition } from '../world/firstboot.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(cacheDir, `boot-${process.pid}`);
const out = join(work, 'out');
const VERSION = '41.20261123.3.0';
const arches = ['x86_64', 'aarch64'] as const;
type A = (typeof arches)[number];
const cases: Record<A, string[]> = {
  x86_64: ['metal-bios', 'metal-uefi', 'pxe', 'pxe-direct', 'qemu'],
  aarch64: ['metal-uefi', 'pxe', 'pxe-direct', 'qemu'],
};
const cli = (args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { env: { CI: 'true' } });
const dir = (arch: A, o = out) => join(o, 'builds', VERSION, arch);
const meta = (arch: A, o = out) => JSON.parse(readFileSync(join(dir(arch, o), 'meta.json'), 'utf8'));
const marker = `ROCKNSM-BOOT-OK VARIANT_ID=rocknsm VERSION=${VERSION}`;
const seconds: string[] = [];

test.before(() => {
  for (const t of ['buildah', 'skopeo', 'umoci', 'sgdisk', 'mkfs.xfs', 'ostree', 'grub-mkimage', 'zstd'])
    needTool(t);
  for (const t of ['qemu-system-x86_64', 'qemu-system-aarch64', 'qemu-img', 'cpio', 'mksquashfs'])
    needTool(t);
  for (const f of [
    '/usr/share/OVMF/OVMF_CODE_4M.fd',
    '/usr/share/AAVMF/AAVMF_CODE.fd',
    '/usr/share/seabios/bios-256k.bin',
    '/usr/lib/ipxe/qemu/efi-virtio.rom',
    '/usr/lib/grub/arm64-efi/efinet.mod',
  ])
    if (!existsSync(f)) throw new Error(`${f} is missing: run 'npx rock-image doctor --install test'`);
  rmSync(work, { recursive: true, force: true });
  const t0 = Date.now();
  const bases = arches.map((a) => `${a}=${bootBase(a).ref}`);
  const t1 = Date.now();
  const b = cli([
    'build',
    '--stream',
    'stable',
    ...bases.flatMap((x) => ['--base', x]),
    '--output',
    out,
    '--storage',
    join(work, 'storage'),
    '--version',
    VERSION,
  ]);
  if (b.code !== 0) throw new Error(`fixture build failed:\n${b.stderr}`);
  const t2 = Date.now();
  const a = cli([
    'artifacts',
    '--build',
    out,
    '--backend',
    'native',
    // What the native backend makes of the shipped stream's list (no metal4k, no live ISO).
    '--platform',
    'metal,qemu,pxe',
    '--compression',
    'zstd',
  ]);
  if (a.code !== 0) throw new Error(`artifacts failed:\n${a.stderr}`);
  seconds.push(
    `bootable bases ${(t1 - t0) / 1000} s, build ${(t2 - t1) / 1000} s, artifacts ${(Date.now() - t2) / 1000} s`,
  );
});
test.after(() => {
  console.log(`boot tests: ${seconds.join('; ')}`);
  rmSync(work, { recursive: true, force: true });
});

test('rock-image test: every case of both arches boots to the marker', () => {
  const t = Date.now();
  const r = cli(['test', '--build', out]);
  seconds.push(`all cases ${(Date.now() - t) / 1000} s`);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const expected = arches.flatMap((a) => cases[a].map((c) => `${a} ${c}`)).sort();
  assert.equal(lines.map((l) => l.replace(/: .*/, '')).sort(), expected);
  // A pass after a failed boot (kola's --rerun) is still a pass, but is printed here for the record.
  for (const l of lines) assert.match(l, /: pass \(\d+(\.\d)? s\)( after 1 failed attempt \(.*\))?$/);
  const reruns = lines.filter((l) => l.includes('failed attempt'));
  if (reruns.length) seconds.push(`PASSED ONLY ON RERUN: ${reruns.join('; ')}`);
  for (const arch of arches)
    for (const [id, r] of Object.entries(meta(arch)['rocknsm.boot-tests'] ?? {}) as [string, BootResult][])
      for (const a of r['failed-attempts'] ?? [])
        seconds.push(
          `${arch} ${id} failed attempt console (${a.log}), last lines:\n${plainConsole(
            readFileSync(join(dir(arch), a.log), 'utf8'),
          )
            .trimEnd()
            .split('\n')
            .slice(-20)
            .join('\n')}`,
        );
  assert.not.ok(existsSync(join(out, 'work', 'boot')), 'scratch area removed');
});

test('meta.json rocknsm.boot-tests: pass per case with the sha256 of what was booted', () => {
  for (const arch of arches) {
    const m = meta(arch);
    const bt = m['rocknsm.boot-tests'];
    assert.equal(Object.keys(bt), [...cases[arch]].sort());
    for (const [id, res] of Object.entries(bt) as [string, Record<string, unknown>][]) {
      assert.is(res.result, 'pass', `${arch} ${id}`);
      assert.is(res.outcome, 'marker');
      assert.is(res.log, `boot/${id}.log`);
      assert.ok(typeof res.seconds === 'number' && res.seconds > 0);
      const imgs = res.images as Record<string, string>;
      assert.ok(Object.keys(imgs).length > 0);
      for (const [k, sha] of Object.entries(imgs)) assert.is(sha, m.images[k].sha256, `${arch} ${id} ${k}`);
    }
    assert.equal(Object.keys(bt.pxe.images).sort(), [
      'live-initramfs',
      'live-kernel',
      'live-rootfs',
      arch === 'x86_64' ? 'pxe-ipxe' : 'pxe-grub',
    ]);
  }
});

test('consoles: each case found the root its own way and reached the same deployment', () => {
  for (const arch of arches) {
    const deployments = new Set<string>();
    for (const id of cases[arch]) {
      const log = readFileSync(join(dir(arch), 'boot', `${id}.log`), 'utf8');
      assert.ok(log.includes(marker), `${arch} ${id}: marker`);
      assert.not.ok(log.includes('ROCKNSM-BOOT-FAIL'));
      const how =
        /rocknsm-boot: root from (.*), deployment \/sysroot(\/ostree\/deploy\/rocknsm-coreos\/deploy\/[0-9a-f]{64}\.0)/.exec(
          log,
        );
      assert.ok(how, `${arch} ${id}: root line`);
      deployments.add(how![2]!);
      const from = how![1]!;
      if (id.startsWith('metal') || id === 'qemu') {
        // The filesystem labelled root, on the fourth partition of the virtio disk: a pristine
        // disk's BLS entry has no root= (as Fedora CoreOS's, whose first boot mounts the label:
        // fedora-coreos-config 35coreos-ignition/coreos-diskful-generator:87-100 @2d0fce6d).
        assert.match(from, /^disk \/dev\/vda4 \(LABEL=root\)$/);
        assert.match(log, id === 'qemu' ? /ignition\.platform\.id=qemu/ : /ignition\.platform\.id=metal/);
      } else {
        // The live stamps (FCOS 35coreos-live) matched, and with no ostree= the one deployment.
        assert.match(
          log,
          new RegExp(
            `rocknsm-boot: live image ${VERSION.replace(/\./g, '\\.')}, found ostree=/ostree/boot\\.1/`,
          ),
        );
        assert.not.match(log, /Kernel command line:.* ostree=/);
        if (id === 'pxe') {
          assert.is(from, `network tftp://10.0.2.2/${meta(arch).images['live-rootfs'].path}`);
          assert.match(log, /lease of 10\.0\.2\.15 obtained from 10\.0\.2\.2/);
        } else assert.is(from, 'rootfs appended to the initramfs');
      }
    }
    assert.is(deployments.size, 1, `${arch}: ${[...deployments].join(' ')}`);
  }
  // The x86_64 network boot went through iPXE and the build's script.
  const ipxeLog = readFileSync(join(dir('x86_64'), 'boot', 'pxe.log'), 'utf8');
  assert.match(ipxeLog, /iPXE/);
  assert.match(ipxeLog, /10\.0\.2\.2\/boot\.ipxe/);
  assert.match(ipxeLog, /Kernel command line: initrd=main coreos\.live\.rootfs_url=tftp:\/\/10\.0\.2\.2\//);
  // The aarch64 one through UEFI PXE, then GRUB reading the build's snippet over TFTP.
  const grubLog = readFileSync(join(dir('aarch64'), 'boot', 'pxe.log'), 'utf8');
  assert.match(grubLog, /NBP filename is grubnetaa64\.efi/);
  assert.match(grubLog, /GNU GRUB/);
  assert.match(
    grubLog,
    /Kernel command line: BOOT_IMAGE=\S+-live-kernel\.aarch64 coreos\.live\.rootfs_url=tftp:/,
  );
});

// The first-boot flag through real GRUB: the metal image as a provisioned sensor leaves it
// (Ignition removed /boot/ignition.firstboot) boots without `ignition.firstboot`; after the
// image's own rocknsm-factory-reset ran on its deployment (offline, --root, with /var and /boot
// mounted where a running sensor has them), GRUB finds the flag and boots with it again.
test('factory reset on the metal image: GRUB boots with ignition.firstboot again', async () => {
  const m = meta('x86_64');
  const dirR = join(work, 'reset');
  mkdirSync(dirR, { recursive: true });
  const disk = join(dirR, 'metal.raw');
  sh('zstd', ['-q', '-d', '-f', '-o', disk, join(dir('x86_64'), m.images.metal.path)]);
  const parts = readGpt(disk).partitions;
  const part = (name: string) => {
    const p = parts.find((x) => x.name === name);
    if (!p) throw new Error(`metal image has no partition ${name}`);
    return p;
  };
  const onBoot = <T>(fn: (d: string) => T) => withPartition(disk, part('boot'), (dev) => withMount(dev, fn));
  const boot = async (name: string) => {
    const r = await bootVm({
      arch: 'x86_64',
      firmware: 'bios',
      memoryMiB: 1024,
      drives: [{ file: disk, format: 'raw' }],
      serialLog: join(dirR, `${name}.log`),
      timeoutSec: 300,
      marker,
    });
    assert.is(r.outcome, 'marker', `${name}: ${r.log.slice(-2000)}`);
    const cmdline = /Kernel command line: (.*)/.exec(r.log)?.[1];
    assert.ok(cmdline, `${name}: the kernel printed its command line`);
    return cmdline!.split(/\s+/);
  };

  assert.ok(
    onBoot((d) => existsSync(join(d, 'ignition.firstboot'))),
    'a new image carries the flag',
  );
  onBoot((d) => rmSync(join(d, 'ignition.firstboot')));
  const provisioned = await boot('provisioned');
  assert.ok(provisioned.includes('ignition.platform.id=metal'), provisioned.join(' '));
  assert.not.ok(provisioned.includes('ignition.firstboot'), provisioned.join(' '));

  const reset = withPartition(disk, part('root'), (rootDev) =>
    withMount(rootDev, (sysroot) => {
      const osnames = readdirSync(join(sysroot, 'ostree/deploy'));
      assert.is(osnames.length, 1, osnames.join(' '));
      const stateroot = join(sysroot, 'ostree/deploy', osnames[0]!);
      const deployments = readdirSync(join(stateroot, 'deploy')).filter((d) => /^[0-9a-f]{64}\.\d+$/.test(d));
      assert.is(deployments.length, 1, deployments.join(' '));
      const root = join(stateroot, 'deploy', deployments[0]!);
      writeFileSync(join(root, 'etc/machine-id'), `${'5'.repeat(32)}\n`);
      return withMountAt(['--bind', join(stateroot, 'var')], join(root, 'var'), () =>
        withPartition(disk, part('boot'), (bootDev) =>
          withMountAt([bootDev], join(root, 'boot'), () => ({
            run: shResult(join(root, 'usr/bin/rocknsm-factory-reset'), ['--yes', '--root', root]),
            machineId: readFileSync(join(root, 'etc/machine-id'), 'utf8'),
          })),
        ),
      );
    }),
  );
  assert.is(reset.run.code, 0, reset.run.stderr);
  assert.is(reset.machineId, 'uninitialized\n', 'machine-id reset');
  assert.ok(
    onBoot((d) => existsSync(join(d, 'ignition.firstboot'))),
    'the flag is on the boot partition',
  );
  const again = await boot('after-reset');
  assert.ok(again.includes('ignition.firstboot'), again.join(' '));
  assert.ok(again.includes('ignition.platform.id=metal'), again.join(' '));
  rmSync(dirR, { recursive: true, force: true });
});

test('a failing case: exit 1 with its console tail; recorded as fail, the others kept', () => {
  const before = meta('x86_64');
  const r = cli([
    'test',
    '--build',
    out,
    '--arch',
    'aarch64',
    '--case',
    'pxe-direct',
    '--marker',
    'NEVER {version}',
    '--reruns',
    '0',
  ]);
  assert.is(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`boot test aarch64 pxe-direct failed \\(poweroff after [0-9.]+ s; no 'NEVER ${VERSION}'`),
  );
  assert.ok(r.stderr.includes(marker), 'the console tail is in the error');
  const bt = meta('aarch64')['rocknsm.boot-tests'];
  assert.is(bt['pxe-direct'].result, 'fail');
  assert.is(bt['pxe-direct'].outcome, 'poweroff');
  assert.is(bt['metal-uefi'].result, 'pass');
  assert.equal(meta('x86_64'), before, 'the other arch untouched');
});

test('a broken artifact fails: PXE rootfs without the root filesystem', () => {
  // A copy of the aarch64 build whose rootfs cpio holds no root.squashfs.
  const o2 = join(work, 'broken');
  mkdirSync(dir('aarch64', o2), { recursive: true });
  const m = meta('aarch64');
  for (const k of ['live-kernel', 'live-initramfs', 'pxe-ipxe'])
    cpSync(join(dir('aarch64'), m.images[k].path), join(dir('aarch64', o2), m.images[k].path));
  const empty = join(work, 'empty');
  mkdirSync(empty, { recursive: true });
  writeFileSync(join(empty, 'README'), 'no root here\n');
  sh('sh', [
    '-c',
    'cd "$1" && echo README | cpio -o -H newc --quiet > "$2"',
    'sh',
    empty,
    join(dir('aarch64', o2), m.images['live-rootfs'].path),
  ]);
  writeFileSync(
    join(dir('aarch64', o2), 'meta.json'),
    JSON.stringify({
      name: m.name,
      buildid: m.buildid,
      'coreos-assembler.basearch': m['coreos-assembler.basearch'],
      images: m.images,
    }),
  );
  writeFileSync(
    join(o2, 'builds', 'builds.json'),
    JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: VERSION, arches: ['aarch64'] }] }),
  );
  const r = cli(['test', '--build', o2, '--case', 'pxe-direct', '--reruns', '0']);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /ROCKNSM-BOOT-FAIL: no filesystem with LABEL=root/);
  assert.is(meta('aarch64', o2)['rocknsm.boot-tests']['pxe-direct'].result, 'fail');
});

// GRUB's early config on a disk where nothing is labelled boot (the filesystem relabelled):
// it says so with the devices it sees and searches once more, then stops at its prompt, which
// ends the boot at once ('grub>' is a fail marker) instead of at the timeout; the case is booted
// again from a fresh disk (kola's --rerun) and fails again, both consoles kept.
test('a disk without the boot label: GRUB says so, its prompt fails the case at once, rerun once', () => {
  const o3 = join(work, 'nolabel');
  mkdirSync(dir('x86_64', o3), { recursive: true });
  const m = meta('x86_64');
  const disk = join(work, 'nolabel.raw');
  sh('zstd', ['-q', '-d', '-f', '-o', disk, join(dir('x86_64'), m.images.metal.path)]);
  const boot = readGpt(disk).partitions.find((x) => x.name === 'boot');
  if (!boot) throw new Error('metal image has no partition boot');
  withPartition(disk, boot, (dev) => sh('e2label', [dev, 'notboot']));
  const zst = join(dir('x86_64', o3), m.images.metal.path);
  sh('zstd', ['-q', '-f', '-o', zst, disk]);
  rmSync(disk);
  writeFileSync(
    join(dir('x86_64', o3), 'meta.json'),
    JSON.stringify({
      name: m.name,
      buildid: m.buildid,
      'coreos-assembler.basearch': m['coreos-assembler.basearch'],
      images: {
        ostree: m.images.ostree,
        metal: { ...m.images.metal, sha256: sh('sha256sum', [zst]).split(' ')[0] },
      },
    }),
  );
  writeFileSync(
    join(o3, 'builds', 'builds.json'),
    JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: VERSION, arches: ['x86_64'] }] }),
  );
  const t = Date.now();
  const r = cli(['test', '--build', o3, '--case', 'metal-bios']);
  seconds.push(`no boot label, two boots to the GRUB prompt ${(Date.now() - t) / 1000} s`);
  assert.is(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /boot test x86_64 metal-bios failed, as did 1 earlier attempt\(s\) \(boot\/metal-bios\.attempt-1\.log\) \('grub>' on the console after/,
  );
  const res = meta('x86_64', o3)['rocknsm.boot-tests']['metal-bios'];
  assert.is(res.result, 'fail');
  assert.is(res.outcome, 'failed');
  assert.is(res['failed-attempts'].length, 1);
  for (const log of ['boot/metal-bios.log', res['failed-attempts'][0].log]) {
    const text = plainConsole(readFileSync(join(dir('x86_64', o3), log), 'utf8'));
    assert.ok(text.includes('rock-image: no filesystem labelled boot; GRUB sees these devices:'), log);
    // GRUB's `ls` lists the disk and its four GPT partitions.
    assert.match(text, /\(hd0\).*\(hd0,gpt4\)/, log);
  }
});

test('refusals: exit 64 before any boot, meta.json untouched', () => {
  const before = readFileSync(join(dir('x86_64'), 'meta.json'), 'utf8');
  const bad = cli(['test', '--build', out, '--case', 'floppy']);
  assert.is(bad.code, 64, bad.stderr);
  assert.match(bad.stderr, /unknown boot case 'floppy'/);
  const bios = cli(['test', '--build', out, '--arch', 'aarch64', '--case', 'metal-bios']);
  assert.is(bios.code, 64);
  assert.match(bios.stderr, /boot case 'metal-bios' does not exist for aarch64/);
  const arch = cli(['test', '--build', out, '--arch', 's390x']);
  assert.is(arch.code, 64);
  assert.match(arch.stderr, /--arch: unknown arch 's390x' \(x86_64, aarch64\)/);
  const none = cli(['test', '--build', join(work, 'nowhere')]);
  assert.is(none.code, 64);
  assert.match(none.stderr, /no build \(none\)/);
  const t = cli(['test', '--build', out, '--timeout', '0']);
  assert.is(t.code, 64);
  assert.match(t.stderr, /--timeout must be a whole number >= 1 \(got '0'\)/);
  assert.is(readFileSync(join(dir('x86_64'), 'meta.json'), 'utf8'), before);
});

test.run();
