// The real `rock-image build` (the bin, real buildah) of a project copy whose stable stream
// requires pins and whose manifests/image-pins.json pins every service and agent image: in the
// image (unpacked with umoci) no quadlet names an image by tag, and every
// /usr/lib/bootc/bound-images.d link resolves inside the image to a quadlet whose Image= is a
// digest; meta.json records the pins. The same project with one pin missing is refused at the
// manifest line, before anything is written.
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { IMAGE_PINS_FILE, quadletImage } from '../../pipeline/plan/image-pins.ts';
import { projectCli, stableBuildArgs } from '../world/cli.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { needTool, sh } from '../world/tools.ts';

const work = join(cacheDir, `build-pins-${process.pid}`);
const project = join(work, 'project');
const out = join(work, 'out');
const VERSION = '41.20261122.3.0';
const cli = projectCli(project);
const build = (extra: string[] = []) => cli(stableBuildArgs(work, out, ['--version', VERSION, ...extra]));

/** Test pins (the build pulls no service image): one digest per reference. */
const digestOf = (i: number) => `sha256:${i.toString(16).padStart(2, '0').repeat(32)}`;
let pins: Record<string, { digest: string; resolved: string }> = {};

test.before(() => {
  needTool('buildah');
  needTool('umoci');
  rmSync(work, { recursive: true, force: true });
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true, verbatimSymlinks: true });
  const stream = join(project, 'manifests/streams/stable.yaml');
  writeFileSync(
    stream,
    readFileSync(stream, 'utf8').replace(/^artifacts:/m, 'require-pins: true\nartifacts:'),
  );
  const image = parse(readFileSync(join(project, 'manifests/image.yaml'), 'utf8')) as {
    services: Record<string, { image: string }>;
    agents: Record<string, { image: string }>;
  };
  const refs = [...Object.values(image.services), ...Object.values(image.agents)].map((s) => s.image).sort();
  pins = Object.fromEntries(refs.map((r, i) => [r, { digest: digestOf(i + 1), resolved: '2026-11-22' }]));
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('require-pins with a pin missing: refused at the manifest line, nothing written', () => {
  const [first, ...rest] = Object.keys(pins);
  writeFileSync(
    join(project, IMAGE_PINS_FILE),
    `${JSON.stringify({ images: Object.fromEntries(rest.map((r) => [r, pins[r]])) }, null, 2)}\n`,
  );
  const r = build();
  assert.is(r.code, 65, r.stderr);
  const line =
    readFileSync(join(project, 'manifests/image.yaml'), 'utf8')
      .split('\n')
      .findIndex((l) => l.includes(`image: ${first}`)) + 1;
  assert.match(r.stderr, `manifests/image.yaml:${line}:`);
  assert.match(r.stderr, `image-pinned`);
  assert.match(r.stderr, `${first} is a tag that ${IMAGE_PINS_FILE} does not pin`);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.not.ok(existsSync(join(out, 'builds')), 'nothing written');
});

test('a broken pin file: the build refused at its line before any base is read, nothing written', () => {
  const good = { ...pins };
  const [first] = Object.keys(good);
  const text = `${JSON.stringify({ images: { ...good, [first!]: { digest: 'sha256:0123', resolved: '2026-11-22' } } }, null, 2)}\n`;
  writeFileSync(join(project, IMAGE_PINS_FILE), text);
  const r = build();
  assert.is(r.code, 65, r.stderr);
  const line = text.split('\n').findIndex((l) => l.includes(`"${first}"`)) + 1;
  assert.match(r.stderr, `${IMAGE_PINS_FILE}:${line}:`);
  assert.match(r.stderr, 'image-lock-digest');
  assert.not.match(r.stderr, /resolve bases/, 'stopped before the bases');
  assert.not.ok(existsSync(join(out, 'builds')), 'nothing written');
});

test('pinned: no quadlet in the image names a tag; every bound-images link resolves to a quadlet by digest', () => {
  writeFileSync(join(project, IMAGE_PINS_FILE), `${JSON.stringify({ images: pins }, null, 2)}\n`);
  const r = build();
  assert.is(r.code, 0, r.stderr);
  const meta = JSON.parse(readFileSync(join(out, 'builds', VERSION, 'x86_64', 'meta.json'), 'utf8'));
  assert.equal(meta['rocknsm.images']['service/zeek'], {
    ref: 'docker.io/zeek/zeek:7.0.5',
    image: `docker.io/zeek/zeek@${pins['docker.io/zeek/zeek:7.0.5']!.digest}`,
    digest: pins['docker.io/zeek/zeek:7.0.5']!.digest,
  });

  const dest = join(work, 'unpack');
  mkdirSync(join(dest, 'layout'), { recursive: true });
  sh('tar', [
    '-xf',
    join(out, 'builds', VERSION, 'x86_64', meta.images.ostree.path),
    '-C',
    join(dest, 'layout'),
  ]);
  sh('umoci', ['unpack', '--image', `${join(dest, 'layout')}:${VERSION}`, join(dest, 'bundle')]);
  const root = join(dest, 'bundle/rootfs');

  // Every quadlet the image has, wherever podman reads system quadlets from.
  const quadletDirs = ['usr/share/containers/systemd', 'etc/containers/systemd'];
  const quadlets = quadletDirs.flatMap((d) =>
    existsSync(join(root, d))
      ? readdirSync(join(root, d))
          .filter((f) => f.endsWith('.container') || f.endsWith('.image'))
          .map((f) => `/${d}/${f}`)
      : [],
  );
  assert.is(quadlets.length, 9, quadlets.join(' '));
  for (const q of quadlets) {
    const text = readFileSync(join(root, q), 'utf8');
    const image = quadletImage(text, q.endsWith('.image') ? 'Image' : 'Container');
    assert.ok(image, `${q} has Image=`);
    assert.match(image!, /^[^@:]+(:\d+)?\/[^@:]+@sha256:[0-9a-f]{64}$/, `${q}: ${image}`);
    assert.ok(
      Object.values(pins).some((p) => image!.endsWith(`@${p.digest}`)),
      `${q}: a pinned digest`,
    );
  }

  // bootc's view: each entry a symlink, resolved inside the image root (absolute targets).
  const dir = 'usr/lib/bootc/bound-images.d';
  const links = readdirSync(join(root, dir)).sort();
  assert.equal(links, quadlets.map((q) => posix.basename(q)).sort());
  for (const l of links) {
    const target = readlinkSync(join(root, dir, l));
    const inImage = posix.isAbsolute(target) ? target : posix.join(`/${dir}`, target);
    assert.ok(quadlets.includes(inImage), `${l} -> ${target} is one of the image's quadlets`);
    assert.match(quadletImage(readFileSync(join(root, inImage), 'utf8'))!, /@sha256:[0-9a-f]{64}$/);
  }
});

test.run();
