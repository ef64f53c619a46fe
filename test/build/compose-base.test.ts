// A stream with `base: {source: compose}` builds on the archive `rock-image compose` wrote, not
// on the upstream image: the real `rock-image build` (buildah, private storage) in a copy of the
// project whose stable stream says so, with the fixture base standing in for rpm-ostree's output
// (rpm-ostree cannot run here). `plan --compose` prints what `compose --print-only` prints.
import { copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheDir, fcosBase, repoRoot } from '../world/fcos-base.ts';
import { shResult } from '../world/tools.ts';

const work = join(cacheDir, `compose-base-${process.pid}`);
const project = join(work, 'project');
const composeDir = join(work, 'compose');
const cli = (args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), '--project', project, ...args], {
    env: { CI: 'true' },
  });

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  const stream = join(project, 'manifests/streams/stable.yaml');
  const text = readFileSync(stream, 'utf8');
  const replaced = text.replace(
    /^base:\n( {2}.*\n)+/m,
    'base:\n  source: compose\ncompose:\n  primary-arch: x86_64\n',
  );
  assert.is.not(replaced, text, 'the stable stream has a base: block to replace');
  writeFileSync(stream, replaced);
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('base.source compose without a composed archive: exit 64 naming the file and the fix', () => {
  const r = cli([
    'build',
    '--stream',
    'stable',
    '--arch',
    'aarch64',
    '--output',
    join(work, 'out0'),
    '--compose-dir',
    composeDir,
  ]);
  assert.is(r.code, 64, r.stderr);
  assert.match(r.stderr, `${composeDir}/aarch64/rocknsm-base-stable.aarch64.ociarchive does not exist`);
  assert.match(r.stderr, "run 'rock-image compose --stream stable --arch aarch64' first");
});

test('base.source compose: build uses <compose-dir>/<arch>/rocknsm-base-<stream>.<arch>.ociarchive', () => {
  const fixture = fcosBase('aarch64', 'plain').replace(/^oci-archive:/, '');
  mkdirSync(join(composeDir, 'aarch64'), { recursive: true });
  const archive = join(composeDir, 'aarch64/rocknsm-base-stable.aarch64.ociarchive');
  copyFileSync(fixture, archive);
  const out = join(work, 'out');
  const r = cli([
    'build',
    '--stream',
    'stable',
    '--arch',
    'aarch64',
    '--output',
    out,
    '--storage',
    join(work, 'storage'),
    '--compose-dir',
    composeDir,
  ]);
  assert.is(r.code, 0, r.stderr);
  const builds = JSON.parse(readFileSync(join(out, 'builds/builds.json'), 'utf8'));
  const meta = JSON.parse(
    readFileSync(join(out, 'builds', builds.builds[0].id, 'aarch64', 'meta.json'), 'utf8'),
  );
  assert.is(meta['base-oscontainer'].image, `oci-archive:${archive}`);
  assert.match(meta['base-oscontainer'].digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(meta['base-oscontainer'].tags, []);
});

test('a compose primary-arch outside the stream arches is a config error at its line', () => {
  const stream = join(project, 'manifests/streams/next.yaml');
  const text = readFileSync(stream, 'utf8');
  writeFileSync(
    stream,
    `${text.replace(/^arches: .*$/m, 'arches: [x86_64]')}compose:\n  primary-arch: aarch64\n`,
  );
  try {
    const r = cli(['plan', '--compose', '--stream', 'next']);
    assert.is(r.code, 65, r.stderr);
    assert.match(
      r.stderr,
      /manifests\/streams\/next\.yaml:\d+: primary-arch-listed at \/compose\/primary-arch: must be one of the stream's arches \(x86_64\)/,
    );
  } finally {
    writeFileSync(stream, text);
  }
});

test('plan --compose prints exactly what compose --print-only prints', () => {
  const a = cli(['plan', '--compose', '--stream', 'stable', '--arch', 'x86_64', '--compose-dir', composeDir]);
  const b = cli([
    'compose',
    '--stream',
    'stable',
    '--arch',
    'x86_64',
    '--print-only',
    '--mode',
    'container',
    '--output',
    composeDir,
  ]);
  assert.is(a.code, 0, a.stderr);
  assert.is(b.code, 0, b.stderr);
  assert.is(a.stdout, b.stdout);
  assert.match(a.stdout, '# x86_64: flattened treefile (rpm-ostree compose tree --print-only)');
  assert.match(a.stdout, `rocknsm-base-stable.x86_64.ociarchive`);
  assert.match(a.stdout, /podman run --rm --privileged/);
});

test.run();
