// `rock-image pin` (the bin, real skopeo) against a real docker-registry: the project's service and
// agent images, multi-arch indexes pushed by buildah, are pinned to the digests buildah reported;
// a retagged image shows as a change (`--check` exit 1, file untouched; `pin` writes it); a tag
// that does not resolve, a digest reference that does not resolve and a pin that no longer
// resolves are refused at their line, exit 65, nothing written, no stack trace.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDocument } from 'yaml';
import { IMAGE_PINS_FILE } from '../../pipeline/plan/image-pins.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { pushManifestList, startRegistry, type TestRegistry } from '../world/registry.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(cacheDir, `pin-${process.pid}`);
const project = join(work, 'project');
const pinsFile = join(project, IMAGE_PINS_FILE);
let reg: TestRegistry;
// The registry speaks plain HTTP: --plain-http (skopeo --tls-verify=false) for it alone.
const cli = (args: string[]) =>
  shResult(
    process.execPath,
    [join(repoRoot, 'bin/rock-image.js'), '--project', project, ...args, '--plain-http', reg.host],
    { env: { CI: 'true' } },
  );
const g = () => ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];

/** Builds an amd64+arm64 index whose files say `text` and pushes it as each of `refs`; its digest. */
function pushIndex(text: string, refs: string[]): string {
  const images: string[] = [];
  for (const arch of ['amd64', 'arm64']) {
    const dir = join(work, `ctx-${arch}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'release'), `${text} ${arch}\n`);
    const ctr = sh('buildah', [...g(), 'from', 'scratch']).trim();
    sh('buildah', [...g(), 'copy', ctr, join(dir, 'release'), '/release']);
    sh('buildah', [...g(), 'config', '--arch', arch, '--os', 'linux', ctr]);
    sh('buildah', [...g(), 'commit', '--rm', '--timestamp', '1764460800', ctr, `localhost/pin-test:${arch}`]);
    images.push(`localhost/pin-test:${arch}`);
  }
  shResult('buildah', [...g(), 'manifest', 'rm', 'localhost/pin-test:index']);
  sh('buildah', [...g(), 'manifest', 'create', 'localhost/pin-test:index', ...images]);
  const digests = refs.map((ref, i) =>
    pushManifestList(g(), 'localhost/pin-test:index', `docker://${ref}`, join(work, `digest-${i}`)),
  );
  assert.equal(new Set(digests).size, 1, 'one index, one digest');
  return digests[0]!;
}

let refs: string[] = [];
let d1 = '';

test.before(async () => {
  for (const t of ['buildah', 'skopeo']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  reg = await startRegistry(join(work, 'registry'), undefined, undefined, { auth: false });
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true, verbatimSymlinks: true });
  // Every service and agent image in the test registry (image.yaml), none pinned yet.
  const file = join(project, 'manifests/image.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  for (const kind of ['services', 'agents'])
    for (const name of Object.keys((doc.getIn([kind]) as { toJSON(): object }).toJSON())) {
      const ref = `${reg.host}/rocknsm-pin/${name}:1`;
      doc.setIn([kind, name, 'image'], ref);
      refs.push(ref);
    }
  writeFileSync(file, doc.toString());
  rmSync(pinsFile, { force: true });
  refs = refs.sort();
  d1 = pushIndex('one', refs);
});
test.after(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

test('pin: every tag to the index digest buildah pushed; the file written; --check then clean', () => {
  const r = cli(['pin']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(
    r.stdout.trim().split('\n'),
    refs.map((ref) => `+ ${ref} ${d1}`),
  );
  const pins = JSON.parse(readFileSync(pinsFile, 'utf8'));
  assert.equal(Object.keys(pins.images), refs);
  for (const ref of refs) assert.is(pins.images[ref].digest, d1);
  // The pin is the index: skopeo sees both arches under it.
  const index = JSON.parse(
    sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${refs[0]!.replace(/:1$/, '')}@${d1}`]),
  );
  assert.equal(
    index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture).sort(),
    ['amd64', 'arm64'],
  );
  const check = cli(['pin', '--check']);
  assert.is(check.code, 0, check.stderr);
  assert.is(check.stdout, '');
});

test('a retagged image: --check prints the change and exits 1 without writing; pin writes it', () => {
  const zeek = refs.find((r) => r.includes('/zeek:'))!;
  const d2 = pushIndex('two', [zeek]);
  assert.is.not(d2, d1);
  const before = readFileSync(pinsFile, 'utf8');
  const check = cli(['pin', '--check']);
  assert.is(check.code, 1, check.stderr);
  assert.is(check.stdout, `~ ${zeek} ${d1} -> ${d2}\n`);
  assert.match(check.stderr, `${IMAGE_PINS_FILE} is stale`);
  assert.is(readFileSync(pinsFile, 'utf8'), before, '--check writes nothing');
  const r = cli(['pin']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `~ ${zeek} ${d1} -> ${d2}\n`);
  assert.is(JSON.parse(readFileSync(pinsFile, 'utf8')).images[zeek].digest, d2);
  assert.is(cli(['pin', '--check']).code, 0);
});

/** The stable stream with `services:` overrides (YAML lines). */
function overrideStable(lines: string): () => void {
  const file = join(project, 'manifests/streams/stable.yaml');
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, `${text}services:\n${lines}`);
  return () => writeFileSync(file, text);
}
const lineOf = (file: string, needle: string) =>
  readFileSync(join(project, file), 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(needle)) + 1;

test('a tag that does not resolve: exit 65 at the stream line naming it, nothing written', () => {
  const missing = `${reg.host}/rocknsm-pin/missing:1`;
  const restore = overrideStable(`  kafka:\n    image: ${missing}\n`);
  const before = readFileSync(pinsFile, 'utf8');
  const line = lineOf('manifests/streams/stable.yaml', missing);
  const r = cli(['pin']);
  restore();
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, `manifests/streams/stable.yaml:${line}:`);
  assert.match(r.stderr, `${missing} does not resolve in its registry`);
  assert.match(r.stderr, 'image-resolves');
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.is(readFileSync(pinsFile, 'utf8'), before);
});

test('a digest reference that does not resolve: exit 65 at its line', () => {
  const bad = `${reg.host}/rocknsm-pin/kafka@sha256:${'0'.repeat(64)}`;
  const restore = overrideStable(`  kafka:\n    image: ${bad}\n`);
  const line = lineOf('manifests/streams/stable.yaml', bad);
  const r = cli(['pin']);
  restore();
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, `manifests/streams/stable.yaml:${line}:`);
  assert.match(r.stderr, 'pin-resolves');
});

test('--check: a pin that no longer resolves is refused at its line in the pin file', () => {
  const fsf = refs.find((r) => r.includes('/fsf:'))!;
  const good = readFileSync(pinsFile, 'utf8');
  const gone = `sha256:${'e'.repeat(64)}`;
  writeFileSync(
    pinsFile,
    good.replace(`"${fsf}": {\n      "digest": "${d1}"`, `"${fsf}": {\n      "digest": "${gone}"`),
  );
  assert.is.not(readFileSync(pinsFile, 'utf8'), good, 'the pin was replaced');
  const r = cli(['pin', '--check']);
  const broken = readFileSync(pinsFile, 'utf8');
  writeFileSync(pinsFile, good);
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, `${IMAGE_PINS_FILE}:${lineOf(IMAGE_PINS_FILE, `"${fsf}"`)}:`);
  assert.match(r.stderr, `@${gone} (the pin of ${fsf}) does not resolve in its registry`);
  assert.match(r.stderr, 'pin-resolves');
  assert.ok(broken.includes(gone), '--check wrote nothing');
});

test('a broken pin file: exit 65 at its line, before any registry access', () => {
  const good = readFileSync(pinsFile, 'utf8');
  writeFileSync(pinsFile, good.replace(/"digest": "sha256:[0-9a-f]{64}"/, '"digest": "sha256:abc"'));
  const r = cli(['pin', '--check']);
  writeFileSync(pinsFile, good);
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, `${IMAGE_PINS_FILE}:3:`);
  assert.match(r.stderr, 'image-lock-digest');
});

test.run();
