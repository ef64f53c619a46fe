// Service and agent images pinned by digest: what the quadlets say with and without a pin, the
// bound-images links, `require-pins` refusing an image by tag at the manifest line that names
// it, and a broken pin file refused at its line. Pure planning on a copy of the project.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { ConfigError, formatIssue } from '../../pipeline/errors.ts';
import { type ImageLock, parseImageLock } from '../../pipeline/plan/image-lock.ts';
import {
  diffPins,
  IMAGE_PINS_FILE,
  pinImage,
  quadletImage,
  repositoryOf,
} from '../../pipeline/plan/image-pins.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { planProject } from './plan-project.ts';

const scratch = mkdtempSync(join(tmpdir(), 'rock-pins-test-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

/** A copy of the project; `edit` changes the stable stream's text. */
function project(edit: (stream: string) => string = (s) => s): string {
  const dir = mkdtempSync(join(scratch, 'project-'));
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true, verbatimSymlinks: true });
  const file = join(dir, 'manifests/streams/stable.yaml');
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return dir;
}

const plan = (dir: string, pins: ImageLock) => planProject(dir, 'stable', { pins });

const lock = (entries: Record<string, string>): ImageLock => ({
  images: Object.fromEntries(
    Object.entries(entries).map(([r, d]) => [r, { digest: d, resolved: '2026-11-22' }]),
  ),
});
const quadlets = (p: ReturnType<typeof plan>) =>
  p.arches[0]!.context.filter((f) => /\/usr\/share\/containers\/systemd\/[^/]+\.container$/.test(f.path));
const links = (p: ReturnType<typeof plan>) =>
  p.arches[0]!.context.filter((f) => f.path.startsWith('generated/usr/lib/bootc/bound-images.d/'));

