// pipeline/records.ts: meta.json and builds.json against their schemas (bad records refused with
// the file and the rule), and the lock that keeps concurrent writers of one record from losing
// each other's updates (in one process and across processes), stale locks, held locks.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../../pipeline/cli.ts';
import { PipelineError } from '../../pipeline/errors.ts';
import { writeAtomic } from '../../pipeline/files.ts';
import {
  addBuild,
  type BuildMeta,
  lockPath,
  readBuilds,
  readMetaFile,
  recordProblems,
  updateBuilds,
  updateMeta,
  withLock,
} from '../../pipeline/records.ts';

const work = join(tmpdir(), `records-${process.pid}`);
const ID = '41.20261122.3.0';
const metaFile = join(work, 'builds', ID, 'x86_64', 'meta.json');

const good = (): BuildMeta => ({
  name: 'rocknsm-coreos',
  buildid: ID,
  'ostree-version': ID,
  'ostree-timestamp': '2026-11-22T10:00:00Z',
  'coreos-assembler.basearch': 'x86_64',
  'coreos-assembler.build-timestamp': '2026-11-22T10:05:00Z',
  images: {
    ostree: { path: `rocknsm-coreos-${ID}-ostree.x86_64.ociarchive`, sha256: 'ab'.repeat(32), size: 10 },
    metal: {
      path: `rocknsm-coreos-${ID}-metal.x86_64.raw.xz`,
      sha256: 'cd'.repeat(32),
      size: 5,
      'uncompressed-sha256': 'ef'.repeat(32),
      'uncompressed-size': 20,
    },
  },
  'base-oscontainer': {
    image: 'docker://quay.io/fedora/fedora-coreos:stable',
    digest: `sha256:${'1'.repeat(64)}`,
    tags: ['stable'],
  },
  'rocknsm.stream': 'stable',
  'rocknsm.input-hash': 'a'.repeat(64),
  'rocknsm.image-digest': `sha256:${'d'.repeat(64)}`,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const [out, err, dir] = [process.stdout.write, process.stderr.write, process.cwd()];
  process.stderr.write = ((c: string | Uint8Array) => {
    stderr += String(c);
    return true;
  }) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  process.chdir(work);
  try {
    return { code: await main(args, { CI: 'true' }), stderr };
  } finally {
    process.chdir(dir);
    process.stderr.write = err;
    process.stdout.write = out;
  }
}

test.before.each(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'builds', ID, 'x86_64'), { recursive: true });
  writeAtomic(metaFile, JSON.stringify(good()));
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('schema: a full record and builds.json are accepted', () => {
  assert.equal(recordProblems('meta', good()), []);
  assert.equal(readMetaFile(metaFile), good());
  const doc = addBuild(readBuilds(join(work, 'builds')), ID, ['x86_64'], '2026-11-22T10:05:00Z');
  assert.equal(recordProblems('builds', doc), []);
});

test('schema: bad records are refused with the file and the rule (exit 65)', () => {
  const cases: [unknown, RegExp][] = [
    [{ ...good(), buildid: undefined }, /\/: required: must have required property 'buildid'/],
    [
      { ...good(), images: { ostree: { path: 'x', sha256: 1, size: 1 } } },
      /\/images\/ostree\/sha256: type: must be string/,
    ],
    [
      { ...good(), images: { metal: { path: 'x', sha256: 'y', size: 1 } } },
      /\/images: required: must have required property 'ostree'/,
    ],
    [{ ...good(), 'rocknsm.image-digest': 'latest' }, /\/rocknsm.image-digest: pattern/],
    [{ ...good(), 'ostree-timestamp': '2026-11-22 10:00' }, /\/ostree-timestamp: pattern/],
    [
      { ...good(), 'base-oscontainer': { digest: 'sha256:x' } },
      /\/base-oscontainer: required: must have required property 'image'/,
    ],
    [{ ...good(), surprise: 1 }, /\/: additionalProperties: must NOT have additional properties 'surprise'/],
  ];
  for (const [doc, rule] of cases) {
    writeFileSync(metaFile, JSON.stringify(doc));
    try {
      readMetaFile(metaFile);
      assert.unreachable(`accepted ${JSON.stringify(doc)}`);
    } catch (e) {
      assert.instance(e, PipelineError);
      assert.is((e as PipelineError).exitCode, 65);
      assert.ok((e as Error).message.startsWith(`${metaFile}: not a valid meta.json`), (e as Error).message);
      assert.match((e as Error).message, rule);
    }
  }
  writeFileSync(
    join(work, 'builds', 'builds.json'),
    JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: ID }], timestamp: '' }),
  );
  assert.throws(
    () => readBuilds(join(work, 'builds')),
    (e: Error) =>
      /builds\.json: not a valid builds\.json.*\n {2}\/builds\/0: required: must have required property 'arches'/.test(
        e.message,
      ),
  );
  // A write that breaks the schema never lands.
  writeAtomic(metaFile, JSON.stringify(good()));
  assert.throws(() =>
    updateBuilds(join(work, 'builds'), (d) => ({ ...d, builds: [{ id: '', arches: [] }] })),
  );
  assert.not.ok(existsSync(join(work, 'builds', 'builds.json.lock')));
});

