// What stock coreos-installer does with what we publish (test/world/coreos-installer.ts: its rules
// from coreos/coreos-installer's source @bee45001, with real gpg and its built-in keys), over
// HTTP against a signed publish (site server + the GitHub double serving the disks): the stream
// URL join with and without a trailing '/', the format by sector size, its refusal of our
// signatures with and without --insecure, its refusal to decode an unsigned stream, and the path
// we document: download, `gpg --verify` with our key, then `install --image-file F --insecure`
// with our .sig kept away from F. A tampered disk is stopped by the gpg step. The cited lines
// are checked against the source first, so a citation that drifts fails here.
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubDownloadBase } from '../../pipeline/publish/site.ts';
import {
  decodeStream,
  download,
  InstallerError,
  install,
  installFormat,
  streamUrl,
  upstreamFile,
} from '../world/coreos-installer.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { type FakeGitHub, startFakeGitHub } from '../world/github.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { get, gpgVerify, publishXz } from '../world/published.ts';

const work = join(repoRoot, '.cache', 'publish', `coreos-installer-${process.pid}`);
const siteDir = join(work, 'site');
const V = '43.20261201.3.0';
const VU = '43.20261201.2.0';
let key: TestKey;
let fake: FakeGitHub;
let site: StaticServer;
const siteUrl = () => `http://127.0.0.1:${site.port}`;
const base = () => `${siteUrl()}/streams/`;

const refusal = async (p: Promise<unknown>): Promise<InstallerError> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof InstallerError) return e;
    throw e;
  }
  throw new Error('coreos-installer would have gone on');
};

test.before(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(siteDir, { recursive: true });
  key = makeKey(join(work, 'key'), 'rock-installer');
  fake = await startFakeGitHub();
  site = await serveDir(siteDir);
  await publishXz({
    work,
    siteDir,
    siteUrl: siteUrl(),
    stream: 'stable',
    version: V,
    key,
    github: fake,
    host: { kind: 'github', downloadBase: githubDownloadBase(fake.url, 'rocknsm/rocknsm-coreos', `v${V}`) },
    now: Date.UTC(2026, 11, 1, 12),
  });
  await publishXz({
    work,
    siteDir,
    siteUrl: siteUrl(),
    stream: 'testing',
    version: VU,
    now: Date.UTC(2026, 11, 1, 12),
  });
});

test.after(async () => {
  await site?.close();
  await fake?.close();
  if (key) stopAgent(key);
  rmSync(work, { recursive: true, force: true });
});

test('the cited coreos-installer lines say what the client does', () => {
  const line = (path: string, n: number) => upstreamFile(path).toString('utf8').split('\n')[n - 1]!.trim();
  assert.is(
    line('src/source.rs', 34),
    'const DEFAULT_STREAM_BASE_URL: &str = "https://builds.coreos.fedoraproject.org/streams/";',
  );
  assert.is(line('src/source.rs', 438), '.join(&format!("{stream}.json"))');
  assert.is(line('src/source.rs', 529), 'location: String,');
  assert.is(line('src/source.rs', 530), 'signature: String,');
  assert.is(line('src/source.rs', 97), 'sig_path: format!("{path}.sig"),');
  assert.is(line('src/source.rs', 198), '.map_err(|e| eprintln!("Failed to fetch signature: {e}"))');
  assert.is(line('src/install.rs', 166), '4096 => "4k.raw.xz",');
  assert.is(line('src/install.rs', 167), '512 => "raw.xz",');
  assert.is(line('src/install.rs', 180), '"metal",');
  assert.is(line('src/install.rs', 199), 'bail!("--insecure not specified and signature not found");');
  assert.is(line('src/download.rs', 61), 'bail!("--insecure not specified and signature not found");');
  assert.is(line('src/download.rs', 302), 'verify_reader.verify()?;');
  assert.is(
    line('src/io/verify.rs', 113),
    'VerifyKeys::Production => &include_bytes!("../signing-keys.asc")[..],',
  );
  assert.is(
    line('src/cmdline/install.rs', 224),
    '/// Allow the signature to be absent.  Does not allow an existing',
  );
  assert.is(line('src/cmdline/install.rs', 225), '/// signature to be invalid.');
  assert.is(
    line('src/cmdline/mod.rs', 220),
    '#[arg(short, long, value_name = "name", default_value = "raw.xz")]',
  );
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

test('stock coreos-installer refuses our signed stream, with or without --insecure: our key is not built in', async () => {
  for (const insecure of [false, true]) {
    for (const sectorSize of [512, 4096]) {
      const e = await refusal(
        install({ sectorSize, stream: 'stable', streamBaseUrl: base(), arch: 'x86_64', insecure }),
      );
      assert.match(e.message, 'gpg signature verification failed');
      assert.match(e.message, /No public key|public key not found/);
    }
    const e = await refusal(
      download({ streamBaseUrl: base(), arch: 'aarch64', format: 'qcow2.xz', platform: 'qemu', insecure }),
    );
    assert.match(e.message, 'gpg signature verification failed');
  }
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
    assert.match(disk.location, `${fake.url}/rocknsm/rocknsm-coreos/releases/download/v${V}/`);
    const name = disk.location.split('/').pop();
    const dir = join(work, `dl-${sector}`);
    mkdirSync(join(dir, 'sig'), { recursive: true });
    writeFileSync(join(dir, name), (await get(disk.location)).bytes);
    writeFileSync(join(dir, 'sig', `${name}.sig`), (await get(disk.signature)).bytes);
    const v = gpgVerify(key.publicKey, (await get(disk.signature)).bytes, (await get(disk.location)).bytes);
    assert.ok(v.good, v.output);
    // Verified out of band; the image has no .sig beside it, so --insecure only allows that.
    const ok = await install({
      sectorSize: sector,
      imageFile: join(dir, name),
      arch: 'x86_64',
      insecure: true,
    });
    assert.ok(ok.log.includes('Signature not found; skipping verification as requested'), ok.log.join('\n'));
    // Without --insecure it stops; with our .sig beside the image it stops too (invalid, not missing).
    assert.match(
      (await refusal(install({ sectorSize: sector, imageFile: join(dir, name), arch: 'x86_64' }))).message,
      'signature not found',
    );
    copyFileSync(join(dir, 'sig', `${name}.sig`), join(dir, `${name}.sig`));
    const e = await refusal(
      install({ sectorSize: sector, imageFile: join(dir, name), arch: 'x86_64', insecure: true }),
    );
    assert.match(e.message, 'gpg signature verification failed');
  }
});

test('a tampered disk on the GitHub release: the gpg step refuses it', async () => {
  const asset = fake.releases[0]!.assets.find((a) => a.name.endsWith('-metal.x86_64.raw.xz'))!;
  const at = asset.data.length >> 1;
  asset.data[at] = asset.data[at]! ^ 1;
  try {
    const stream = JSON.parse((await get(`${base()}stable.json`)).bytes.toString('utf8'));
    const disk = stream.architectures.x86_64.artifacts.metal.formats['raw.xz'].disk;
    const v = gpgVerify(key.publicKey, (await get(disk.signature)).bytes, (await get(disk.location)).bytes);
    assert.not.ok(v.good);
    assert.match(v.output, 'BAD signature');
  } finally {
    asset.data[at] = asset.data[at]! ^ 1;
  }
});

test.run();
