// pipeline/exec/qemu.ts: the exact command lines, and real TCG boots of Debian's kernel with a
// busybox initramfs (marker, power off, timeout).
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { consoleFailures, consoleReport } from '../../pipeline/boot/run.ts';
import { bootVm, plainConsole, qemuArgv, type VmSpec } from '../../pipeline/exec/qemu.ts';
import { needTool, sh } from '../world/tools.ts';

const base: VmSpec = {
  arch: 'x86_64',
  firmware: 'direct',
  kernel: '/k',
  serialLog: '/l/console.log',
  timeoutSec: 5,
};

test('x86_64 direct boot: TCG, q35, console to a file, no reboot, no NIC', () => {
  const { cmd, args } = qemuArgv({ ...base, initrd: '/i', append: 'console=ttyS0' });
  assert.is(cmd, 'qemu-system-x86_64');
  assert.equal(args, [
    '-machine',
    'q35',
    '-cpu',
    'max',
    '-accel',
    'tcg',
    '-m',
    '1024',
    '-smp',
    '1',
    '-nographic',
    '-no-reboot',
    '-monitor',
    'none',
    '-chardev',
    'file,id=console0,path=/l/console.log',
    '-serial',
    'chardev:console0',
    '-kernel',
    '/k',
    '-initrd',
    '/i',
    '-append',
    'console=ttyS0',
    '-nic',
    'none',
  ]);
});

test('drives, fw_cfg and net; commas in paths are doubled', () => {
  const { args } = qemuArgv({
    ...base,
    serialLog: '/l/a,b.log',
    drives: [
      { file: '/d/boot.raw', format: 'raw', serial: 'coreos-boot' },
      { file: '/d/x,y.qcow2', format: 'qcow2', readonly: true },
    ],
    fwCfg: [{ name: 'opt/com.coreos/config', file: '/c/config.ign' }],
    net: { tftpDir: '/t', bootfile: 'pxe.ipxe' },
  });
  const s = args.join(' ');
  assert.ok(s.includes('-chardev file,id=console0,path=/l/a,,b.log'));
  assert.ok(
    s.includes(
      '-drive if=none,id=disk0,file=/d/boot.raw,format=raw,discard=unmap -device virtio-blk-pci,drive=disk0,serial=coreos-boot',
    ),
  );
  assert.ok(
    s.includes(
      '-drive if=none,id=disk1,file=/d/x,,y.qcow2,format=qcow2,discard=unmap,readonly=on -device virtio-blk-pci,drive=disk1 ',
    ),
  );
  assert.ok(s.includes('-fw_cfg name=opt/com.coreos/config,file=/c/config.ign'));
  assert.ok(s.includes('-netdev user,id=net0,tftp=/t,bootfile=pxe.ipxe -device virtio-net-pci,netdev=net0'));
  assert.not.ok(s.includes('-nic none'));
});

test('forwards of 127.0.0.1 ports into the guest ride on the user network', () => {
  const { args } = qemuArgv({ ...base, net: { forwards: [{ hostPort: 40022, guestPort: 22 }] } });
  assert.equal(args.slice(args.indexOf('-netdev'), args.indexOf('-netdev') + 4), [
    '-netdev',
    'user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22',
    '-device',
    'virtio-net-pci,netdev=net0',
  ]);
});

test('aarch64 and uefi; kvm uses the host cpu; bad specs are refused', () => {
  const a = qemuArgv({ arch: 'aarch64', firmware: 'uefi', serialLog: '/l', timeoutSec: 1, accel: 'kvm' });
  assert.is(a.cmd, 'qemu-system-aarch64');
  assert.equal(a.args.slice(0, 10), [
    '-machine',
    'virt',
    '-cpu',
    'host',
    '-accel',
    'kvm',
    '-m',
    '1536',
    '-smp',
    '1',
  ]);
  assert.ok(a.args.join(' ').includes('-bios /usr/share/qemu-efi-aarch64/QEMU_EFI.fd'));
  assert.throws(
    () => qemuArgv({ arch: 'aarch64', firmware: 'bios', serialLog: '/l', timeoutSec: 1 }),
    /no BIOS/,
  );
  assert.throws(() => qemuArgv({ ...base, firmware: 'bios' }), /need firmware 'direct'/);
  assert.throws(() => qemuArgv({ ...base, drives: [{ file: 'f', format: 'raw', serial: 'a b' }] }), /serial/);
});

// A busybox initramfs whose /init prints what it is told and then powers off or hangs.
function tinyInitramfs(dir: string, init: string): string {
  const root = join(dir, 'root');
  mkdirSync(join(root, 'bin'), { recursive: true });
  sh('cp', [needTool('busybox'), join(root, 'bin/busybox')]);
  writeFileSync(join(root, 'init'), `#!/bin/busybox sh\n${init}\n`);
  chmodSync(join(root, 'init'), 0o755);
  const out = join(dir, 'initrd.cpio');
  sh('sh', ['-c', `cd ${root} && find . | cpio -o -H newc --quiet > ${out}`]);
  return out;
}

function debianKernel(): string {
  const k = readdirSync('/boot').find((f) => f.startsWith('vmlinuz-'));
  if (!k)
    throw new Error("no /boot/vmlinuz-*: install 'linux-image-amd64' (npx rock-image doctor --install test)");
  return join('/boot', k);
}

