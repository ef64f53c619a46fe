// pipeline/exec/buildah.ts with real buildah: a base pulled through the blob cache keeps its own
// compressed layers in the archive the build writes (BlobCache). The base's layers are gzipped
// at level 1, so a push that compressed them again (default level) would give other blobs.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Buildah } from '../../pipeline/exec/buildah.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { storageFromDir } from '../../pipeline/exec/storage.ts';
import { createLogger } from '../../pipeline/log.ts';
import { tinyImage } from '../world/signed-release.ts';
import { needTool, sh } from '../world/tools.ts';

const run = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
const dir = mkdtempSync(join(tmpdir(), 'rock-buildah-'));
const cache = join(dir, 'blobs');

interface Manifest {
  layers: { digest: string; mediaType: string }[];
  config: { digest: string };
}
const manifestOf = (ref: string): Manifest => JSON.parse(sh('skopeo', ['inspect', '--raw', ref]));

test.before(() => {
  needTool('buildah');
  needTool('skopeo');
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('an archive pushed through the blob cache carries the base layers as pulled, same digest each time', async () => {
  // A two-layer base, gzipped at level 1.
  const plain = tinyImage(dir, 'x86_64', { baseBytes: 1 << 20 });
  const base = join(dir, 'base.ociarchive');
  sh('skopeo', [
    'copy',
    '--quiet',
    '--dest-compress-level',
    '1',
    `oci-archive:${plain.archive}`,
    `oci-archive:${base}`,
  ]);
  const baseLayers = manifestOf(`oci-archive:${base}`).layers.map((l) => l.digest);
  assert.is(baseLayers.length, 2);

  const buildah = new Buildah(run, storageFromDir(join(dir, 'st')));
  const id = await buildah.pull(`oci-archive:${base}`, 'amd64', undefined, cache);
  await buildah.tag(id, 'localhost/blob-base:1');
  // Pruned: the notes and the compressed blobs stay, no decompressed copy of a layer.
  const files = readdirSync(cache);
  for (const d of baseLayers) assert.ok(files.includes(d), `${d} in ${files.join(' ')}`);
  const notes = files.filter((f) => f.endsWith('.compressed'));
  assert.is(notes.length, 2, files.join(' '));
  for (const n of notes) assert.not.ok(existsSync(join(cache, n.slice(0, -'.compressed'.length))), n);

  const context = join(dir, 'context');
  mkdirSync(context, { recursive: true });
  writeFileSync(join(context, 'motd'), 'hello\n');
  writeFileSync(join(context, 'Containerfile'), 'FROM localhost/blob-base:1\nCOPY motd /etc/motd\n');
  const build = {
    containerfile: join(context, 'Containerfile'),
    context,
    platform: 'linux/amd64',
    tag: 'localhost/blob-top:1',
    timestamp: 1763769600,
  };
  await buildah.build(build);
  const push = (name: string, blobCache?: string) =>
    buildah.pushArchive({
      image: build.tag,
      path: join(dir, `${name}.ociarchive`),
      refName: 'v1',
      digestFile: join(dir, `${name}.digest`),
      blobCache,
    });

  const first = await push('first', cache);
  const layers = manifestOf(`oci-archive:${join(dir, 'first.ociarchive')}:v1`).layers;
  assert.is(layers.length, 3);
  assert.equal(
    layers.slice(0, 2).map((l) => l.digest),
    baseLayers,
  );
  for (const l of layers) assert.is(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.is(await push('again', cache), first);

  // Without the cache every layer is compressed again: other base blobs, the same image layer.
  assert.is.not(await push('plain'), first);
  const again = manifestOf(`oci-archive:${join(dir, 'plain.ociarchive')}:v1`).layers.map((l) => l.digest);
  for (const d of baseLayers) assert.not.ok(again.includes(d), d);
  assert.is(again[2], layers[2]!.digest);
});

test.run();
