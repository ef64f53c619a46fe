// `rock-image build --artifacts`: the build, then the stream's disk and PXE artifacts (native
// backend, real tools), in one command; a re-run with unchanged inputs finishes artifacts an
// earlier run did not make, and otherwise does nothing.
import { cpSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectCli, stableBuildArgs } from '../world/cli.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';

const work = join(cacheDir, `build-artifacts-${process.pid}`);
const project = join(work, 'project');
const out = join(work, 'out');
const cli = projectCli(project);
const build = () => cli(stableBuildArgs(work, out, ['--artifacts', '--compression', 'zstd']));
const meta = () => {
  const v = JSON.parse(readFileSync(join(out, 'builds/builds.json'), 'utf8')).builds[0].id;
  const file = join(out, 'builds', v, 'x86_64', 'meta.json');
  return { file, data: JSON.parse(readFileSync(file, 'utf8')), dir: join(out, 'builds', v, 'x86_64') };
};

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  // zstd (--compression) keeps the test fast; the test world makes its disks with the native
  // backend, said in the stream, and so only what it can make (no metal4k, no live ISO).
  const stream = join(project, 'manifests/streams/stable.yaml');
  writeFileSync(
    stream,
    readFileSync(stream, 'utf8')
      .replace(/^artifact-backend: coreos$/m, 'artifact-backend: native')
      .replace(/^artifacts: .*$/m, 'artifacts: [ostree, metal, qemu, pxe]'),
  );
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('build --artifacts makes the image and the artifacts of the stream list', () => {
  const r = build();
  assert.is(r.code, 0, r.stderr);
  const { data, dir } = meta();
  for (const key of ['ostree', 'metal', 'qemu', 'live-kernel', 'live-initramfs', 'live-rootfs'])
    assert.ok(data.images[key], `meta.json images.${key}`);
  assert.match(data.images.metal.path, /-metal\.x86_64\.raw\.zst$/);
  assert.is(statSync(join(dir, data.images.metal.path)).size, data.images.metal.size);
});

test('unchanged inputs: nothing rebuilt; artifacts an earlier run lacked are made', () => {
  const before = meta();
  const metalTime = statSync(join(before.dir, before.data.images.metal.path)).mtimeMs;
  const again = build();
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stderr, /nothing to build/);
  assert.is(statSync(join(before.dir, before.data.images.metal.path)).mtimeMs, metalTime);

  // As if the artifacts step had died after the image: meta.json without the disk entries.
  const { qemu: _q, metal: _m, ...rest } = before.data.images;
  writeFileSync(before.file, JSON.stringify({ ...before.data, images: rest }, null, 2));
  const third = build();
  assert.is(third.code, 0, third.stderr);
  assert.match(third.stderr, /nothing to build/);
  const after = meta();
  assert.ok(after.data.images.metal && after.data.images.qemu, 'disk artifacts made again');
  assert.is(after.data['rocknsm.image-digest'], before.data['rocknsm.image-digest']);
});

test.run();
