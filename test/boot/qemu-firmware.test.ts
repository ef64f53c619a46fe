// pipeline/exec/qemu.ts additions of the boot tests: UEFI from flash (read-only code, a fresh
// copy of the variable store per run), snapshot drives, and the marker seen when the guest powers
// off between two polls of the console.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootVm, EDK2_PFLASH, qemuArgv, type VmSpec } from '../../pipeline/exec/qemu.ts';
import type { Runner } from '../../pipeline/exec/run.ts';

const uefi: VmSpec = {
  arch: 'aarch64',
  firmware: 'uefi',
  serialLog: '/l/c.log',
  timeoutSec: 5,
  pflash: { ...EDK2_PFLASH.aarch64, vars: '/w/a,b.vars.fd' },
};

test('pflash: code read-only, vars writable, commas doubled; refused without uefi or with -bios', () => {
  const { args } = qemuArgv(uefi);
  const i = args.indexOf('-drive');
  assert.equal(args.slice(i, i + 4), [
    '-drive',
    'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd',
    '-drive',
    'if=pflash,format=raw,unit=1,file=/w/a,,b.vars.fd',
  ]);
  assert.not.ok(args.includes('-bios'));
  assert.throws(
    () => qemuArgv({ ...uefi, firmwarePath: '/x.fd' }),
    /firmwarePath and pflash exclude each other/,
  );
  assert.throws(
    () => qemuArgv({ ...uefi, arch: 'x86_64', firmware: 'bios' }),
    /pflash needs firmware 'uefi', not 'bios'/,
  );
  const snap = qemuArgv({ ...uefi, drives: [{ file: '/d.raw', format: 'raw', snapshot: true }] }).args;
  assert.ok(snap.includes('if=none,id=disk0,file=/d.raw,format=raw,discard=unmap,snapshot=on'));
});

test('bootVm: a fresh copy of the variable store each run; marker printed just before power off', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rock-pflash-'));
  try {
    const template = join(dir, 'VARS.fd');
    writeFileSync(template, 'pristine');
    const vars = join(dir, 'run', 'vars.fd');
    const log = join(dir, 'c.log');
    const seen: string[] = [];
    // Stands in for QEMU: the firmware changes its variables, the guest prints the marker and
    // powers off at once (before bootVm's next poll of the console).
    const run: Runner = async (_cmd, args) => {
      seen.push(readFileSync(vars, 'utf8'));
      writeFileSync(vars, 'boot entries written by the firmware');
      writeFileSync(log, 'booting\nDONE 1\n');
      return { stdout: '', stderr: '', exitCode: 0, argv: args } as never;
    };
    const spec: VmSpec = {
      ...uefi,
      serialLog: log,
      marker: 'DONE 1',
      pflash: { code: EDK2_PFLASH.aarch64.code, varsTemplate: template, vars },
    };
    const a = await bootVm(spec, { run, pollMs: 60_000 });
    const b = await bootVm(spec, { run, pollMs: 60_000 });
    assert.equal(seen, ['pristine', 'pristine']);
    assert.is(a.outcome, 'marker');
    assert.is(b.outcome, 'marker');
    assert.is(readFileSync(template, 'utf8'), 'pristine');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
