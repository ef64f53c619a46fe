// GitHub releases against the local fake (test/world/github.ts), every exchange checked against
// GitHub's OpenAPI description; a replay of exchanges recorded against the real GitHub by
// @octokit/fixtures; faults: a 502 mid-upload leaving a broken asset, a secondary rate limit,
// the process killed mid-release; each followed by a run that converges.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer, globalAgent as httpsAgent } from 'node:https';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PipelineError } from '../../pipeline/errors.ts';
import { createGitHub, FileBody, type GitHub, streamingFetch } from '../../pipeline/exec/github.ts';
import { assetLabel, syncRelease, uploadOne, type WantedAsset } from '../../pipeline/publish/github.ts';
import { repoRoot } from '../world/fcos-base.ts';
import {
  checkRequest,
  checkResponse,
  type FakeGitHub,
  matchOperation,
  openapi,
  startFakeGitHub,
} from '../world/github.ts';
import { needTool, sh } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `github-${process.pid}`);
let fake: FakeGitHub;
let assets: WantedAsset[];
const warnings: string[] = [];

const client = (f: FakeGitHub = fake): GitHub =>
  createGitHub({
    token: f.token,
    repo: `${f.owner}/${f.repo}`,
    baseUrl: f.url,
    retryBaseMs: 10,
    writeIntervalMs: 0,
    warn: (m) => warnings.push(m),
  });