test('markers are matched on the plain console: systemd colours unit names', () => {
  const esc = String.fromCharCode(27);
  const line = `[${esc}[0;32m  OK  ${esc}[0m] Reached target ${esc}[0;1;39minitrd-switch-root.target${esc}[0m - Switch Root.\r\n`;
  assert.not.ok(line.includes('Reached target initrd-switch-root.target'));
  assert.is(plainConsole(line), '[  OK  ] Reached target initrd-switch-root.target - Switch Root.\n');
});

test('a failed boot is reported by the lines that say why, then the tail', () => {
  // systemd's status words (src/core/job.c job_done_message): FAILED, " TIME ", DEPEND, coloured.
  const esc = String.fromCharCode(27);
  const status = (word: string, text: string) => `[${esc}[0;1;31m${word}${esc}[0m] ${text}\r\n`;
  const log = [
    status('  OK  ', 'Reached target local-fs-pre.target.'),
    status(' TIME ', 'Timed out waiting for device dev-disk-by\\x2dpartlabel-data.device.'),
    status('DEPEND', 'Dependency failed for var-lib-rocknsm.mount.'),
    ...Array.from({ length: 50 }, (_, i) => status('  OK  ', `Started unit-${i}.service.`)),
    'You are in emergency mode.\r\n',
  ].join('');
  const report = consoleReport(log, 3);
  assert.ok(
    report.startsWith(
      'failure lines:\n[ TIME ] Timed out waiting for device dev-disk-by\\x2dpartlabel-data.device.\n[DEPEND] Dependency failed for var-lib-rocknsm.mount.\n',
    ),
    report,
  );
  assert.ok(
    report.endsWith(
      'last lines:\n[  OK  ] Started unit-48.service.\n[  OK  ] Started unit-49.service.\nYou are in emergency mode.',
    ),
    report,
  );
  assert.is(
    consoleFailures(log.replace(/TIME|DEPEND/g, '  OK  ').replace(/Timed out|Dependency failed/g, 'x')),
    '',
  );
});

test('real TCG boots: power off, marker, timeout', async () => {
  needTool('qemu-system-x86_64');
  needTool('cpio');
  const dir = mkdtempSync(join(tmpdir(), 'rock-qemu-'));
  try {
    const kernel = debianKernel();
    const spec = (initrd: string, extra: Partial<VmSpec> = {}): VmSpec => ({
      arch: 'x86_64',
      firmware: 'direct',
      kernel,
      initrd,
      append: 'console=ttyS0 quiet panic=-1',
      serialLog: join(dir, 'console.log'),
      timeoutSec: 60,
      ...extra,
    });
    const off = tinyInitramfs(join(dir, 'off'), 'echo rock-says-hello\n/bin/busybox poweroff -f');
    const r1 = await bootVm(spec(off), { env: {} });
    assert.is(r1.outcome, 'poweroff', r1.log.slice(-2000));
    assert.ok(r1.log.includes('rock-says-hello'));
    assert.is(r1.argv[0]?.endsWith('qemu-system-x86_64'), true);

    const hang = tinyInitramfs(join(dir, 'hang'), 'echo rock-ready\nwhile :; do /bin/busybox sleep 1; done');
    const r2 = await bootVm(spec(hang, { marker: 'rock-ready' }), { env: {} });
    assert.is(r2.outcome, 'marker', r2.log.slice(-2000));

    const r3 = await bootVm(spec(hang, { timeoutSec: 3 }), { env: {} });
    assert.is(r3.outcome, 'timeout');

    // A fail marker ends a hanging boot at once, and says which.
    const panic = tinyInitramfs(
      join(dir, 'panic'),
      'echo "You are in emergency mode"\nwhile :; do /bin/busybox sleep 1; done',
    );
    const r4 = await bootVm(
      spec(panic, { marker: 'never', failMarkers: ['Kernel panic', 'You are in emergency mode'] }),
      { env: {} },
    );
    assert.is(r4.outcome, 'failed', r4.log.slice(-2000));
    assert.is(r4.failure, 'You are in emergency mode');
    assert.ok(r4.seconds < 50, `${r4.seconds} s`);

    // onMarker works on the running guest; the VM then runs until the guest powers off.
    const late = tinyInitramfs(
      join(dir, 'late'),
      'echo rock-ready\n/bin/busybox sleep 3\necho rock-later\n/bin/busybox poweroff -f',
    );
    let atMarker = '';
    const r5 = await bootVm(spec(late, { marker: 'rock-ready' }), {
      env: {},
      onMarker: async (text) => {
        atMarker = text();
      },
    });
    assert.is(r5.outcome, 'marker');
    assert.ok(atMarker.includes('rock-ready') && !atMarker.includes('rock-later'));
    assert.ok(r5.log.includes('rock-later'), 'the guest ran on after the marker');
    let thrown: unknown;
    try {
      await bootVm(spec(hang, { marker: 'rock-ready' }), {
        env: {},
        onMarker: async () => {
          throw new Error('work on the guest failed');
        },
      });
    } catch (e) {
      thrown = e;
    }
    assert.match(String(thrown), /work on the guest failed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
