// `rock-image prune` through the CLI on a build directory laid out as `build` writes it.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planPrune } from '../../pipeline/plan/prune.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { shResult } from '../world/tools.ts';

const versions = ['41.20261123.3.0', '41.20261122.3.1', '41.20261122.3.0', '41.20261121.3.0'];
const cli = (args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { env: { CI: 'true' } });

function buildDir(): string {
  const out = mkdtempSync(join(tmpdir(), 'rock-prune-'));
  for (const v of versions) {
    mkdirSync(join(out, 'builds', v, 'x86_64'), { recursive: true });
    writeFileSync(join(out, 'builds', v, 'x86_64', 'meta.json'), '{}\n');
  }
  // A stray left by an interrupted build: on disk, not in builds.json.
  mkdirSync(join(out, 'builds', '41.20261120.3.0'), { recursive: true });
  writeFileSync(
    join(out, 'builds/builds.json'),
    `${JSON.stringify({ 'schema-version': '1.0.0', builds: versions.map((id) => ({ id, arches: ['x86_64'] })), timestamp: '2026-11-23T00:00:00Z' })}\n`,
  );
  return out;
}

test('planPrune keeps the newest N and the pinned ones', () => {
  const builds = versions.map((id) => ({ id }));
  assert.equal(planPrune(builds, 2), { keep: versions.slice(0, 2), remove: versions.slice(2) });
  assert.equal(planPrune(builds, 1, ['41.20261121.3.0']), {
    keep: [versions[0], versions[3]],
    remove: [versions[1], versions[2]],
  });
  assert.throws(() => planPrune(builds, 0), /at least 1/);
});

test('prune --keep 2 --pin V: builds.json rewritten, directories and strays removed', () => {
  const out = buildDir();
  try {
    const r = cli(['prune', '--output', out, '--keep', '2', '--pin', '41.20261121.3.0']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'remove 41.20261122.3.0\nremove 41.20261120.3.0\n');
    const json = JSON.parse(readFileSync(join(out, 'builds/builds.json'), 'utf8'));
    assert.equal(
      json.builds.map((b: { id: string }) => b.id),
      ['41.20261123.3.0', '41.20261122.3.1', '41.20261121.3.0'],
    );
    for (const v of ['41.20261122.3.0', '41.20261120.3.0']) assert.not.ok(existsSync(join(out, 'builds', v)));
    for (const v of json.builds) assert.ok(existsSync(join(out, 'builds', v.id, 'x86_64/meta.json')));
    // Re-running changes nothing.
    const again = cli(['prune', '--output', out, '--keep', '2', '--pin', '41.20261121.3.0']);
    assert.is(again.code, 0, again.stderr);
    assert.is(again.stdout, '');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('prune --dry-run changes nothing; bad --keep and --pin are usage errors', () => {
  const out = buildDir();
  try {
    const before = readFileSync(join(out, 'builds/builds.json'), 'utf8');
    const r = cli(['prune', '--output', out, '--keep', '3', '--dry-run']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'would remove 41.20261121.3.0\nwould remove 41.20261120.3.0\n');
    assert.is(readFileSync(join(out, 'builds/builds.json'), 'utf8'), before);
    assert.ok(existsSync(join(out, 'builds/41.20261121.3.0')));
    assert.is(cli(['prune', '--output', out, '--keep', '0']).code, 64);
    assert.is(cli(['prune', '--output', out, '--pin', 'latest']).code, 64);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
