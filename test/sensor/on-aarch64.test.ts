// The sensor OS for real on aarch64 (issue 13): the same test project built on the aarch64 base
// (its package scripts, dracut and ostree run under qemu-user), deployed by `rock-image artifacts`
// with the image's own ostree and GRUB, and booted once under TCG by `rock-image test`: AAVMF,
// GRUB (blscfg), the image's kernel and initramfs with Ignition's first boot, ostree-prepare-root,
// systemd and the services, to the image's boot report.
// The base and the build run in a child process started when this file is loaded, at the start
// of the test run, so that they overlap the suites before this one (the file sorts last here).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { consoleTail } from '../../pipeline/boot/run.ts';
import { SERVICES } from '../world/sensor-project.ts';
import { needTool } from '../world/tools.ts';
import { type Build, backgroundBuilds, bootResult, OSNAME, serviceRegistry, V1 } from './world.ts';

const arch = 'aarch64';
// The guests pull the service images from the registry: up before the child boots.
void serviceRegistry().catch(() => {});
const [pending] = backgroundBuilds(arch, [{ version: V1, release: 'release-1', bootCase: 'qemu' }]);
const seconds: string[] = [];
let b: Build;

test.before(async () => {
  // (The child checks the tools the base and the build need.)
  for (const t of ['qemu-system-aarch64', 'qemu-aarch64-static']) needTool(t);
  await serviceRegistry();
  const t = Date.now();
  b = await pending!;
  seconds.push(
    `base ${b.baseSeconds ? `${b.baseSeconds} s` : 'cached'}, build with artifacts ${b.seconds} s (in the background; waited ${(Date.now() - t) / 1000} s)`,
  );
});
test.after(() => console.log(`sensor aarch64: ${seconds.join('; ')}`));

test('rock-image test: the aarch64 qcow2 image boots through AAVMF, GRUB, its initramfs and ostree to the boot report', () => {
  // The child ran it as soon as the build was made (beside the x86_64 boots).
  const r = bootResult(b, 'qemu');
  seconds.push(`rock-image test qemu ${r.seconds} s`);
  const log = consoleTail(readFileSync(join(b.dir, 'boot/qemu.log'), 'utf8'), 1_000_000);
  assert.is(r.code, 0, `${r.stderr}\n${log.slice(-3000)}`);
  assert.match(log, /GNU GRUB +version 2\.14/);
  assert.match(log, new RegExp(`ostree=/ostree/boot\\.1/${OSNAME}/[0-9a-f]{64}/0`));
  for (const unit of ['ignition-disks', 'ignition-files', 'ostree-prepare-root'])
    assert.match(log, new RegExp(`Finished .*${unit}\\.service`), unit);
  assert.match(log, /rocknsm-boot-report: \/ is overlay from composefs/);
  for (const s of SERVICES)
    assert.match(log, new RegExp(`rocknsm-boot-report: rocknsm-${s}\\.service active`));
  assert.match(log, new RegExp(`ROCKNSM-BOOT-OK VARIANT_ID=rocknsm VERSION=${V1.replace(/\./g, '\\.')}`));
});

test.run();
