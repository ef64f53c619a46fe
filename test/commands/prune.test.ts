// `rock-image prune` through the CLI on a build directory laid out as `build` writes it.
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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

test('prune: the blob cache keeps what the kept builds carry; an unreadable kept archive keeps its cache whole', () => {
  const out = buildDir();
  const hex = (c: string) => c.repeat(64);
  const [A, B, C, M] = ['a', 'b', 'c', 'e'].map((c) => `sha256:${hex(c)}`) as [
    string,
    string,
    string,
    string,
  ];
  // The newest build's x86_64 archive: an OCI archive whose manifest lists layers A and B.
  const v = versions[0]!;
  const archDir = join(out, 'builds', v, 'x86_64');
  const layout = join(out, 'layout');
  mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
  const manifest = JSON.stringify({ schemaVersion: 2, layers: [{ digest: A }, { digest: B }] });
  const mdigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  writeFileSync(join(layout, 'blobs/sha256', mdigest.slice(7)), manifest);
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ manifests: [{ digest: mdigest }] }));
  const archive = `rocknsm-coreos-${v}-ostree.x86_64.ociarchive`;
  assert.is(shResult('tar', ['-cf', join(archDir, archive), '-C', layout, '.']).code, 0);
  const bytes = readFileSync(join(archDir, archive));
  writeFileSync(
    join(archDir, 'meta.json'),
    `${JSON.stringify({
      buildid: v,
      name: 'rocknsm-coreos',
      'coreos-assembler.basearch': 'x86_64',
      images: {
        ostree: {
          path: archive,
          sha256: createHash('sha256').update(bytes).digest('hex'),
          size: bytes.length,
        },
      },
      'rocknsm.image-digest': mdigest,
    })}\n`,
  );
  // x86_64's cache: the kept base's blobs A and B with their notes, an older base's C with its.
  const cache = join(out, 'cache/blobs/x86_64');
  mkdirSync(cache, { recursive: true });
  const files: Record<string, string> = {
    [A]: 'layer a',
    [B]: 'layer b',
    [C]: 'layer c',
    [`sha256:${hex('1')}.compressed`]: A,
    [`sha256:${hex('3')}.compressed`]: C,
    [`${A}.decompressed`]: `sha256:${hex('1')}`,
    [`${C}.decompressed`]: `sha256:${hex('3')}`,
    [`${M}.config`]: '{}',
  };
  for (const [n, c] of Object.entries(files)) writeFileSync(join(cache, n), c);
  // aarch64's cache, where the kept build's meta.json cannot be read: kept whole.
  const other = join(out, 'cache/blobs/aarch64');
  mkdirSync(other, { recursive: true });
  writeFileSync(join(other, C), 'layer c');
  mkdirSync(join(out, 'builds', v, 'aarch64'), { recursive: true });
  writeFileSync(join(out, 'builds', v, 'aarch64', 'meta.json'), '{}\n');
  try {
    const r = cli(['prune', '--output', out, '--keep', '1']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      readdirSync(cache).sort(),
      [A, `${A}.decompressed`, B, `${M}.config`, `sha256:${hex('1')}.compressed`].sort(),
    );
    assert.equal(readdirSync(other), [C]);
    assert.match(r.stderr, 'its blob cache is kept whole');
    // Nothing more to remove: a re-run changes nothing.
    assert.is(cli(['prune', '--output', out, '--keep', '1']).code, 0);
    assert.is(readdirSync(cache).length, 5);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
