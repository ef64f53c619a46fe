// Every URL a published stream's metadata names resolves to what the metadata says it is. A
// signed publish with a GitHub release (the GitHub double, which serves release downloads as
// GitHub does, by a redirect) and a site served over HTTP: the disk images are named at the
// release's download URL and removed from the site (as the gh-pages branch cannot hold them),
// and a walk of streams/S.json, releases.json and each release.json fetches every URL and checks
// sha256, uncompressed-sha256 (xz -dc) and each signature with gpg against our key. An unsigned
// publish to a stream with publish.artifact-url (an object store, served over HTTP) names no
// signature at all. The walk itself is shown to fail on a tampered file, a foreign signature
// and a file the site does not serve.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PipelineError } from '../../pipeline/errors.ts';
import { createGitHub } from '../../pipeline/exec/github.ts';
import { signFile } from '../../pipeline/exec/gpg.ts';
import { checkServed } from '../../pipeline/publish/github.ts';
import {
  type ArtifactHost,
  buildDir,
  githubDownloadBase,
  planSite,
  type SitePlan,
} from '../../pipeline/publish/site.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { type FakeGitHub, startFakeGitHub } from '../world/github.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { publishXz, walkMetadata, xzBuild } from '../world/published.ts';

const work = join(repoRoot, '.cache', 'publish', `locations-${process.pid}`);
const NOW = Date.UTC(2026, 10, 30, 12);
const V1 = '43.20261130.3.0';
const V2 = '43.20261130.2.0';
const V3 = '43.20261130.3.1';
const REPO = 'rocknsm/rocknsm-coreos';
let key: TestKey;
let other: TestKey;
let fake: FakeGitHub;
let site: StaticServer;
let store: StaticServer;
const siteDir = join(work, 'site');
const storeDir = join(work, 'store');
const siteUrl = () => `http://127.0.0.1:${site.port}`;

const publish = (
  stream: string,
  version: string,
  o: { signed: boolean; host?: ArtifactHost; github: boolean },
): Promise<SitePlan> =>
  publishXz({
    work,
    siteDir,
    siteUrl: siteUrl(),
    stream,
    version,
    now: NOW,
    host: o.host,
    ...(o.signed && { key }),
    ...(o.github && { github: fake }),
  });

test.before(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(siteDir, { recursive: true });
  mkdirSync(storeDir, { recursive: true });
  key = makeKey(join(work, 'key'), 'rock-locations');
  other = makeKey(join(work, 'other'), 'rock-other');
  fake = await startFakeGitHub();
  site = await serveDir(siteDir);
  store = await serveDir(storeDir);
});

test.after(async () => {
  await site?.close();
  await store?.close();
  await fake?.close();
  for (const k of [key, other]) if (k) stopAgent(k);
  rmSync(work, { recursive: true, force: true });
});

test('signed publish with a GitHub release: disks at its download URL, the rest on the site; every URL resolves to its sha256 and a good signature', async () => {
  const plan = await publish('stable', V1, {
    signed: true,
    github: true,
    host: { kind: 'github', downloadBase: githubDownloadBase(fake.url, REPO, `v${V1}`) },
  });
  // What the gh-pages branch would not hold: the disk images leave the site.
  const disks = plan.files.filter((f) => f.served === 'github');
  assert.equal(
    [...new Set(disks.map((f) => f.key))].sort(),
    ['live-iso', 'metal', 'metal4k', 'qemu'],
    'the disk images are the files named at the release',
  );
  for (const f of disks) {
    assert.is(f.location, `${fake.url}/${REPO}/releases/download/v${V1}/${f.name}`);
    rmSync(join(siteDir, f.dest));
    rmSync(join(siteDir, `${f.dest}.sig`));
  }
  const kernel = plan.files.find((f) => f.key === 'live-kernel' && f.arch === 'x86_64')!;
  assert.is(kernel.location, `${siteUrl()}/${kernel.dest}`);

  const walk = await walkMetadata(siteUrl(), 'stable', key.publicKey);
  assert.equal(walk.problems, []);
  // 7 stream artifacts per arch (metal raw.xz, 4k.raw.xz, iso, pxe x3, qemu), in streams/S.json
  // and again in release.json, each with its signature.
  assert.is(walk.artifacts, 28);
  assert.is(walk.signatures, 28);
  const named = walk.urls.map((u) => u.url);
  assert.ok(
    named.some((u) => u.endsWith(`/prod/streams/stable/builds/${V1}/release.json`)),
    'releases.json names release.json',
  );
  assert.ok(named.filter((u) => u.startsWith(`${fake.url}/`)).length >= 32, 'disks and their .sig at GitHub');
  assert.ok(
    fake.requests.some((r) => r.op === 'download' && r.status === 302),
    'downloads went through GitHub',
  );
  assert.equal(fake.violations, []);
});

