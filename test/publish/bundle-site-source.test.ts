// The bundle's HTTP reader of a published site (publish/site-source.ts) against a real HTTP
// server (test/world/http.ts): a download is streamed and checked, every failure names its URL
// and leaves no file; the lookaside is read signature-N by signature-N until the first 404, and
// not past containers/image's limit of 128.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PipelineError, UnavailableError } from '../../pipeline/errors.ts';
import { download, urlSource } from '../../pipeline/publish/site-source.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { type StaticServer, serveDir } from '../world/http.ts';

const work = join(repoRoot, '.cache', 'publish', `site-source-${process.pid}`);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const digest = `sha256:${sha('manifest')}`;
const sigDir = (n: number) =>
  join(work, 'site', 'signatures', `rocknsm/os@${digest.replace(':', '=')}`, `signature-${n}`);
let server: StaticServer;
const url = (rel: string) => `http://127.0.0.1:${server.port}/site/${rel}`;

/** The error `f` throws (fails the test when it throws none). */
async function thrown(f: () => Promise<unknown>): Promise<Error> {
  try {
    await f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

test.before(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'site'), { recursive: true });
  writeFileSync(join(work, 'site', 'disk.raw.xz'), Buffer.alloc(3 << 20, 'disk'));
  server = await serveDir(work);
});

test.after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

test('download: streamed to disk and checked; another sha256 is refused naming the URL, no file left', async () => {
  const bytes = readFileSync(join(work, 'site', 'disk.raw.xz'));
  const dest = join(work, 'got');
  await download(fetch, url('disk.raw.xz'), dest, [sha(bytes)]);
  assert.ok(readFileSync(dest).equals(bytes));
  rmSync(dest);
  const bad = await thrown(() => download(fetch, url('disk.raw.xz'), dest, [sha('other')]));
  assert.instance(bad, PipelineError);
  assert.match(
    bad.message,
    `${url('disk.raw.xz')}: sha256 ${sha(bytes)}, but the release records ${sha('other')}`,
  );
  assert.not.ok(existsSync(dest), 'nothing written');
});

test('download: a 404 and an unreachable server are refused naming the URL', async () => {
  const dest = join(work, 'got');
  const missing = await thrown(() => download(fetch, url('gone.sig'), dest, []));
  assert.match(missing.message, `${url('gone.sig')}: HTTP 404`);
  const closed = 'http://127.0.0.1:1/site/disk.raw.xz';
  const down = await thrown(() => download(fetch, closed, dest, []));
  assert.instance(down, UnavailableError);
  assert.match(down.message, `${closed}: cannot be read`);
  assert.not.ok(existsSync(dest));
});

test('lookaside: signature-N until the first 404; none is an empty list', async () => {
  for (const n of [1, 2]) {
    mkdirSync(join(sigDir(n), '..'), { recursive: true });
    writeFileSync(sigDir(n), `sig ${n}`);
  }
  const site = urlSource(`http://127.0.0.1:${server.port}/site/`);
  const before = server.requests.length;
  const other = `sha256:${sha('other')}`;
  assert.equal(await site.signatureFiles('ghcr.io/rocknsm/os', [digest, other]), [
    `rocknsm/os@${digest.replace(':', '=')}/signature-1`,
    `rocknsm/os@${digest.replace(':', '=')}/signature-2`,
  ]);
  for (let i = 0; i < 50 && server.requests.length - before < 4; i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.equal(
    server.requests.slice(before).map((p) => p.split('/').slice(-2).join('/')),
    [
      `os@${digest.replace(':', '=')}/signature-1`,
      `os@${digest.replace(':', '=')}/signature-2`,
      `os@${digest.replace(':', '=')}/signature-3`,
      `os@${other.replace(':', '=')}/signature-1`,
    ],
  );
});

test('lookaside: signature-1 to signature-128 all there is refused, as containers/image refuses it', async () => {
  for (let n = 1; n <= 128; n++) {
    mkdirSync(join(sigDir(n), '..'), { recursive: true });
    writeFileSync(sigDir(n), `sig ${n}`);
  }
  const site = urlSource(`http://127.0.0.1:${server.port}/site`);
  const e = await thrown(() => site.signatureFiles('ghcr.io/rocknsm/os', [digest]));
  assert.match(e.message, 'signature-1 to signature-128 all there');
});

test.run();
