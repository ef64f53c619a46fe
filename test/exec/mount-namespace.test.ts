// Why the artifacts run mounts in a namespace of its own, shown with the real kernel, and the
// check that refuses a disk image whose filesystem is still held (pipeline/exec/losetup.ts
// waitLoopReleased). On a host whose root mount is private, a mount namespace made while an
// ext4 filesystem is mounted keeps a copy of the mount: our umount succeeds, `losetup --detach`
// only marks the device autoclear, and a second loop device on the same bytes shows the
// filesystem without its last writes. The copy is made with util-linux unshare(1), whose
// default propagation is private (unshare(1) --propagation), as on this project's machines;
// the journal commit interval is raised (ext4(5) commit=) so that nothing is written out while
// the test looks, whatever the machine's load.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PipelineError } from '../../pipeline/errors.ts';
import { waitLoopReleased } from '../../pipeline/exec/losetup.ts';
import { mountsFilesystems, unshareArgs } from '../../pipeline/exec/mount-namespace.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'test', `mount-ns-${process.pid}`);

test.before(() => {
  for (const t of ['unshare', 'losetup', 'mkfs.ext4', 'mount', 'umount']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => {
  shResult('sh', ['-c', 'umount "$1"/a "$1"/b 2>/dev/null; true', 'sh', work]);
  rmSync(work, { recursive: true, force: true });
});

test('a mount copied into another namespace keeps its filesystem alive; the detached device is refused until the copy goes', async () => {
  const img = join(work, 'boot.img');
  sh('truncate', ['-s', '64M', img]);
  sh('mkfs.ext4', ['-q', '-L', 'boot', img]);
  const a = join(work, 'a');
  const b = join(work, 'b');
  mkdirSync(a);
  mkdirSync(b);
  const devA = sh('losetup', ['--find', '--show', img]).trim();
  sh('mount', ['-o', 'commit=300', devA, a]);
  // The copy: a process in a new mount namespace (private, unshare(1)'s default) that stays.
  const holder = spawn('unshare', ['--mount', 'sleep', '120'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    mkdirSync(join(a, 'grub2'));
    writeFileSync(join(a, 'grub2/grub.cfg'), 'set timeout=1\n');
    sh('umount', [a]);
    sh('losetup', ['--detach', devA]);
    // The device is still there: the copy holds the filesystem open.
    assert.ok(existsSync(`/sys/block/${devA.slice(5)}/loop`), 'the device is still held');
    const err = await waitLoopReleased(devA, 500).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(err, PipelineError);
    assert.match((err as Error).message, `${devA} (on ${img}) is still held`);
    // What a second loop device on the same bytes shows meanwhile: not the file just written.
    const devB = sh('losetup', ['--find', '--show', img]).trim();
    sh('mount', ['-o', 'ro,noload', devB, b]);
    const seen = existsSync(join(b, 'grub2/grub.cfg'));
    sh('umount', [b]);
    sh('losetup', ['--detach', devB]);
    assert.not.ok(seen, 'the second view lacks the last writes');
  } finally {
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('close', r));
  }
  // With the copy gone, the filesystem is shut down (written out) and the device released.
  await waitLoopReleased(devA, 10_000);
  const devC = sh('losetup', ['--find', '--show', img]).trim();
  sh('mount', ['-o', 'ro', devC, b]);
  const text = readFileSync(join(b, 'grub2/grub.cfg'), 'utf8');
  sh('umount', [b]);
  sh('losetup', ['--detach', devC]);
  assert.is(text, 'set timeout=1\n');
});

test('mount namespace: which runs re-execute under unshare, and how', () => {
  assert.ok(mountsFilesystems('artifacts', ['--build', 'x']));
  assert.ok(mountsFilesystems('build', ['--stream', 'stable', '--artifacts']));
  assert.not.ok(mountsFilesystems('build', ['--stream', 'stable']));
  assert.not.ok(mountsFilesystems('artifacts', ['--build', 'x', '--print-only']));
  assert.not.ok(mountsFilesystems('publish', ['--stream', 'stable']));
  // Run for real: inside, "/" is shared (mountinfo's optional field shared:N, proc(5)), in a
  // peer group that is not the host's, and a mount made inside is not seen outside.
  const dir = join(work, 'inside');
  mkdirSync(dir, { recursive: true });
  const out = sh('unshare', [
    ...unshareArgs(['sh', '-c', 'mount -t tmpfs inside "$0" && grep " / / " /proc/self/mountinfo', dir]),
  ]);
  assert.match(out, / shared:\d+ /);
  const host = readFileSync('/proc/self/mountinfo', 'utf8');
  const hostGroup = / \/ \/ .*? shared:(\d+) /.exec(
    host.split('\n').find((l) => / \/ \/ /.test(l)) ?? '',
  )?.[1];
  if (hostGroup) assert.not.match(out, new RegExp(` shared:${hostGroup} `), 'a peer group of its own');
  assert.not.ok(host.includes(` ${dir} `), 'the mount made inside is not seen here');
});

test('the re-executed run ends with the one that started it, even when that one is SIGKILLed', async () => {
  needTool('setpriv');
  const dir = join(work, 'reexec');
  mkdirSync(dir, { recursive: true });
  // Stands in for the re-executed rock-image: says where it runs, stops on SIGTERM as ours does.
  const inner = join(dir, 'inner.mjs');
  writeFileSync(
    inner,
    [
      "import { readlinkSync, writeFileSync } from 'node:fs';",
      'const [dir] = process.argv.slice(2);',
      "process.on('SIGTERM', () => { writeFileSync(dir + '/term', ''); process.exit(143); });",
      "writeFileSync(dir + '/started', process.pid + ' ' + readlinkSync('/proc/self/ns/mnt'));",
      'setInterval(() => {}, 1000);',
      '',
    ].join('\n'),
  );
  const outer = spawn(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'test/exec/reexec-child.ts'), inner, dir],
    { stdio: 'ignore', cwd: repoRoot },
  );
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(ok(), what);
  };
  await until('the re-executed process started', () => existsSync(join(dir, 'started')));
  const [pid, ns] = readFileSync(join(dir, 'started'), 'utf8').split(' ');
  assert.is.not(ns, readlinkSync('/proc/self/ns/mnt'), 'in a mount namespace of its own');
  outer.kill('SIGKILL');
  await until('it got SIGTERM when its parent died', () => existsSync(join(dir, 'term')));
  await until('and it is gone', () => !existsSync(`/proc/${pid}`));
});

test.run();
