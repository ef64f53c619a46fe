// The boot chain is real (issue 13): the same image with the two defects of the old build
// fails on the real initramfs. Each broken image is the first build's image with one RUN layer
// on top (buildah), made the way the old Containerfile made it, then deployed by `rock-image
// artifacts` and booted:
// - the initramfs regenerated without dracut's ostree module (dracut includes it only when
//   asked): no ostree-prepare-root, so the boot never reaches the deployment;
// - the Ignition base config only in the root filesystem (/usr/lib/ignition/base.d), not in
//   the initramfs where Ignition reads base configs: the first boot makes no data partitions.
// `rock-image build` itself refuses both (its initramfs check), so they are made beside it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { consoleReport, consoleTail } from '../../pipeline/boot/run.ts';
import { IGNITION_BASE_PATH, IGNITION_DRACUT_MODULE } from '../../pipeline/plan/build-context.ts';
import { bootSensor, makeSshKey, overlayDisk, sshKeyConfig } from '../world/sensor-vm.ts';
import { needTool, sh, shResult } from '../world/tools.ts';
import { type Build, cli, sensorWork, serviceRegistry, x86Builds } from './world.ts';

const arch = 'x86_64';
const work = join(sensorWork, 'chain');
// The base and the builds start now, in a child process (shared with the lifecycle suite).
void x86Builds();
const seconds: string[] = [];
let b1: Build;

/**
 * A copy of build `b` whose OCI archive is `b`'s image plus `run` (a RUN step), as its own build
 * directory that `rock-image artifacts` and `rock-image test` take.
 */
function brokenBuild(
  b: Build,
  name: string,
  run: string,
  platform: 'metal' | 'qemu',
): { out: string; dir: string } {
  const out = join(work, name);
  const dir = join(out, 'builds', b.version, arch);
  mkdirSync(dir, { recursive: true });
  const ctx = join(work, `${name}-context`);
  mkdirSync(ctx, { recursive: true });
  writeFileSync(
    join(ctx, 'Containerfile'),
    `FROM oci-archive:${join(b.dir, b.meta.images.ostree!.path)}\nRUN ${run}\n`,
  );
  const g = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  const tag = `localhost/broken-${name}:1`;
  sh('buildah', [
    ...g,
    'build',
    '--isolation',
    'chroot',
    '--pull=never',
    '-t',
    tag,
    '-f',
    join(ctx, 'Containerfile'),
    ctx,
  ]);
  const file = b.meta.images.ostree!.path;
  sh('buildah', [...g, 'push', tag, `oci-archive:${join(dir, file)}:${b.version}`]);
  const meta = { ...b.meta, images: { ostree: { ...b.meta.images.ostree!, sha256: '' } } };
  delete (meta as Record<string, unknown>)['rocknsm.boot-tests'];
  writeFileSync(join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
  mkdirSync(join(out, 'builds'), { recursive: true });
  writeFileSync(
    join(out, 'builds', 'builds.json'),
    JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: b.version, arches: [arch] }] }),
  );
  const r = cli([
    'artifacts',
    '--build',
    out,
    '--platform',
    platform,
    '--backend',
    'native',
    '--compression',
    'zstd',
  ]);
  if (r.code !== 0) throw new Error(`artifacts of ${name} failed:\n${r.stderr}`);
  return { out, dir };
}

test.before(async () => {
  for (const t of ['buildah', 'qemu-system-x86_64', 'zstd', 'ssh']) needTool(t);
  await serviceRegistry();
  b1 = await x86Builds()[0]!;
});
test.after(() => console.log(`sensor chain: ${seconds.join('; ')}`));

test('an image whose initramfs lacks the ostree module fails its boot test', () => {
  const t = Date.now();
  // The old Containerfile's command: no --add ostree.
  const broken = brokenBuild(
    b1,
    'no-ostree-module',
    'kver=$(ls /usr/lib/modules) && dracut --reproducible --force --no-hostonly /usr/lib/modules/$kver/initramfs.img $kver',
    'metal',
  );
  // --reruns 0: the image is broken by construction, a second boot would only repeat the first.
  const r = cli(['test', '--build', broken.out, '--case', 'metal-bios', '--timeout', '900', '--reruns', '0']);
  seconds.push(`no ostree module: image, disk and failed boot ${(Date.now() - t) / 1000} s`);
  assert.is(r.code, 1, r.stderr);
  const log = consoleTail(readFileSync(join(broken.dir, 'boot/metal-bios.log'), 'utf8'), 1_000_000);
  assert.not.match(log, /ostree-prepare-root/, 'no ostree-prepare-root in that initramfs');
  assert.match(
    r.stderr,
    /boot test x86_64 metal-bios failed \('(You are in emergency mode|Entering emergency mode)' on the console/,
  );
  assert.not.match(log, /ROCKNSM-BOOT-OK/);
});

test('an image with the base config only in the root filesystem makes no data partitions on first boot', async () => {
  const t = Date.now();
  const file = IGNITION_BASE_PATH.split('/').pop()!;
  const broken = brokenBuild(
    b1,
    'base-config-in-rootfs',
    `mkdir -p /usr/lib/ignition/base.d && mv ${IGNITION_DRACUT_MODULE}/${file} ${IGNITION_BASE_PATH} && rm -r ${IGNITION_DRACUT_MODULE} && kver=$(ls /usr/lib/modules) && dracut --no-hostonly --kver $kver --reproducible --add ostree -f /usr/lib/modules/$kver/initramfs.img`,
    'qemu',
  );
  const meta = JSON.parse(readFileSync(join(broken.dir, 'meta.json'), 'utf8'));
  const qcow2 = join(work, 'broken.qcow2');
  sh('zstd', ['-q', '-d', '-f', '-o', qcow2, join(broken.dir, meta.images.qemu.path)]);
  const disk = overlayDisk(qcow2, 'qcow2', join(work, 'broken-disk.qcow2'));
  const key = makeSshKey(join(work, 'key'));
  // Ignition's stages all run in the initramfs: the boot ends when it is ready to switch root.
  const r = await bootSensor({
    arch,
    disk,
    key,
    config: sshKeyConfig(key),
    serialLog: join(work, 'base-config-in-rootfs.log'),
    timeoutSec: 900,
    marker: 'Reached target initrd-switch-root.target',
  });
  seconds.push(
    `base config in rootfs: image, disk and first boot to switch-root ${(Date.now() - t) / 1000} s`,
  );
  const log = consoleTail(r.log, 1_000_000);
  assert.is(r.outcome, 'marker', consoleReport(r.log, 40));
  // Ignition ran every stage (the user config is local: fetch-offline) and laid out nothing: only
  // the image's four partitions.
  for (const unit of ['ignition-fetch-offline', 'ignition-disks', 'ignition-mount', 'ignition-files'])
    assert.match(log, new RegExp(`Finished .*${unit}\\.service`), unit);
  assert.equal(gptLabels(disk), ['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root']);
});

/** The partition names of a qcow2 disk's primary GPT (its first MiB, read with qemu-img dd). */
function gptLabels(disk: string): string[] {
  const head = join(work, 'gpt-head.raw');
  sh('qemu-img', ['dd', '-f', 'qcow2', '-O', 'raw', 'bs=1M', 'count=1', `if=${disk}`, `of=${head}`]);
  const r = shResult('sgdisk', ['-p', head]);
  return r.stdout
    .split('\n')
    .filter((l) => /^\s+\d+\s+\d+\s+\d+/.test(l))
    .map((l) => l.trim().split(/\s+/).slice(6).join(' '));
}

test.run();
