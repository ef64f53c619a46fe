// What stock coreos-installer does with what we publish (test/world/coreos-installer.ts: its rules
// from coreos/coreos-installer's source @bee45001), over HTTP against a signed publish (site
// server + the GitHub double serving the disks, test/world/installer-site.ts): the stream URL
// join with and without a trailing '/', the format by sector size, its refusal to decode an
// unsigned stream, and the path we document: download, `gpg --verify` with our key, then
// `install --image-file F --insecure` with our .sig kept away from F. A tampered disk is stopped
// by the gpg step. What needs coreos-installer's own source (the cited lines, its built-in keys)
// is in upstream-coreos-installer.test.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeStream, download, install, installFormat, streamUrl } from '../world/coreos-installer.ts';
import { type InstallerSite, openInstallerSite, refusal } from '../world/installer-site.ts';
import { get, gpgVerify } from '../world/published.ts';

let w: InstallerSite;
const siteUrl = () => w.siteUrl;
const base = () => w.base;

test.before(async () => {
  w = await openInstallerSite('coreos-installer');
});

test.after(async () => {
  await w?.close();
});

test('stream URL: --stream-base-url needs its trailing /; without it the stream is looked for a level up', async () => {
  assert.is(streamUrl('stable', `${siteUrl()}/streams/`), `${siteUrl()}/streams/stable.json`);
  assert.is(streamUrl('stable', `${siteUrl()}/streams`), `${siteUrl()}/stable.json`);
  assert.is(streamUrl('stable'), 'https://builds.coreos.fedoraproject.org/streams/stable.json');
  const e = await refusal(
    download({ streamBaseUrl: `${siteUrl()}/streams`, arch: 'x86_64', insecure: true }),
  );
  assert.match(e.message, `fetching '${siteUrl()}/stable.json': HTTP status 404`);
});

test('format by the disk: raw.xz on 512-byte sectors, 4k.raw.xz on 4096, raw.xz with a warning otherwise', () => {
  assert.equal(installFormat(512), { format: 'raw.xz' });
  assert.equal(installFormat(4096), { format: '4k.raw.xz' });
  assert.is(installFormat(520).format, 'raw.xz');
  assert.match(installFormat(520).warning!, 'non-standard sector size 520');
});

test('stock coreos-installer cannot decode an unsigned stream (no signature field)', async () => {
  const e = await refusal(
    download({ streamBaseUrl: base(), stream: 'testing', arch: 'x86_64', insecure: true }),
  );
  assert.is(e.message, 'decoding stream metadata: missing field `signature`');
  assert.equal(decodeStream('{"architectures":{}}'), {}, 'the same decode takes a stream without artifacts');
});

test('documented path: download, gpg --verify with our key, install --image-file F --insecure with our .sig kept apart', async () => {
  const stream = JSON.parse((await get(`${base()}stable.json`)).bytes.toString('utf8'));
  for (const [sector, format] of [
    [512, 'raw.xz'],
    [4096, '4k.raw.xz'],
  ] as const) {
    const disk = stream.architectures.x86_64.artifacts.metal.formats[format].disk;
    assert.match(disk.location, `${w.fake.url}/rocknsm/rocknsm-coreos/releases/download/v${w.version}/`);
    const name = disk.location.split('/').pop();
    const dir = join(w.work, `dl-${sector}`);
    mkdirSync(join(dir, 'sig'), { recursive: true });
    writeFileSync(join(dir, name), (await get(disk.location)).bytes);
    writeFileSync(join(dir, 'sig', `${name}.sig`), (await get(disk.signature)).bytes);
    const v = gpgVerify(w.key.publicKey, (await get(disk.signature)).bytes, (await get(disk.location)).bytes);
    assert.ok(v.good, v.output);
    // Verified out of band; the image has no .sig beside it, so --insecure only allows that.
    const ok = await install({
      sectorSize: sector,
      imageFile: join(dir, name),
      arch: 'x86_64',
      insecure: true,
    });
    assert.ok(ok.log.includes('Signature not found; skipping verification as requested'), ok.log.join('\n'));
    // Without --insecure it stops. (With our .sig beside the image it stops too, as the
    // signature is checked against coreos-installer's built-in keys: upstream-coreos-installer.test.ts.)
    assert.match(
      (await refusal(install({ sectorSize: sector, imageFile: join(dir, name), arch: 'x86_64' }))).message,
      'signature not found',
    );
  }
});

test('a tampered disk on the GitHub release: the gpg step refuses it', async () => {
  const asset = w.fake.releases[0]!.assets.find((a) => a.name.endsWith('-metal.x86_64.raw.xz'))!;
  const at = asset.data.length >> 1;
  asset.data[at] = asset.data[at]! ^ 1;
  try {
    const stream = JSON.parse((await get(`${base()}stable.json`)).bytes.toString('utf8'));
    const disk = stream.architectures.x86_64.artifacts.metal.formats['raw.xz'].disk;
    const v = gpgVerify(w.key.publicKey, (await get(disk.signature)).bytes, (await get(disk.location)).bytes);
    assert.not.ok(v.good);
    assert.match(v.output, 'BAD signature');
  } finally {
    asset.data[at] = asset.data[at]! ^ 1;
  }
});

test.run();
