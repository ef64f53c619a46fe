// A failed boot case is booted again once, from a fresh copy-on-write disk, as coreos-assembler's
// `kola run --rerun` does ("re-run failed tests once (succeeds if tests pass on rerun)",
// mantle/cmd/kola/kola.go:136 @05db482e). The failed attempt's console is kept and recorded in
// meta.json, so a pass after a rerun is never silent. The boot itself is a stand-in here (what is
// checked is the orchestration: staging again, logs, records); test/boot/boot.test.ts boots QEMU.
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planBoot } from '../../pipeline/boot/plan.ts';
import { runBootTests } from '../../pipeline/boot/run.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { PipelineError } from '../../pipeline/errors.ts';
import type { VmResult, VmSpec } from '../../pipeline/exec/qemu.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { cacheDir } from '../world/fcos-base.ts';
import { needTool, sh } from '../world/tools.ts';

const work = join(cacheDir, `boot-rerun-${process.pid}`);
const VERSION = '41.20261201.3.0';
const warnings: string[] = [];

function setUp(name: string) {
  const buildDir = join(work, name, 'builds', VERSION, 'x86_64');
  mkdirSync(buildDir, { recursive: true });
  const disk = join(buildDir, 'metal.raw');
  sh('truncate', ['-s', '4M', disk]);
  const images = {
    metal: { path: 'metal.raw', sha256: 'ab'.repeat(32), size: 4 << 20 },
    ostree: { path: 'ostree.ociarchive', sha256: 'cd'.repeat(32), size: 1 },
  };
  writeFileSync(
    join(buildDir, 'meta.json'),
    JSON.stringify({
      name: 'rocknsm-coreos',
      buildid: VERSION,
      'coreos-assembler.basearch': 'x86_64',
      images,
    }),
  );
  const plan = planBoot(
    {
      arch: 'x86_64',
      version: VERSION,
      buildDir,
      workDir: join(work, name, 'work'),
      images,
      cases: ['metal-bios'],
      diskGiB: 1,
    },
    () => '',
  );
  const out: string[] = [];
  const ctx: Context = {
    root: work,
    cwd: work,
    env: {},
    now: () => Date.now(),
    log: createLogger({ mode: 'plain', out: { write: (s: string) => out.push(s) } }),
    run: createRunner(createLogger({ mode: 'plain', out: { write: () => true } })),
    stdout: { write: () => true },
    cores: 1,
  };
  warnings.length = 0;
  return {
    buildDir,
    plan,
    ctx,
    out,
    archPlan: { arch: 'x86_64' as const, buildDir, workDir: join(work, name, 'work'), plan },
  };
}

/** A stand-in boot: writes the console, scribbles on the disk as a guest would, returns `outcomes` in turn. */
function scripted(outcomes: VmResult['outcome'][]) {
  const seen: { disk: string; overlayIsFresh: boolean }[] = [];
  let n = 0;
  const boot = async (spec: VmSpec): Promise<VmResult> => {
    const outcome = outcomes[n++] ?? 'marker';
    const disk = spec.drives![0]!.file;
    // A fresh overlay is a valid qcow2 that has never been written by a guest.
    const info = JSON.parse(sh('qemu-img', ['info', '--output=json', disk]));
    seen.push({
      disk,
      overlayIsFresh: info.format === 'qcow2' && !readFileSync(disk).includes('GUEST-WAS-HERE'),
    });
    appendFileSync(disk, 'GUEST-WAS-HERE');
    const log = outcome === 'marker' ? `booted\n${spec.marker}\n` : `Welcome to GRUB!\ngrub> attempt ${n}\n`;
    mkdirSync(dirname(spec.serialLog), { recursive: true });
    writeFileSync(spec.serialLog, log);
    return { outcome, seconds: 12.34, log, argv: ['qemu-stand-in'] };
  };
  return { boot, seen };
}

test.before(() => {
  needTool('qemu-img');
  rmSync(work, { recursive: true, force: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('a case that times out and then passes: pass, the failed console kept and recorded', async () => {
  const { buildDir, ctx, out, archPlan } = setUp('flake');
  const { boot, seen } = scripted(['timeout', 'marker']);
  const [o] = await runBootTests(ctx, [archPlan], { jobs: 1, bootVm: boot });
  assert.is(o!.result.result, 'pass');
  assert.equal(o!.result['failed-attempts'], [
    { outcome: 'timeout', seconds: 12.3, log: 'boot/metal-bios.attempt-1.log' },
  ]);
  // Both boots started from a fresh disk: the rerun's overlay was made again.
  assert.equal(
    seen.map((s) => s.overlayIsFresh),
    [true, true],
  );
  assert.match(readFileSync(join(buildDir, 'boot/metal-bios.attempt-1.log'), 'utf8'), /grub> attempt 1/);
  assert.match(readFileSync(join(buildDir, 'boot/metal-bios.log'), 'utf8'), /ROCKNSM-BOOT-OK/);
  const meta = JSON.parse(readFileSync(join(buildDir, 'meta.json'), 'utf8'));
  assert.equal(meta['rocknsm.boot-tests']['metal-bios']['failed-attempts'], o!.result['failed-attempts']);
  assert.is(meta['rocknsm.boot-tests']['metal-bios'].result, 'pass');
  const said = out.join('');
  assert.match(
    said,
    /x86_64 metal-bios: timeout after 12\.3 s \(console kept in boot\/metal-bios\.attempt-1\.log\)/,
  );
  assert.match(said, /metal-bios: pass \(marker, 12\.3 s; after 1 failed attempt \(timeout, 12\.3 s/);
});

test('a case that fails on the rerun too: fails, naming both consoles; both attempts recorded', async () => {
  const { buildDir, ctx, archPlan } = setUp('broken');
  const { boot, seen } = scripted(['timeout', 'crashed']);
  try {
    await runBootTests(ctx, [archPlan], { jobs: 1, bootVm: boot });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, PipelineError);
    assert.match(
      (err as Error).message,
      /boot test x86_64 metal-bios failed, as did 1 earlier attempt\(s\) \(boot\/metal-bios\.attempt-1\.log\) \(crashed after 12\.3 s/,
    );
  }
  assert.is(seen.length, 2);
  const r = JSON.parse(readFileSync(join(buildDir, 'meta.json'), 'utf8'))['rocknsm.boot-tests']['metal-bios'];
  assert.is(r.result, 'fail');
  assert.is(r.outcome, 'crashed');
  assert.is(r['failed-attempts'].length, 1);
});

test('a pass on the first boot is not booted again and records no attempts; reruns 0 fails at once', async () => {
  const first = setUp('clean');
  const a = scripted(['marker']);
  const [o] = await runBootTests(first.ctx, [first.archPlan], { jobs: 1, bootVm: a.boot });
  assert.is(a.seen.length, 1);
  assert.is(o!.result['failed-attempts'], undefined);
  assert.not.ok(existsSync(join(first.buildDir, 'boot/metal-bios.attempt-1.log')));

  const none = setUp('no-rerun');
  const b = scripted(['timeout', 'marker']);
  try {
    await runBootTests(none.ctx, [none.archPlan], { jobs: 1, bootVm: b.boot, reruns: 0 });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, PipelineError);
  }
  assert.is(b.seen.length, 1);
});

test.run();