/** The issues a plan is refused with. */
function refused(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('repositoryOf and pinImage: the digest alone (containers/image refuses tag and digest together)', () => {
  assert.is(repositoryOf('docker.io/zeek/zeek:7.0.5'), 'docker.io/zeek/zeek');
  assert.is(repositoryOf('127.0.0.1:5000/rocknsm-test/zeek:1'), '127.0.0.1:5000/rocknsm-test/zeek');
  assert.is(repositoryOf('127.0.0.1:5000/rocknsm-test/zeek'), '127.0.0.1:5000/rocknsm-test/zeek');
  assert.is(repositoryOf(`quay.io/a/b:1@${D1}`), 'quay.io/a/b');
  const pins = lock({ '127.0.0.1:5000/t/zeek:1': D1 });
  assert.equal(pinImage('127.0.0.1:5000/t/zeek:1', pins), {
    ref: '127.0.0.1:5000/t/zeek:1',
    image: `127.0.0.1:5000/t/zeek@${D1}`,
    digest: D1,
  });
  assert.equal(pinImage(`quay.io/a/b:1@${D2}`, pins), {
    ref: `quay.io/a/b:1@${D2}`,
    image: `quay.io/a/b@${D2}`,
    digest: D2,
  });
  assert.equal(pinImage('quay.io/a/b:2', pins), { ref: 'quay.io/a/b:2', image: 'quay.io/a/b:2' });
});

test('diffPins: new, moved and gone references', () => {
  assert.equal(
    diffPins(lock({ 'a:1': D1, 'b:1': D1, 'c:1': D1 }), lock({ 'a:1': D1, 'b:1': D2, 'd:1': D2 })),
    [`~ b:1 ${D1} -> ${D2}`, `- c:1 ${D1}`, `+ d:1 ${D2}`],
  );
});

test('pinned: every quadlet runs <repository>@digest, the tag in a comment, each linked in bound-images.d', () => {
  const dir = project();
  const config = resolveStream(loadProject(projectPaths(dir)), 'stable', dir);
  const refs = [...config.services.map((s) => s.image), ...config.agents.map((a) => a.image)];
  const p = plan(dir, lock(Object.fromEntries(refs.map((r) => [r, D1]))));
  const qs = quadlets(p);
  assert.is(qs.length, config.services.length + config.agents.filter((a) => a.mode === 'container').length);
  for (const q of qs) {
    const image = quadletImage(q.content!)!;
    assert.match(image, new RegExp(`^[^:@]+(:\\d+)?/[^:@]+@${D1}$`), `${q.path}: ${image}`);
    assert.not.match(q.content!, /AutoUpdate=/, q.path);
    const name = q.path.split('/').pop()!;
    const link = links(p).find((l) => l.path.endsWith(`/${name}`));
    assert.ok(link, `${name} is bound`);
    assert.is(link!.type, 'symlink');
    assert.is(link!.target, `/usr/share/containers/systemd/${name}`);
  }
  assert.is(links(p).length, qs.length);
  assert.equal(p.images['service/zeek'], {
    ref: 'docker.io/zeek/zeek:7.0.5',
    image: `docker.io/zeek/zeek@${D1}`,
    digest: D1,
  });
  assert.ok(p.arches[0]!.addedPaths.includes('/usr/lib/bootc/bound-images.d/rocknsm-zeek.container'));
});

test('a pin changes the input hash; an unpinned image stays by tag and is not bound', () => {
  const dir = project();
  const one = plan(dir, lock({ 'docker.io/zeek/zeek:7.0.5': D1 }));
  const two = plan(dir, lock({ 'docker.io/zeek/zeek:7.0.5': D2 }));
  assert.is.not(one.arches[0]!.inputHash, two.arches[0]!.inputHash);
  assert.equal(
    links(one).map((l) => l.path),
    ['generated/usr/lib/bootc/bound-images.d/rocknsm-zeek.container'],
  );
  const suricata = quadlets(one).find((q) => q.path.endsWith('rocknsm-suricata.container'))!;
  assert.is(quadletImage(suricata.content!), 'docker.io/jasonish/suricata:7.0.8');
  assert.match(suricata.content!, '# docker.io/jasonish/suricata:7.0.8 by tag: not pinned in');
  assert.equal(one.images['service/suricata'], {
    ref: 'docker.io/jasonish/suricata:7.0.8',
    image: 'docker.io/jasonish/suricata:7.0.8',
  });
});

test('require-pins: an image by tag is refused at the line naming it (image.yaml or the stream)', () => {
  const dir = project((s) =>
    s
      .replace(/^artifacts:/m, 'require-pins: true\nartifacts:')
      .concat('services:\n  kafka:\n    image: docker.io/apache/kafka:3.9.1\n'),
  );
  const config = resolveStream(loadProject(projectPaths(dir)), 'stable', dir);
  const refs = [...config.services.map((s) => s.image), ...config.agents.map((a) => a.image)];
  // Everything pinned but zeek (image.yaml) and the stream's kafka override.
  const pins = lock(Object.fromEntries(refs.filter((r) => !/zeek|kafka/.test(r)).map((r) => [r, D1])));
  const err = refused(() => plan(dir, pins));
  assert.is(err.issues.length, 2, err.issues.map(formatIssue).join('\n'));
  const imageYaml = readFileSync(join(dir, 'manifests/image.yaml'), 'utf8').split('\n');
  const streamYaml = readFileSync(join(dir, 'manifests/streams/stable.yaml'), 'utf8').split('\n');
  const zeek = err.issues.find((i) => i.value === 'docker.io/zeek/zeek:7.0.5')!;
  assert.is(zeek.file, 'manifests/image.yaml');
  assert.is(zeek.rule, 'image-pinned');
  assert.match(imageYaml[zeek.line! - 1]!, 'image: docker.io/zeek/zeek:7.0.5');
  const kafka = err.issues.find((i) => i.value === 'docker.io/apache/kafka:3.9.1')!;
  assert.is(kafka.file, 'manifests/streams/stable.yaml');
  assert.match(streamYaml[kafka.line! - 1]!, 'image: docker.io/apache/kafka:3.9.1');
  const requireLine = streamYaml.findIndex((l) => l.startsWith('require-pins:')) + 1;
  assert.match(kafka.message, `requires pins (manifests/streams/stable.yaml:${requireLine} require-pins)`);
  assert.match(kafka.message, "'rock-image pin'");
  assert.match(formatIssue(kafka), /^manifests\/streams\/stable\.yaml:\d+:\d+: /);
  // Pinned, or named by digest in the manifest, the same stream plans.
  const all = lock({
    ...Object.fromEntries(Object.entries(pins.images).map(([r, e]) => [r, e.digest])),
    'docker.io/zeek/zeek:7.0.5': D2,
  });
  const dir2 = project((s) =>
    s
      .replace(/^artifacts:/m, 'require-pins: true\nartifacts:')
      .concat(`services:\n  kafka:\n    image: docker.io/apache/kafka:3.9.1@${D2}\n`),
  );
  const ok = plan(dir2, all);
  assert.is(ok.images['service/kafka']!.image, `docker.io/apache/kafka@${D2}`);
  for (const q of quadlets(ok)) assert.match(quadletImage(q.content!)!, /@sha256:[0-9a-f]{64}$/, q.path);
});

test('a broken pin file is refused at its line, with the rule', () => {
  const text = `{\n  "images": {\n    "docker.io/zeek/zeek:7.0.5": {\n      "digest": "sha256:123",\n      "resolved": "2026-11-22"\n    }\n  }\n}\n`;
  const err = refused(() => parseImageLock(text, IMAGE_PINS_FILE));
  assert.is(err.issues[0]!.rule, 'image-lock-digest');
  assert.is(err.issues[0]!.file, IMAGE_PINS_FILE);
  assert.is(err.issues[0]!.line, 3);
  const byDigest = `{"images": {"docker.io/zeek/zeek@${D1}": {"digest": "${D1}"}}}`;
  assert.is(refused(() => parseImageLock(byDigest, IMAGE_PINS_FILE)).issues[0]!.rule, 'image-lock-ref');
});

test('the shipped pin file parses, and pins only images the manifests name', () => {
  const shipped = parseImageLock(readFileSync(join(repoRoot, IMAGE_PINS_FILE), 'utf8'), IMAGE_PINS_FILE);
  // Every pin names an image the manifests use (refresh drops the others).
  const dir = project();
  const config = resolveStream(loadProject(projectPaths(dir)), 'stable', dir);
  const used = new Set([...config.services.map((s) => s.image), ...config.agents.map((a) => a.image)]);
  for (const ref of Object.keys(shipped.images)) assert.ok(used.has(ref), ref);
});

test.run();