test('schema: a bad record through the CLI is exit 65 with the file and rule, no stack trace', async () => {
  writeFileSync(
    join(work, 'builds', 'builds.json'),
    JSON.stringify(addBuild(readBuilds(join(work, 'builds')), ID, ['x86_64'], 't')),
  );
  writeFileSync(
    metaFile,
    JSON.stringify({
      ...good(),
      images: { ostree: { path: 'x', sha256: 'y', size: -0.5, 'uncompressed-size': 1.5 } },
    }),
  );
  const r = await cli(['merge-builds', '--output', 'out', '.']);
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, `${metaFile}: not a valid meta.json`);
  assert.match(r.stderr, /\/images\/ostree\/uncompressed-size: type: must be integer/);
  assert.not.match(r.stderr, /\n\s+at /);
});

test('lock: a writer holding meta.json across an await does not lose a concurrent update', async () => {
  const slow = withLock(metaFile, async () => {
    const m = readMetaFile(metaFile);
    await sleep(150);
    writeAtomic(metaFile, JSON.stringify({ ...m, 'rocknsm.stream': 'slow' }));
  });
  await sleep(20);
  assert.ok(existsSync(lockPath(metaFile)), 'the slow writer holds the lock');
  const fast = updateMeta(metaFile, (m) => ({ ...m, 'rocknsm.artifacts': { backend: 'native' } }), {
    pollMs: 5,
  });
  await Promise.all([slow, fast]);
  const m = readMetaFile(metaFile);
  assert.is(m['rocknsm.stream'], 'slow');
  assert.equal(m['rocknsm.artifacts'], { backend: 'native' });
  assert.not.ok(existsSync(lockPath(metaFile)));
});

test('lock: two processes updating one meta.json 100 times each lose nothing', async () => {
  const records = new URL('../../pipeline/records.ts', import.meta.url).href;
  // Both start at the same moment, so their read-modify-writes overlap.
  const start = Date.now() + 1500;
  const child = (tag: string) =>
    new Promise<number>((res, rej) => {
      const script = `const r = await import(${JSON.stringify(records)});
while (Date.now() < ${start}) await new Promise((ok) => setTimeout(ok, 1));
for (let i = 0; i < 100; i++)
  await r.updateMeta(${JSON.stringify(metaFile)}, (m) => ({ ...m, 'rocknsm.boot-tests': { ...m['rocknsm.boot-tests'], ['${tag}' + i]: { result: 'pass' } } }), { pollMs: 1 });`;
      const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        stdio: 'inherit',
      });
      p.on('error', rej);
      p.on('exit', (code) => res(code ?? 1));
    });
  assert.equal(await Promise.all([child('a'), child('b')]), [0, 0]);
  const tests = readMetaFile(metaFile)['rocknsm.boot-tests'] ?? {};
  assert.is(Object.keys(tests).length, 200);
});

test('lock: a lock left by a dead process is recovered', async () => {
  const dead = spawnSync(process.execPath, [
    '-e',
    'process.stdout.write(String(process.pid))',
  ]).stdout.toString();
  writeFileSync(lockPath(metaFile), `${dead}\n${hostname()}\n`);
  const m = await updateMeta(metaFile, (x) => ({ ...x, 'rocknsm.stream': 'after' }), { timeoutMs: 2000 });
  assert.is(m['rocknsm.stream'], 'after');
  assert.not.ok(existsSync(lockPath(metaFile)));
  assert.equal(readMetaFile(metaFile), { ...good(), 'rocknsm.stream': 'after' });
});

test('lock: a held lock times out with an error naming the holder; the record is untouched', async () => {
  writeFileSync(lockPath(metaFile), `${process.pid}\n${hostname()}\n`);
  const before = readFileSync(metaFile, 'utf8');
  const t0 = Date.now();
  try {
    await updateMeta(metaFile, (x) => ({ ...x, 'rocknsm.stream': 'never' }), { timeoutMs: 200, pollMs: 10 });
    assert.unreachable('took a held lock');
  } catch (e) {
    assert.instance(e, PipelineError);
    assert.match(
      (e as Error).message,
      `${metaFile}: locked by process ${process.pid} on ${hostname()} (${lockPath(metaFile)})`,
    );
  }
  assert.ok(Date.now() - t0 >= 200);
  assert.is(readFileSync(metaFile, 'utf8'), before);
  assert.ok(existsSync(lockPath(metaFile)), "another holder's lock is left alone");
});

test.run();
