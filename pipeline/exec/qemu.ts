// QEMU: the one module that runs virtual machines (first-boot Ignition tests, artifact boot
// tests). `qemuArgv` is pure and turns a VmSpec into the exact command line; `bootVm` runs it
// through the process runner, watches the serial console file and kills the VM on the success
// marker or at the timeout. VMs never reboot (-no-reboot: a guest reboot ends QEMU like a power
// off) and never open a window (-nographic, console to a file).
import { closeSync, copyFileSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createLogger } from '../log.ts';
import { createRunner, type Runner } from './run.ts';
import { requireTool } from './tools.ts';

export type VmArch = 'x86_64' | 'aarch64';

export interface VmDrive {
  file: string;
  format: 'raw' | 'qcow2';
  /** virtio-blk serial (at most 20 characters): the guest sees /dev/disk/by-id/virtio-<serial>. */
  serial?: string;
  /** Default false. */
  readonly?: boolean;
  /** Guest writes go to a temporary file QEMU deletes; the image is never changed. Default false. */
  snapshot?: boolean;
}

export interface VmSpec {
  arch: VmArch;
  /** 'direct' boots kernel/initrd/append without firmware (-kernel/-initrd/-append). */
  firmware: 'bios' | 'uefi' | 'direct';
  /** Default 1024 (x86_64) / 1536 (aarch64). */
  memoryMiB?: number;
  /** Default 1. */
  cpus?: number;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** virtio-blk disks, in order (the first is /dev/vda). */
  drives?: VmDrive[];
  /** Firmware config blobs, e.g. { name: 'opt/com.coreos/config', file: 'config.ign' }. */
  fwCfg?: { name: string; file: string }[];
  /** User-mode network with a virtio NIC; TFTP/PXE boot when tftpDir/bootfile are set; TCP ports
   * of 127.0.0.1 forwarded to the guest (e.g. SSH). The guest reaches the host as 10.0.2.2. No
   * NIC when unset. */
  net?: { tftpDir?: string; bootfile?: string; forwards?: { hostPort: number; guestPort: number }[] };
  /** The serial console is written here (truncated first). */
  serialLog: string;
  /** The VM is killed after this many seconds (outcome 'timeout'). */
  timeoutSec: number;
  /** When set, the VM is killed as soon as this text appears on the console (outcome 'marker'). */
  marker?: string;
  /** Texts that mean the boot failed (an emergency shell, a kernel panic): the VM is killed as
   * soon as one appears (outcome 'failed') instead of idling until the timeout. */
  failMarkers?: string[];
  /** Default 'tcg'; the environment variable ROCK_IMAGE_QEMU_ACCEL overrides it in bootVm. */
  accel?: 'tcg' | 'kvm';
  /** Machine type; default q35 (x86_64) / virt (aarch64). */
  machine?: string;
  /** Firmware image for 'uefi'; default Debian's OVMF / AAVMF path. */
  firmwarePath?: string;
  /** 'uefi' from flash as on real machines: read-only code plus a writable variable store.
   * bootVm copies `varsTemplate` to `vars` before each run, so runs never share NVRAM. When unset,
   * the firmware is loaded with -bios (variables do not persist). See EDK2_PFLASH. */
  pflash?: { code: string; varsTemplate: string; vars: string };
}

export interface VmResult {
  /** marker: seen and VM killed; failed: a fail marker seen and VM killed; poweroff: QEMU exited
   * 0 (guest power off or reboot); timeout: killed at timeoutSec; crashed: QEMU exited non-zero. */
  outcome: 'marker' | 'failed' | 'poweroff' | 'timeout' | 'crashed';
  /** The fail marker seen (outcome 'failed'). */
  failure?: string;
  seconds: number;
  /** The console text. */
  log: string;
  argv: string[];
}

/** Debian's firmware images (packages ovmf and qemu-efi-aarch64). */
export const UEFI_FIRMWARE: Record<VmArch, string> = {
  x86_64: '/usr/share/ovmf/OVMF.fd',
  aarch64: '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd',
};