test('the walk refuses a tampered download, a foreign signature and a file not served', async () => {
  const asset = fake.releases[0]!.assets.find((a) => a.name.endsWith('-metal.x86_64.raw.xz'))!;
  const flip = () => {
    const at = asset.data.length >> 1;
    asset.data[at] = asset.data[at]! ^ 0xff;
  };
  flip();
  let walk = await walkMetadata(siteUrl(), 'stable', key.publicKey);
  assert.ok(
    walk.problems.some((p) => p.includes(asset.name) && p.includes('has sha256')),
    walk.problems.join('\n'),
  );
  assert.ok(
    walk.problems.some((p) => p.includes(asset.name) && p.includes('not a good signature')),
    'the .sig no longer matches',
  );
  flip();

  const dir = join(siteDir, buildDir('stable', V1), 'x86_64');
  const kernel = `rocknsm-coreos-${V1}-live-kernel.x86_64`;
  const sig = readFileSync(join(dir, `${kernel}.sig`));
  writeFileSync(join(work, 'kernel'), readFileSync(join(dir, kernel)));
  await signFile(join(work, 'kernel'), other.fingerprint, other.home);
  writeFileSync(join(dir, `${kernel}.sig`), readFileSync(join(work, 'kernel.sig')));
  walk = await walkMetadata(siteUrl(), 'stable', key.publicKey);
  assert.equal(walk.problems, [
    `streams/stable.json /architectures/x86_64/artifacts/metal/formats/pxe/kernel: ${siteUrl()}/${buildDir('stable', V1)}/x86_64/${kernel}.sig is not a good signature of ${siteUrl()}/${buildDir('stable', V1)}/x86_64/${kernel} by our key`,
    `prod/streams/stable/builds/${V1}/release.json /architectures/x86_64/media/metal/artifacts/pxe/kernel: ${siteUrl()}/${buildDir('stable', V1)}/x86_64/${kernel}.sig is not a good signature of ${siteUrl()}/${buildDir('stable', V1)}/x86_64/${kernel} by our key`,
  ]);
  writeFileSync(join(dir, `${kernel}.sig`), sig);

  rmSync(join(dir, kernel));
  walk = await walkMetadata(siteUrl(), 'stable', key.publicKey);
  assert.ok(
    walk.problems.some((p) => p.endsWith(`${kernel} answers 404`)),
    walk.problems.join('\n'),
  );
  cpSync(join(work, 'kernel'), join(dir, kernel));
  assert.equal((await walkMetadata(siteUrl(), 'stable', key.publicKey)).problems, []);
});

test('GitHub serving the disks elsewhere than the plan names them: refused, no document written', async () => {
  const before = readFileSync(join(siteDir, 'streams/stable.json'), 'utf8');
  const err = await publish('stable', V3, {
    signed: true,
    github: true,
    host: { kind: 'github', downloadBase: githubDownloadBase('https://github.com', REPO, `v${V3}`) },
  }).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.ok(err instanceof PipelineError, String(err));
  assert.match(err!.message, `at ${fake.url}/${REPO}/releases/download/v${V3}/`);
  assert.match(err!.message, 'metadata not written');
  assert.is(readFileSync(join(siteDir, 'streams/stable.json'), 'utf8'), before);
  assert.not.ok(existsSync(join(siteDir, buildDir('stable', V3), 'release.json')));
});

test('promote: the published release must serve each disk at its location, signature included', async () => {
  const gh = createGitHub({
    token: fake.token,
    repo: REPO,
    baseUrl: fake.url,
    writeIntervalMs: 0,
    retryBaseMs: 10,
  });
  const plan = planSite({
    stream: 'testing',
    version: V1,
    requireArches: ['x86_64', 'aarch64'],
    builds: (['x86_64', 'aarch64'] as const).map((a) => xzBuild(join(work, 'out'), V1, a)),
    baseUrl: siteUrl(),
    imageRepo: `ghcr.io/${REPO}`,
    existing: { files: {} },
    now: NOW,
    signed: true,
    artifactHost: { kind: 'github', downloadBase: githubDownloadBase(fake.url, REPO, `v${V1}`) },
  });
  const served = plan.files.filter((f) => f.served === 'github');
  await checkServed(gh, `v${V1}`, served, true);
  const refused = async (files: typeof served, tag: string, words: string) => {
    const e = await checkServed(gh, tag, files, true).then(
      () => undefined,
      (x: Error) => x,
    );
    assert.ok(e instanceof PipelineError, `${words}: ${e}`);
    assert.match(e!.message, words);
  };
  await refused(served, 'v0.0.0', 'no published GitHub release v0.0.0');
  await refused([{ ...served[0]!, sha256: '0'.repeat(64) }], `v${V1}`, `${served[0]!.name}: other bytes`);
  await refused([{ ...served[0]!, name: 'nothing.raw.xz' }], `v${V1}`, 'nothing.raw.xz: not an asset');
});

test('unsigned publish to an object store (publish.artifact-url): no signature named, every URL resolves', async () => {
  const plan = await publish('testing', V2, {
    signed: false,
    github: false,
    host: { kind: 'object-store', baseUrl: `http://127.0.0.1:${store.port}/rock/` },
  });
  // The operator uploads the site's prod/ tree to the store; the disks then leave the site.
  mkdirSync(join(storeDir, 'rock'), { recursive: true });
  cpSync(join(siteDir, 'prod'), join(storeDir, 'rock/prod'), { recursive: true });
  for (const f of plan.files.filter((x) => x.served === 'object-store')) {
    assert.is(f.location, `http://127.0.0.1:${store.port}/rock/${f.dest}`);
    rmSync(join(siteDir, f.dest));
    assert.not.ok(existsSync(join(storeDir, 'rock', `${f.dest}.sig`)), 'nothing signed');
  }
  const walk = await walkMetadata(siteUrl(), 'testing', key.publicKey);
  assert.equal(walk.problems, []);
  assert.is(walk.artifacts, 28);
  assert.is(walk.signatures, 0);
  for (const d of plan.documents) assert.not.match(JSON.stringify(d.json), '"signature"', d.path);
});

test.run();