function file(name: string, bytes: Buffer): WantedAsset {
  const path = join(work, name);
  writeFileSync(path, bytes);
  return { name, path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

const spec = (tag = 'v41.20261122.3.0') => ({ tag, name: `RockNSM ${tag}`, body: 'test', assets });

const assetsOf = (f: FakeGitHub, tag: string) =>
  f.releases
    .filter((r) => r.tag_name === tag)
    .flatMap((r) => r.assets.map((a) => `${a.name}:${a.state}:${a.data.length}`))
    .sort();

test.before.each(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  fake = await startFakeGitHub();
  warnings.length = 0;
  assets = [
    file('rocknsm-coreos-41.20261122.3.0-metal.x86_64.raw.xz', Buffer.alloc(300_000, 7)),
    file('rocknsm-coreos-41.20261122.3.0-metal.x86_64.raw.xz.sig', Buffer.from('sig-1')),
    file('SHA256SUMS', Buffer.from('abc  x\n')),
  ];
});

test.after.each(async () => {
  assert.equal(fake.violations, [], 'every exchange matches the OpenAPI description');
  await fake.close();
});

test.after(() => rmSync(work, { recursive: true, force: true }));

test('openapi excerpt: names its source and holds the operations used', () => {
  assert.match(openapi.source.package!, '@octokit/openapi@');
  assert.match(openapi.source.upstream!, 'github/rest-api-description');
  for (const op of [
    'repos/list-releases',
    'repos/get-release-by-tag',
    'repos/create-release',
    'repos/update-release',
    'repos/list-release-assets',
    'repos/upload-release-asset',
    'repos/delete-release-asset',
  ])
    assert.ok(openapi.operations[op], op);
  // The checker itself catches a wrong request and a wrong response.
  const create = matchOperation('POST', '/repos/o/r/releases')!;
  assert.is(create.id, 'repos/create-release');
  assert.ok(
    checkRequest(
      create.op,
      create.params,
      new URLSearchParams(),
      'application/json',
      Buffer.from('{"name":"x"}'),
    ).some((p) => p.includes('tag_name')),
  );
  assert.ok(checkResponse(create.op, 201, { id: 'not-a-number' }).length > 0);
  assert.ok(checkResponse(create.op, 418, undefined).length > 0);
});

test('release: draft, every asset uploaded with its sha256 label, published last', async () => {
  const gh = client();
  const r = await syncRelease(gh, spec(), { publish: true });
  assert.is(r.published, 'published');
  assert.equal(Object.values(r.assets), ['uploaded', 'uploaded', 'uploaded']);
  const rel = fake.releases[0]!;
  assert.is(rel.draft, false);
  assert.equal(
    rel.assets.map((a) => [a.name, a.label, a.state]),
    assets.map((a) => [a.name, assetLabel(a.sha256), 'uploaded']),
  );
  // Order: created as a draft, uploads, and the switch to published is the last write.
  const writes = fake.requests.filter((q) => q.method !== 'GET').map((q) => q.op);
  assert.is(writes[0], 'repos/create-release');
  assert.is(writes.at(-1), 'repos/update-release');
  assert.is(writes.filter((w) => w === 'repos/upload-release-asset').length, 3);
  // Re-run: nothing uploaded again, nothing duplicated.
  const before = fake.requests.length;
  const again = await syncRelease(gh, spec(), { publish: true });
  assert.is(again.published, 'already-published');
  assert.ok(fake.requests.slice(before).every((q) => q.method === 'GET'));
  assert.is(fake.releases.length, 1);
});

test('release: an existing draft is reused; a changed asset is replaced, a stray one removed', async () => {
  const gh = client();
  await syncRelease(gh, spec(), { publish: false });
  assets[0] = file(assets[0]!.name, Buffer.alloc(300_000, 9));
  const extra = [...assets, file('old-file', Buffer.from('x'))];
  await syncRelease(gh, { ...spec(), assets: extra }, { publish: false });
  const r = await syncRelease(gh, spec(), { publish: true });
  assert.is(fake.releases.length, 1, 'one release, no duplicate draft');
  assert.is(r.assets[assets[0]!.name], 'kept');
  assert.equal(fake.releases[0]!.assets.map((a) => a.name).sort(), assets.map((a) => a.name).sort());
  assert.ok(
    fake.releases[0]!.assets.find((a) => a.name === assets[0]!.name)!.data.equals(Buffer.alloc(300_000, 9)),
  );
});

test('fault: 502 mid-upload leaves a broken asset; the same run deletes it and uploads again', async () => {
  fake.faults.push({ op: 'repos/upload-release-asset', kind: '502-mid-upload' });
  const r = await syncRelease(client(), spec(), { publish: true });
  assert.is(r.published, 'published');
  assert.equal(assetsOf(fake, spec().tag), assets.map((a) => `${a.name}:uploaded:${a.size}`).sort());
  assert.ok(fake.requests.some((q) => q.status === 502));
  assert.ok(fake.requests.some((q) => q.op === 'repos/delete-release-asset'));
});

test('fault: a broken asset left by a dead run is replaced by the next run', async () => {
  // The first run dies after the 502 (no retries): the draft holds a half asset.
  fake.faults.push({ op: 'repos/upload-release-asset', kind: '502-mid-upload' });
  const noRetry = createGitHub({
    token: fake.token,
    repo: 'rocknsm/rocknsm-coreos',
    baseUrl: fake.url,
    retries: 0,
    writeIntervalMs: 0,
  });
  await syncRelease(noRetry, spec(), { publish: true }).then(
    () => assert.unreachable('the 502 must fail a run without retries'),
    (e) => assert.instance(e, PipelineError),
  );
  assert.equal(assetsOf(fake, spec().tag), [`${assets[0]!.name}:open:${assets[0]!.size / 2}`]);
  assert.is(fake.releases[0]!.draft, true, 'nothing was published');
  const r = await syncRelease(client(), spec(), { publish: true });
  assert.is(r.assets[assets[0]!.name], 'replaced');
  assert.equal(assetsOf(fake, spec().tag), assets.map((a) => `${a.name}:uploaded:${a.size}`).sort());
  assert.is(fake.releases.length, 1);
});

test('fault: secondary rate limit (403 + retry-after) is waited out by the throttling plugin', async () => {
  fake.faults.push({ op: 'repos/create-release', kind: 'secondary-rate-limit', retryAfter: 1 });
  fake.faults.push({ op: 'repos/upload-release-asset', kind: 'secondary-rate-limit', retryAfter: 2 });
  const r = await syncRelease(client(), spec(), { publish: true });
  assert.is(r.published, 'published');
  assert.is(fake.requests.filter((q) => q.status === 403).length, 2);
  assert.is(fake.releases.length, 1);
  assert.is(warnings.filter((w) => w.includes('secondary rate limit')).length, 2);
  assert.equal(assetsOf(fake, spec().tag), assets.map((a) => `${a.name}:uploaded:${a.size}`).sort());
});

test('upload: a file that no longer hashes as planned is not left on GitHub, and the run fails naming it', async () => {
  // Same size, other bytes: the file changed after publish hashed it (the plan's sha256).
  const planned = assets[0]!;
  writeFileSync(planned.path, Buffer.alloc(planned.size, 8));
  const err = await syncRelease(client(), spec(), { publish: true }).catch((e) => e);
  assert.instance(err, PipelineError);
  assert.match(String(err.message), `${planned.path} changed while it was uploaded`);
  assert.match(String(err.message), `expected ${planned.size} bytes with sha256 ${planned.sha256}`);
  assert.is(fake.releases[0]!.draft, true, 'nothing was published');
  assert.not.ok(assetsOf(fake, spec().tag).some((a) => a.startsWith(`${planned.name}:`)));
});

test('upload: streamed from the file, so memory does not grow with the asset (512 MiB asset, own process)', async () => {
  const size = 512 << 20;
  const path = join(work, 'big.raw.xz');
  // Sparse: zeros, read fast; the sha256 is of that many zero bytes.
  writeFileSync(path, '');
  truncateSync(path, size);
  const h = createHash('sha256');
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < size >> 20; i++) h.update(zeros);
  const sha256 = h.digest('hex');
  // Not spawnSync: the fake answers from this process's event loop.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'test/publish/upload-child.ts'),
      fake.url,
      fake.token,
      `${fake.owner}/${fake.repo}`,
      path,
      String(size),
      sha256,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const status = await new Promise<number | null>((r) => child.on('close', r));
  assert.is(status, 0, stderr);
  const out = JSON.parse(stdout) as { assets: Record<string, string>; peakKiB: number };
  assert.equal(out.assets, { 'big.raw.xz': 'uploaded' });
  const got = fake.releases[0]!.assets.find((a) => a.name === 'big.raw.xz')!;
  assert.is(got.data.length, size);
  assert.is(createHash('sha256').update(got.data).digest('hex'), sha256);
  // Buffering the asset would put the peak above 512 MiB; node itself takes about 100 MiB.
  assert.ok(out.peakKiB < 256 * 1024, `peak ${out.peakKiB} KiB`);
});