/** Debian's split firmware images for pflash (packages ovmf and qemu-efi-aarch64). */
export const EDK2_PFLASH: Record<VmArch, { code: string; varsTemplate: string }> = {
  x86_64: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
  aarch64: { code: '/usr/share/AAVMF/AAVMF_CODE.fd', varsTemplate: '/usr/share/AAVMF/AAVMF_VARS.fd' },
};

const QEMU_BINARY: Record<VmArch, string> = {
  x86_64: 'qemu-system-x86_64',
  aarch64: 'qemu-system-aarch64',
};

/** QEMU option values separate fields with commas; a literal comma is written twice. */
const optValue = (s: string) => s.replace(/,/g, ',,');

/** The QEMU command line of a VmSpec. Pure; throws on a spec that cannot run. */
export function qemuArgv(spec: VmSpec): { cmd: string; args: string[] } {
  const accel = spec.accel ?? 'tcg';
  const args: string[] = [];
  if (spec.arch === 'x86_64') {
    args.push('-machine', spec.machine ?? 'q35', '-cpu', accel === 'kvm' ? 'host' : 'max');
  } else {
    if (spec.firmware === 'bios') throw new Error('aarch64 VMs have no BIOS: use uefi or direct');
    args.push('-machine', spec.machine ?? 'virt', '-cpu', accel === 'kvm' ? 'host' : 'cortex-a57');
  }
  args.push('-accel', accel);
  args.push('-m', String(spec.memoryMiB ?? (spec.arch === 'x86_64' ? 1024 : 1536)));
  args.push('-smp', String(spec.cpus ?? 1));
  args.push('-nographic', '-no-reboot', '-monitor', 'none');
  args.push('-chardev', `file,id=console0,path=${optValue(spec.serialLog)}`, '-serial', 'chardev:console0');

  if (spec.firmware === 'uefi' && spec.pflash) {
    if (spec.firmwarePath) throw new Error('firmwarePath and pflash exclude each other');
    args.push(
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${optValue(spec.pflash.code)}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${optValue(spec.pflash.vars)}`,
    );
  } else if (spec.firmware === 'uefi') args.push('-bios', spec.firmwarePath ?? UEFI_FIRMWARE[spec.arch]);
  else if (spec.pflash) throw new Error(`pflash needs firmware 'uefi', not '${spec.firmware}'`);
  if (spec.firmware === 'direct') {
    if (!spec.kernel) throw new Error("firmware 'direct' needs a kernel");
    args.push('-kernel', spec.kernel);
    if (spec.initrd) args.push('-initrd', spec.initrd);
    if (spec.append) args.push('-append', spec.append);
  } else if (spec.kernel || spec.initrd || spec.append) {
    throw new Error(`kernel, initrd and append need firmware 'direct', not '${spec.firmware}'`);
  }

  for (const [i, d] of (spec.drives ?? []).entries()) {
    if (d.serial !== undefined && !/^[A-Za-z0-9._-]{1,20}$/.test(d.serial))
      throw new Error(`drive serial '${d.serial}' must be 1-20 characters of A-Z a-z 0-9 . _ -`);
    const drive = [
      `if=none`,
      `id=disk${i}`,
      `file=${optValue(d.file)}`,
      `format=${d.format}`,
      'discard=unmap',
    ];
    if (d.readonly) drive.push('readonly=on');
    if (d.snapshot) drive.push('snapshot=on');
    args.push('-drive', drive.join(','));
    args.push('-device', `virtio-blk-pci,drive=disk${i}${d.serial ? `,serial=${d.serial}` : ''}`);
  }
  for (const f of spec.fwCfg ?? []) args.push('-fw_cfg', `name=${optValue(f.name)},file=${optValue(f.file)}`);
  if (spec.net) {
    const netdev = ['user', 'id=net0'];
    if (spec.net.tftpDir) netdev.push(`tftp=${optValue(spec.net.tftpDir)}`);
    if (spec.net.bootfile) netdev.push(`bootfile=${optValue(spec.net.bootfile)}`);
    for (const f of spec.net.forwards ?? [])
      netdev.push(`hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`);
    args.push('-netdev', netdev.join(','), '-device', 'virtio-net-pci,netdev=net0');
  } else {
    args.push('-nic', 'none');
  }
  return { cmd: QEMU_BINARY[spec.arch], args };
}

const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');

/** Console text as read: no carriage returns or terminal control sequences (systemd colours unit
 * names, so `Reached target foo.target` is only found in the plain text). */
export function plainConsole(log: string): string {
  return log.replace(/\r/g, '').replace(ANSI_ESCAPE, '');
}

export interface BootOptions {
  /** Default: a runner that logs nowhere. */
  run?: Runner;
  /** Read for ROCK_IMAGE_QEMU_ACCEL. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How often the console file is read, ms. Default 250. */
  pollMs?: number;
  /**
   * Called once when the marker appears; the VM then keeps running until the guest powers off or
   * reboots (or the timeout), and the outcome is 'marker'. For tests that work on the running
   * guest (over SSH) and end by shutting it down. When it throws, the VM is killed and bootVm
   * throws the same error.
   */
  onMarker?: (consoleText: () => string) => Promise<void>;
}

/** Boots a VM and waits until it powers off, shows the marker, crashes or times out. */
export async function bootVm(spec: VmSpec, opts: BootOptions = {}): Promise<VmResult> {
  const env = opts.env ?? process.env;
  const override = env.ROCK_IMAGE_QEMU_ACCEL;
  if (override !== undefined && override !== 'tcg' && override !== 'kvm')
    throw new Error(`ROCK_IMAGE_QEMU_ACCEL must be tcg or kvm, not '${override}'`);
  const { cmd, args } = qemuArgv({ ...spec, accel: override ?? spec.accel });
  const bin = requireTool(cmd);
  const run = opts.run ?? createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
  mkdirSync(dirname(spec.serialLog), { recursive: true });
  writeFileSync(spec.serialLog, '');
  if (spec.pflash) {
    mkdirSync(dirname(spec.pflash.vars), { recursive: true });
    copyFileSync(spec.pflash.varsTemplate, spec.pflash.vars);
  }

  const started = Date.now();
  const abort = new AbortController();
  let stopped: 'marker' | 'failed' | 'timeout' | undefined;
  let failMarker: string | undefined;
  let seen: Promise<void> | undefined;
  let failure: unknown;
  let log = '';
  let offset = 0;
  const readNew = () => {
    const size = statSync(spec.serialLog).size;
    if (size <= offset) return;
    const buf = Buffer.alloc(size - offset);
    const fd = openSync(spec.serialLog, 'r');
    try {
      readSync(fd, buf, 0, buf.length, offset);
    } finally {
      closeSync(fd);
    }
    offset = size;
    log += buf.toString('utf8');
  };
  const watch = setInterval(() => {
    if (stopped) return;
    readNew();
    const text = plainConsole(log);
    if (spec.marker && !seen && text.includes(spec.marker)) {
      if (!opts.onMarker) stopped = 'marker';
      else
        seen = opts
          .onMarker(() => {
            readNew();
            return log;
          })
          .catch((err) => {
            failure = err;
            abort.abort();
          });
    }
    failMarker ??= (spec.failMarkers ?? []).find((m) => text.includes(m));
    if (!stopped && failMarker && !seen) stopped = 'failed';
    if (!stopped && Date.now() - started > spec.timeoutSec * 1000) stopped = 'timeout';
    if (stopped) abort.abort();
  }, opts.pollMs ?? 250);
  // A VM must not outlive the process that started it (e.g. a test run ended early).
  const onExit = () => abort.abort();
  process.once('exit', onExit);
  try {
    const result = await run(bin, args, { allowFailure: true, signal: abort.signal, tag: spec.arch });
    readNew();
    await seen;
    if (failure) throw failure;
    // The guest may print the marker and power off between two polls.
    if (!stopped && spec.marker && plainConsole(log).includes(spec.marker)) stopped = 'marker';
    const outcome = stopped ?? (result.exitCode === 0 ? 'poweroff' : 'crashed');
    if (outcome === 'crashed') log += `\n[qemu exited ${result.exitCode}] ${result.stderr.trim()}\n`;
    return {
      outcome,
      seconds: (Date.now() - started) / 1000,
      log,
      argv: [bin, ...args],
      ...(outcome === 'failed' ? { failure: failMarker } : {}),
    };
  } finally {
    clearInterval(watch);
    process.removeListener('exit', onExit);
  }
}
