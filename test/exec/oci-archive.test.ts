// Reading an OCI archive in place (pipeline/oci-archive.ts) against real skopeo reading the same
// archive: `skopeo inspect --raw` prints the manifest bytes and `skopeo inspect` its digest. On
// a buildah-written archive, on archives tar wrote (`./` names; ustar, PAX and GNU long names),
// by ref.name and without; and the refusals (several images and no name, an unknown name, a
// truncated archive, a missing file), which skopeo refuses too.
import { mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { archiveRawManifest, parseArchiveRef } from '../../pipeline/oci-archive.ts';
import { fcosBase, repoRoot } from '../world/fcos-base.ts';
import { tinyImage } from '../world/signed-release.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'test', `oci-archive-${process.pid}`);

/** What skopeo says of the reference: the raw manifest and the digest, or its error. */
function skopeo(ref: string): { raw: string; digest: string } | { error: string } {
  const raw = shResult('skopeo', ['inspect', '--raw', ref]);
  if (raw.code !== 0) return { error: raw.stderr };
  const info = JSON.parse(sh('skopeo', ['inspect', ref])) as { Digest: string };
  return { raw: raw.stdout, digest: info.Digest };
}

/** Ours for the same reference, or the error's message. */
function ours(ref: string): { raw: string; digest: string } | { error: string } {
  try {
    const { archive, image } = parseArchiveRef(ref);
    const { raw, digest } = archiveRawManifest(archive, image);
    return { raw, digest };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

test.before(() => {
  needTool('skopeo');
  needTool('tar');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('a buildah-written archive: the same bytes and digest as skopeo', () => {
  const ref = fcosBase('x86_64');
  const want = skopeo(ref);
  assert.ok('raw' in want, JSON.stringify(want));
  assert.equal(ours(ref), want);
});

test('archives tar wrote (./ names), ustar, PAX and GNU long names: as skopeo, by ref.name and without', () => {
  const img = tinyImage(work, 'x86_64', { osRelease: 'A=1\n' });
  const layout = join(work, 'images/x86_64/layout');
  // A member whose name does not fit ustar's 100 + 155 bytes, before index.json.
  const deep = join(layout, 'blobs', `${'d'.repeat(120)}`, `${'e'.repeat(150)}`);
  mkdirSync(join(deep, '..'), { recursive: true });
  writeFileSync(deep, 'x');
  for (const format of ['ustar', 'posix', 'gnu']) {
    const archive = join(work, `${format}.ociarchive`);
    const members = format === 'ustar' ? ['./index.json', './oci-layout', './blobs/sha256'] : ['.'];
    sh('tar', [`--format=${format}`, '-cf', archive, '-C', layout, ...members]);
    for (const ref of [`oci-archive:${archive}`, `oci-archive:${archive}:latest`]) {
      const want = skopeo(ref);
      assert.ok('raw' in want, `${ref}: ${JSON.stringify(want)}`);
      assert.equal(ours(ref), want, ref);
      assert.is((want as { digest: string }).digest, img.digest);
    }
  }
});

test('refused as skopeo refuses: two images and no name, an unknown name; the named one chosen', () => {
  const a = tinyImage(join(work, 'a'), 'x86_64', { osRelease: 'A=1\n' });
  const b = tinyImage(join(work, 'b'), 'x86_64', { osRelease: 'B=1\n' });
  const layout = join(work, 'two');
  mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
  for (const dir of [join(work, 'a/images/x86_64/layout'), join(work, 'b/images/x86_64/layout')])
    sh('cp', ['-a', `${dir}/blobs/sha256/.`, join(layout, 'blobs/sha256')]);
  const entry = (img: { digest: string; archive: string }, name: string) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: img.digest,
    size: statSync(join(layout, 'blobs/sha256', img.digest.slice(7))).size,
    annotations: { 'org.opencontainers.image.ref.name': name },
  });
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [entry(a, 'one'), entry(b, 'two')] }),
  );
  const archive = join(work, 'two.ociarchive');
  sh('tar', ['-cf', archive, '-C', layout, '.']);
  for (const [ref, digest] of [
    [`oci-archive:${archive}:one`, a.digest],
    [`oci-archive:${archive}:two`, b.digest],
  ] as const) {
    assert.equal(ours(ref), skopeo(ref), ref);
    assert.is((ours(ref) as { digest: string }).digest, digest);
  }
  const none = `oci-archive:${archive}`;
  assert.ok('error' in skopeo(none), 'skopeo refuses it too');
  assert.equal(ours(none), {
    error: `${archive} holds 2 images: name one (oci-archive:${archive}:<ref.name>)`,
  });
  const unknown = `oci-archive:${archive}:three`;
  assert.ok('error' in skopeo(unknown), 'skopeo refuses it too');
  assert.equal(ours(unknown), {
    error: `${archive}: no image named 'three' (index.json ref.name annotations)`,
  });
});

test('refused: a truncated archive, a missing file, a blob whose bytes are not its digest', () => {
  const img = tinyImage(join(work, 'c'), 'x86_64', { osRelease: 'C=1\n' });
  const cut = join(work, 'cut.ociarchive');
  writeFileSync(cut, readFileSync(img.archive));
  truncateSync(cut, 1536);
  assert.ok('error' in skopeo(`oci-archive:${cut}`), 'skopeo refuses it too');
  assert.match((ours(`oci-archive:${cut}`) as { error: string }).error, `${cut}: the tar archive ends early`);
  const missing = join(work, 'missing.ociarchive');
  assert.match((ours(`oci-archive:${missing}`) as { error: string }).error, `oci-archive ${missing}: ENOENT`);
  // The manifest blob changed in place, same size: named, not returned.
  const layout = join(work, 'c/images/x86_64/layout');
  const blob = join(layout, 'blobs/sha256', img.digest.slice(7));
  const text = readFileSync(blob, 'utf8');
  writeFileSync(blob, text.replace('"schemaVersion":2', '"schemaVersion":3'));
  const bad = join(work, 'bad.ociarchive');
  sh('tar', ['-cf', bad, '-C', layout, '.']);
  assert.equal(ours(`oci-archive:${bad}`), { error: `${bad}: blob ${img.digest} does not match its digest` });
});

test.run();