test('upload over HTTPS (uploads.github.com is HTTPS): the file body, its Content-Length, and the answer come through', async () => {
  // A self-signed certificate for 127.0.0.1, trusted by the global agent streamingFetch uses.
  const key = join(work, 'tls.key');
  const cert = join(work, 'tls.crt');
  needTool('openssl');
  sh('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  const bytes = Buffer.alloc((3 << 20) + 5, 3);
  const path = join(work, 'tls-asset');
  writeFileSync(path, bytes);
  let got: { length?: string; te?: string; sha256: string } | undefined;
  const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, async (req, res) => {
    const h = createHash('sha256');
    for await (const c of req) h.update(c as Buffer);
    got = {
      length: req.headers['content-length'],
      te: req.headers['transfer-encoding'],
      sha256: h.digest('hex'),
    };
    res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":7}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const ca = httpsAgent.options.ca;
  httpsAgent.options.ca = readFileSync(cert);
  try {
    const body = new FileBody(path, bytes.length);
    const res = await streamingFetch(
      `https://127.0.0.1:${(server.address() as { port: number }).port}/upload`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
        body: body as unknown as BodyInit,
      },
    );
    assert.is(res.status, 201);
    assert.equal(await res.json(), { id: 7 });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    assert.equal(got, { length: String(bytes.length), te: undefined, sha256 });
    assert.equal(body.sent, { bytes: bytes.length, sha256 });
  } finally {
    httpsAgent.options.ca = ca;
    server.close();
  }
});

test('limits: an asset of 2 GiB is refused before any request', async () => {
  const big = { name: 'huge.raw', path: '/nonexistent', size: 2 * 1024 ** 3, sha256: '0'.repeat(64) };
  await syncRelease(client(), { ...spec(), assets: [...assets, big] }, { publish: true }).then(
    () => assert.unreachable(),
    (e) => {
      assert.match(String(e.message), 'huge.raw');
      assert.match(String(e.message), '2 GiB');
    },
  );
  assert.is(fake.requests.length, 0);
});

test('token: wrong token is refused by the fake; the token never appears in errors', async () => {
  const gh = createGitHub({
    token: 'ghp_wrong_secret_value',
    repo: 'rocknsm/rocknsm-coreos',
    baseUrl: fake.url,
    writeIntervalMs: 0,
  });
  const err = await syncRelease(gh, spec(), { publish: true }).catch((e) => e);
  assert.match(String(err.message), '401');
  assert.not.match(String(err.message), 'ghp_wrong_secret_value');
  assert.not.match(JSON.stringify(err), 'ghp_wrong_secret_value');
});

// The exchanges of @octokit/fixtures' "release-assets-conflict" scenario, recorded against the real
// api.github.com / uploads.github.com: an upload meets an existing asset (422 already_exists), the
// asset is listed and deleted, and the upload succeeds. Replayed in order against uploadOne; our
// requests must be the recorded ones, and the recorded responses must pass our OpenAPI checker.
test('replay: recorded GitHub exchanges (upload conflict) drive uploadOne exactly', async () => {
  const recorded = JSON.parse(
    (await import('node:fs')).readFileSync(
      join(repoRoot, 'test/fixtures/github/recorded-release-assets.json'),
      'utf8',
    ),
  ) as {
    scenarios: Record<
      string,
      { method: string; path: string; status: number; requestBody: unknown; response: unknown }[]
    >;
  };
  // Every recorded exchange (both scenarios) conforms to the OpenAPI excerpt.
  for (const [name, steps] of Object.entries(recorded.scenarios))
    for (const s of steps) {
      const u = new URL(s.path, 'http://x');
      const m = matchOperation(s.method, u.pathname);
      assert.ok(m, `${name}: ${s.method} ${u.pathname} is an operation of the excerpt`);
      // The recording predates GitHub's asset `digest` field (now required by the description);
      // that one difference is expected, anything else is a mismatch.
      const problems = checkResponse(m!.op, s.status, s.response ?? undefined).filter(
        (p) => !p.includes("required property 'digest'"),
      );
      assert.equal(problems, [], `${name} ${s.method} ${s.path}`);
    }
  const steps = recorded.scenarios['release-assets-conflict']!;
  const seen: string[] = [];
  let i = 0;
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const step = steps[i++];
    seen.push(`${req.method} ${req.url}`);
    // Our list calls ask for 100 per page; the recording used GitHub's default page size.
    const url = new URL(req.url ?? '/', 'http://x');
    url.searchParams.delete('per_page');
    if (!step || step.method !== req.method || step.path !== url.pathname + url.search) {
      res.writeHead(500).end();
      return;
    }
    if (step.requestBody !== null) assert.is(Buffer.concat(chunks).toString('utf8'), step.requestBody);
    res.writeHead(
      step.status,
      step.response === null ? {} : { 'content-type': 'application/json; charset=utf-8' },
    );
    res.end(step.response === null ? undefined : JSON.stringify(step.response));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    const gh = createGitHub({
      token: 'recorded',
      repo: 'octokit-fixture-org/release-assets-conflict',
      baseUrl: `http://127.0.0.1:${port}`,
      retries: 0,
      writeIntervalMs: 0,
    });
    const release = await gh.getReleaseByTag('v1.0.0');
    assert.ok(release);
    // The recorded upload_url points at uploads.github.com: send it to the replay server instead.
    const local = {
      ...release!,
      upload_url: release!.upload_url.replace('https://uploads.github.com', `http://127.0.0.1:${port}`),
    };
    const asset = await uploadOneWithLabel(
      gh,
      local,
      'test-upload.txt',
      'test',
      Buffer.from('Hello, world!\n'),
    );
    assert.is(asset.name, 'test-upload.txt');
    assert.is(i, steps.length, `every recorded exchange replayed: ${seen.join(' | ')}`);
  } finally {
    server.close();
  }
});

/** uploadOne with the recorded label ('test') in place of our sha256 label. */
async function uploadOneWithLabel(
  gh: GitHub,
  release: Parameters<GitHub['uploadAsset']>[0],
  name: string,
  label: string,
  data: Buffer,
) {
  const sha = createHash('sha256').update(data).digest('hex');
  const wrapped: GitHub = {
    ...gh,
    uploadAsset: (r, n, _l, d, ct) => gh.uploadAsset(r, n, label, d, ct ?? 'text/plain'),
  };
  return uploadOne(wrapped, release, { name, path: '', size: data.length, sha256: sha }, data);
}

test.run();
