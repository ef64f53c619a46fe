// The native backend's variants that the fixture bases cannot reach here: an image with its own
// ostree (run in the tool root) and GRUB with blsuki, and one with ostree only. Those programs
// run inside the image, which the fixture bases do not carry, so the runner is a stand-in that
// records each command line and gives what the real one prints (a loop device, a commit) or
// leaves behind (a BLS entry, a core image); every in-process step is real. What ran is compared
// with the plan, inputs put in, exactly as native.test.ts does for a real run of the host's tools.
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ArchJob } from '../../pipeline/artifacts/backend.ts';
import { native } from '../../pipeline/artifacts/native.ts';
import { isCommand, nativePlan } from '../../pipeline/artifacts/native-plan.ts';
import type { Runner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { cacheDir, KVER } from '../world/fcos-base.ts';
import { planFor } from './plan-compare.ts';

const work = join(cacheDir, `native-variants-${process.pid}`);
const KARGS = ['rocknsm.test=1', 'quiet'];

function job(name: string): ArchJob {
  return {
    arch: 'x86_64',
    name: 'rocknsm-coreos',
    version: '41.20261124.3.0',
    osname: 'rocknsm-coreos',
    archive: join(work, 'unused.ociarchive'),
    work: join(work, name),
    platforms: ['metal', 'qemu', 'pxe'],
    created: '2026-11-24T00:00:00Z',
    pxe: { baseUrl: 'https://example.test/x86_64', ignitionUrl: 'https://example.test/default.ign' },
  };
}

const put = (file: string, text: string | Buffer) => {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
};

/** The stand-in runner: records argv, acts as the real program would where a later step reads it. */
function fakeRun(w: string, image: { grub: boolean }, failOn?: RegExp) {
  const ran: string[][] = [];
  let loops = 0;
  const run: Runner = async (cmd, args) => {
    const argv = [cmd, ...args];
    ran.push(argv);
    const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
    if (failOn?.test(argv.join(' '))) throw new Error(`stand-in failure: ${argv.join(' ')}`);
    if (cmd === 'umoci') {
      const tree = args.at(-1)!;
      put(join(tree, `usr/lib/modules/${KVER.x86_64}/vmlinuz`), 'kernel\n');
      put(join(tree, `usr/lib/modules/${KVER.x86_64}/initramfs.img`), 'initramfs\n');
      put(join(tree, 'usr/lib/bootc/kargs.d/10-rocknsm.toml'), `kargs = ${JSON.stringify(KARGS)}\n`);
      put(join(tree, 'usr/bin/ostree'), '');
      put(join(tree, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
      if (image.grub) {
        put(join(tree, 'usr/bin/grub2-mkimage'), '');
        for (const t of ['i386-pc', 'x86_64-efi']) put(join(tree, `usr/lib/grub/${t}/blscfg.mod`), '');
        put(join(tree, 'usr/lib/grub/i386-pc/boot.img'), Buffer.alloc(512, 1));
      }
    }
    if (cmd === 'sgdisk') {
      // A protective MBR's signature: the BIOS boot code goes only into one.
      const fd = openSync(args.at(-1)!, 'r+');
      writeSync(fd, Buffer.from([0x55, 0xaa]), 0, 2, 510);
      closeSync(fd);
    }
    const out = argv[argv.indexOf('-o') + 1];
    if (argv.includes('-O') && out?.endsWith('.img') && argv.some((a) => a.includes('mkimage')))
      put(out.replace('/run/rock-image/grub', join(w, 'grub')), Buffer.alloc(1024, 2));
    if (cmd === 'losetup' && args[0] === '--find') return ok(`/dev/loop${40 + loops++}\n`);
    if (argv.includes('commit')) return ok(`${'ab'.repeat(32)}\n`);
    if (argv.includes('deploy')) {
      const boot = join(w, 'sysroot/boot');
      const dir = `/ostree/rocknsm-coreos-${'cd'.repeat(32)}`;
      put(join(boot, dir, `vmlinuz-${KVER.x86_64}`), 'kernel\n');
      put(join(boot, dir, `initramfs-${KVER.x86_64}.img`), 'initramfs\n');
      put(
        join(boot, 'loader/entries/ostree-1-rocknsm-coreos.conf'),
        `title test\nversion 1\nlinux ${dir}/vmlinuz-${KVER.x86_64}\ninitrd ${dir}/initramfs-${KVER.x86_64}.img\noptions rw ignition.platform.id=metal\n`,
      );
    }
    if (cmd === 'mount' && args.at(-1) === join(w, 'qemu-boot')) {
      put(
        join(w, 'qemu-boot/loader/entries/ostree-1-rocknsm-coreos.conf'),
        'title test\nversion 1\nlinux /k\ninitrd /i\noptions rw ignition.platform.id=metal\n',
      );
      put(join(w, 'qemu-boot/grub2/grub.cfg'), '');
    }
    if (cmd === 'cpio') put(args[args.indexOf('-O') + 1]!, 'cpio\n');
    // A squashfs written into the rootfs archive at root.squashfs's data (-offset): the headers go around it.
    if (cmd === 'mksquashfs')
      put(
        args[1]!,
        Buffer.concat([Buffer.alloc(Number(args[args.indexOf('-offset') + 1])), Buffer.from('hsqs')]),
      );
    return ok();
  };
  return { ran, run };
}

async function make(name: string, image: { grub: boolean }, failOn?: RegExp) {
  const j = job(name);
  const fake = fakeRun(j.work, image, failOn);
  const events: Record<string, unknown>[] = [];
  const log = createLogger({ mode: 'plain', out: { write: () => true } });
  const ctx = { run: fake.run, log: { ...log, event: (e: Record<string, unknown>) => events.push(e) } };
  let error: unknown;
  await native.make(ctx, j).catch((err) => {
    error = err;
  });
  const values = Object.fromEntries(
    events
      .filter((e) => e.event === 'plan-input')
      .map((e) => [e.name as string, e.value as string | string[]]),
  );
  return { ran: fake.ran, values, error, plan: native.plan!(j) };
}

test.before(() => rmSync(work, { recursive: true, force: true }));
test.after(() => rmSync(work, { recursive: true, force: true }));

test("the image's ostree and GRUB: what ran is the plan, inputs put in", async () => {
  const r = await make('both', { grub: true });
  assert.is(r.error, undefined, String(r.error));
  assert.equal([r.values.IMAGE_OSTREE, r.values.IMAGE_GRUB], ['yes', 'yes']);
  assert.is(r.values.IMAGE_GRUB_MKIMAGE, '/usr/bin/grub2-mkimage');
  assert.equal([r.values.IMAGE_BLS_i386_pc, r.values.IMAGE_BLS_x86_64_efi], ['blscfg', 'blscfg']);
  assert.equal(r.values.IMAGE_KARGS, KARGS);
  assert.equal(Object.keys(r.values).sort(), r.plan.inputs.map((i) => i.name).sort());
  const { commands } = planFor(r.plan.steps, r.values);
  assert.equal(
    r.ran,
    commands.map((c) => c.argv),
  );
  // The kargs.d arguments are on the deploy, one --karg-append each, after ours.
  const deploy = r.ran.find((a) => a.includes('deploy'))!;
  assert.equal(deploy.slice(-3), [
    '--karg-append=rocknsm.test=1',
    '--karg-append=quiet',
    'rocknsm-coreos/41.20261124.3.0/x86_64',
  ]);
  assert.equal(deploy.slice(0, 3), ['chroot', join(work, 'both/toolroot/root'), 'ostree']);
});

test("the image's ostree with the host's GRUB: the tool root opens, GRUB runs on the host", async () => {
  const r = await make('ostree-only', { grub: false });
  assert.is(r.error, undefined, String(r.error));
  assert.equal([r.values.IMAGE_OSTREE, r.values.IMAGE_GRUB], ['yes', 'no']);
  const { commands } = planFor(r.plan.steps, r.values);
  assert.equal(
    r.ran,
    commands.map((c) => c.argv),
  );
  assert.ok(r.ran.some((a) => a[0] === 'grub-mkimage'));
  assert.ok(r.ran.some((a) => a[0] === 'chroot' && a[2] === 'ostree'));
});

test("a failure in the tool root: the plan's release steps of what is held, tool root first", async () => {
  const r = await make('fails', { grub: true }, /ostree admin deploy/);
  assert.match(String(r.error), /stand-in failure: chroot \S+ ostree admin deploy/);
  const { commands } = planFor(r.plan.steps, r.values, true);
  const failed = commands.findIndex((c) => c.argv.includes('deploy'));
  const releases = commands
    .slice(failed + 1)
    .filter((c) =>
      ['toolroot', 'mnt-boot', 'mnt-root', 'LOOP_BOOT', 'LOOP_ROOT'].includes(c.step.releases ?? ''),
    );
  assert.equal(
    releases.map((c) => c.argv[0]),
    ['umount', 'umount', 'umount', 'losetup', 'losetup'],
  );
  assert.equal(releases[0]!.argv, ['umount', '--recursive', join(work, 'fails/toolroot/root')]);
  assert.equal(
    r.ran,
    [...commands.slice(0, failed + 1), ...releases].map((c) => c.argv),
  );
});

test('the plan names every input it uses, and releases what it holds in the same variant', () => {
  for (const arch of ['x86_64', 'aarch64'] as const)
    for (const rootSizeMiB of [undefined, 700]) {
      const j = { ...job('pure'), arch, rootSizeMiB };
      const plan = nativePlan(j);
      const declared = new Set(plan.inputs.map((i) => i.name));
      const text = JSON.stringify(plan.steps);
      const used = new Set([...text.matchAll(/\$\{([A-Z][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!));
      assert.equal(
        [...used].filter((n) => !declared.has(n)),
        [],
        `${arch} ${rootSizeMiB}: undeclared`,
      );
      // The image facts choose variants (`when`); the root size is what the root's numbers follow from.
      const bySelf = ['IMAGE_OSTREE', 'IMAGE_GRUB', 'ROOT_SIZE_MiB'];
      assert.equal(
        [...declared].filter((n) => !used.has(n) && !bySelf.includes(n)),
        [],
        `${arch} ${rootSizeMiB}: unused`,
      );
      // A given root size is in the arguments; only a computed one is an input.
      assert.is(declared.has('ROOT_SIZE_MiB'), rootSizeMiB === undefined);
      if (rootSizeMiB) assert.ok(text.includes(`4:1050624:${1050624 + 700 * 2048 - 1}`));
      const cmds = plan.steps.filter(isCommand);
      for (const [i, s] of cmds.entries())
        if (s.acquires)
          assert.ok(
            cmds.slice(i + 1).some((r) => r.releases === s.acquires && r.when === s.when),
            `${arch}: ${s.argv.join(' ')} is released`,
          );
    }
});

test.run();
