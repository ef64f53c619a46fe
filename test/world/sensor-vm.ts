// Booting the sensor OS of the test world and working on the running system, the way kola does:
// the disk is a qcow2 overlay over a built artifact (the artifact never changes), big enough for
// the image's base profile; the user config goes in by fw_cfg (ignition.platform.id=qemu); the
// guest reaches the tests' registry and HTTP servers on the host as 10.0.2.2; tests run commands
// over SSH as the admin user whose key the user config carries. Each boot is one QEMU process:
// a guest reboot ends it (-no-reboot) and the next boot starts a new one on the same disk.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAIL_MARKERS } from '../../pipeline/boot/plan.ts';
import {
  type BootOptions,
  bootVm,
  EDK2_PFLASH,
  type VmArch,
  type VmResult,
} from '../../pipeline/exec/qemu.ts';
import { overlayArgs } from '../../pipeline/exec/qemu-img.ts';
import { freePort } from './registry.ts';
import { needTool, sh, shResult } from './tools.ts';

/** What rocknsm-boot-report prints once the system is up (overlays/05identity). */
export const REPORT_OK = 'ROCKNSM-BOOT-OK VARIANT_ID=rocknsm';
export const REPORT_ANY = /ROCKNSM-BOOT-(OK|FAIL) VARIANT_ID=rocknsm[^\r\n]*/;

export interface SshKey {
  file: string;
  publicKey: string;
}

/** An ed25519 key pair for the admin user (no passphrase). */
export function makeSshKey(dir: string): SshKey {
  needTool('ssh-keygen');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'id_ed25519');
  sh('rm', ['-f', file, `${file}.pub`]);
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'rocknsm-test-admin', '-f', file]);
  chmodSync(file, 0o600);
  return { file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** The site's user config of the first-boot test: the admin's SSH key and nothing else. */
export function sshKeyConfig(key: SshKey, user = 'core'): string {
  return `${JSON.stringify({
    ignition: { version: '3.3.0' },
    passwd: { users: [{ name: user, sshAuthorizedKeys: [key.publicKey] }] },
  })}\n`;
}

/** A qcow2 overlay of `sizeGiB` over a disk artifact (raw or qcow2): the guest writes only here. */
export function overlayDisk(backing: string, format: 'raw' | 'qcow2', file: string, sizeGiB = 1024): string {
  needTool('qemu-img');
  sh('qemu-img', overlayArgs(backing, format, file, sizeGiB));
  return file;
}

export interface Guest {
  /** Runs a shell command as root on the guest (sudo); fails the test on a non-zero exit unless allowed. */
  sh(
    script: string,
    opts?: { allowFailure?: boolean; timeoutSec?: number },
  ): { code: number; stdout: string; stderr: string };
  /** The console so far. */
  console(): string;
}

export interface SensorBoot {
  arch: VmArch;
  disk: string;
  serialLog: string;
  key: SshKey;
  /** User config (Ignition JSON) given by fw_cfg. */
  config?: string;
  timeoutSec: number;
  memoryMiB?: number;
  /** What ends the boot (default: the boot report). A boot that ends elsewhere runs no `work`. */
  marker?: string;
  /** Work on the running guest once the boot report is on the console; should end by powering
   * the guest off or rebooting it (which ends the VM). */
  work?: (guest: Guest) => Promise<void>;
}

/**
 * Boots the disk until the boot report appears (then `work` runs on the guest) and the guest
 * powers off, reboots or the timeout passes. x86_64 boots by SeaBIOS, aarch64 by AAVMF.
 */
export async function bootSensor(b: SensorBoot, opts: BootOptions = {}): Promise<VmResult> {
  needTool('ssh');
  const port = await freePort();
  const dir = join(b.serialLog, '..');
  mkdirSync(dir, { recursive: true });
  const fwCfg = [];
  if (b.config !== undefined) {
    const file = `${b.serialLog}.user.ign`;
    writeFileSync(file, b.config);
    fwCfg.push({ name: 'opt/com.coreos/config', file });
  }
  const ssh = (script: string, o: { allowFailure?: boolean; timeoutSec?: number } = {}) => {
    const r = shResult('timeout', [
      String(o.timeoutSec ?? 300),
      'ssh',
      '-i',
      b.key.file,
      '-p',
      String(port),
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=20',
      '-o',
      'LogLevel=ERROR',
      'core@127.0.0.1',
      'sudo',
      'sh',
      '-c',
      `'${script.replace(/'/g, `'\\''`)}'`,
    ]);
    if (r.code !== 0 && !o.allowFailure)
      throw new Error(`on the guest, exit ${r.code}: ${script}\n${r.stdout}${r.stderr}`);
    return r;
  };
  let text = () => '';
  return bootVm(
    {
      arch: b.arch,
      firmware: b.arch === 'x86_64' ? 'bios' : 'uefi',
      ...(b.arch === 'aarch64' ? { pflash: { ...EDK2_PFLASH.aarch64, vars: `${b.serialLog}.vars.fd` } } : {}),
      machine: b.arch === 'x86_64' ? 'pc' : undefined,
      memoryMiB: b.memoryMiB ?? 2048,
      cpus: 1,
      drives: [{ file: b.disk, format: 'qcow2' }],
      fwCfg,
      net: { forwards: [{ hostPort: port, guestPort: 22 }] },
      serialLog: b.serialLog,
      timeoutSec: b.timeoutSec,
      marker: b.marker ?? 'ROCKNSM-BOOT-',
      // Emergency shells and panics end the boot at once (the report's FAIL line does not).
      failMarkers: FAIL_MARKERS.filter((m) => !m.startsWith('ROCKNSM-BOOT-')),
    },
    {
      ...opts,
      ...(b.work
        ? {
            onMarker: async (consoleText: () => string) => {
              text = consoleText;
              await b.work?.({ sh: ssh, console: () => text() });
            },
          }
        : {}),
    },
  );
}
