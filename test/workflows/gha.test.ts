// pipeline/gha.ts (pure parts) and merge-builds' refusals: every bad leg layout fails with the
// file and the rule named, a non-zero exit, and the target build directory left untouched.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../../pipeline/cli.ts';
import {
  decide,
  formatOutputs,
  humanSize,
  legMatrix,
  renderSummary,
  renderUnchanged,
} from '../../pipeline/gha.ts';
import { addBuild, type BuildMeta } from '../../pipeline/records.ts';
import { cacheDir } from '../world/fcos-base.ts';

const meta = (arch: string, id: string, hash: string, base: string, size: number): BuildMeta => ({
  buildid: id,
  'coreos-assembler.basearch': arch,
  images: {
    ostree: { path: `rocknsm-coreos-${id}-ostree.${arch}.ociarchive`, sha256: 'ab'.repeat(32), size },
  },
  'base-oscontainer': {
    image: 'docker://quay.io/fedora/fedora-coreos:stable',
    digest: `sha256:${base.repeat(64)}`,
  },
  'rocknsm.stream': 'stable',
  'rocknsm.input-hash': hash.repeat(64),
  'rocknsm.image-digest': `sha256:${'d'.repeat(64)}`,
});

test('legMatrix: a native runner per arch, in the stream order', () => {
  assert.equal(legMatrix(['aarch64', 'x86_64']).include, [
    { arch: 'aarch64', runner: 'ubuntu-24.04-arm' },
    { arch: 'x86_64', runner: 'ubuntu-24.04' },
  ]);
});

test('decide: unchanged only when every arch hash equals the newest build', () => {
  const builds = {
    'schema-version': '1.0.0',
    builds: [
      { id: '41.20261122.3.1', arches: ['aarch64', 'x86_64'] },
      { id: '41.20261122.3.0', arches: ['aarch64', 'x86_64'] },
    ],
    timestamp: '',
  };
  const metas: Record<string, BuildMeta> = {
    '41.20261122.3.1/x86_64': meta('x86_64', '41.20261122.3.1', 'a', '1', 1),
    '41.20261122.3.1/aarch64': meta('aarch64', '41.20261122.3.1', 'b', '1', 1),
  };
  const read = (id: string, arch: string) => metas[`${id}/${arch}`];
  const same = decide({ x86_64: 'a'.repeat(64), aarch64: 'b'.repeat(64) }, builds, read);
  assert.is(same.changed, false);
  assert.is(same.previous, '41.20261122.3.1');
  const one = decide({ x86_64: 'a'.repeat(64), aarch64: 'c'.repeat(64) }, builds, read);
  assert.is(one.changed, true);
  assert.equal(
    one.arches.map((a) => [a.arch, a.changed]),
    [
      ['x86_64', false],
      ['aarch64', true],
    ],
  );
  const first = decide({ x86_64: 'a'.repeat(64) }, { ...builds, builds: [] }, read);
  assert.equal([first.changed, first.previous], [true, undefined]);
});

test('addBuild: union of arches, newest first by version order (not string order)', () => {
  let doc = addBuild(
    { 'schema-version': '1.0.0', builds: [], timestamp: '' },
    '41.20261122.3.9',
    ['x86_64'],
    't1',
  );
  doc = addBuild(doc, '41.20261122.3.10', ['x86_64'], 't2');
  doc = addBuild(doc, '41.20261122.3.10', ['aarch64'], 't3');
  assert.equal(doc, {
    'schema-version': '1.0.0',
    builds: [
      { id: '41.20261122.3.10', arches: ['aarch64', 'x86_64'] },
      { id: '41.20261122.3.9', arches: ['x86_64'] },
    ],
    timestamp: 't3',
  });
});

test('formatOutputs: key=value, and the heredoc form for multi-line values', () => {
  assert.is(formatOutputs({ a: '1', b: 'x\ny' }, 'EOF1'), 'a=1\nb<<EOF1\nx\ny\nEOF1\n');
});

test('humanSize', () => {
  assert.equal(
    [humanSize(512), humanSize(1536), humanSize(5 * 1048576), humanSize(3 * 1073741824)],
    ['512 B', '1.5 KiB', '5.0 MiB', '3.0 GiB'],
  );
});

test('renderSummary: digests, sizes and what changed per arch', () => {
  const md = renderSummary({
    stream: 'stable',
    version: '41.20261123.3.0',
    current: [
      meta('x86_64', '41.20261123.3.0', 'a', '2', 3 * 1048576),
      meta('aarch64', '41.20261123.3.0', 'c', '1', 1048576),
    ],
    previous: {
      version: '41.20261122.3.0',
      metas: [
        meta('x86_64', '41.20261122.3.0', 'e', '1', 2 * 1048576),
        meta('aarch64', '41.20261122.3.0', 'f', '1', 1048576),
      ],
    },
  });
  assert.ok(md.startsWith('### stable 41.20261123.3.0\n'));
  assert.match(
    md,
    /\| x86_64 \| `sha256:dddddddddddddddd…` \| `sha256:2222222222222222…` \| `aaaaaaaaaaaaaaaa…` \|/,
  );
  assert.match(
    md,
    /\| x86_64 \| rocknsm-coreos-41\.20261123\.3\.0-ostree\.x86_64\.ociarchive \(ostree\) \| 3\.0 MiB \|/,
  );
  assert.match(md, /\*\*Changes since 41\.20261122\.3\.0:\*\*/);
  assert.match(
    md,
    /- x86_64: base `sha256:1111111111111111…` → `sha256:2222222222222222…`\n {2}- image 2\.0 MiB → 3\.0 MiB \(\+1\.0 MiB\)/,
  );
  assert.match(
    md,
    /- aarch64: same base; manifests or overlays changed \(input hash `ffffffffffff…` → `cccccccccccc…`\)/,
  );
  assert.match(
    renderUnchanged('next', '41.20261122.1.0', []),
    /^### next: unchanged since 41\.20261122\.1\.0\n/,
  );
});

test('renderSummary: the service images, their pins, and a pin that moved since the previous build', () => {
  const D1 = `sha256:${'1'.repeat(64)}`;
  const D2 = `sha256:${'2'.repeat(64)}`;
  const images = (zeek: string) => ({
    'service/zeek': { ref: 'docker.io/zeek/zeek:7.0.5', image: `docker.io/zeek/zeek@${zeek}`, digest: zeek },
    'service/kafka': { ref: 'docker.io/apache/kafka:3.9.0', image: 'docker.io/apache/kafka:3.9.0' },
  });
  const withImages = (m: BuildMeta, zeek: string): BuildMeta => ({ ...m, 'rocknsm.images': images(zeek) });
  const md = renderSummary({
    stream: 'stable',
    version: '41.20261123.3.0',
    current: [withImages(meta('x86_64', '41.20261123.3.0', 'a', '1', 1048576), D2)],
    previous: {
      version: '41.20261122.3.0',
      metas: [withImages(meta('x86_64', '41.20261122.3.0', 'a', '1', 1048576), D1)],
    },
  });
  assert.match(md, '| service image | reference | pinned digest |\n| --- | --- | --- |\n');
  assert.match(md, '| service/kafka | `docker.io/apache/kafka:3.9.0` | **by tag, not pinned** |\n');
  assert.match(md, '| service/zeek | `docker.io/zeek/zeek:7.0.5` | `sha256:2222222222222222…` |\n');
  assert.match(md, '- service/zeek: `sha256:1111111111111111…` → `sha256:2222222222222222…`\n');
  assert.not.match(md, '- service/kafka:');
  assert.not.match(
    renderSummary({ stream: 's', version: 'v', current: [meta('x86_64', 'v', 'a', '1', 1)] }),
    'service image',
  );
});

// merge-builds against leg directories made of JSON files only (the refusals happen before any
// archive is touched; the real data path is in legs.test.ts).
const work = join(cacheDir, `merge-${process.pid}`);
/**
 * The CLI's main() in this process (what bin/rock-image.js runs), in the work directory, with
 * its output captured: these tests only look at refusals, so the spawn of a fresh node is skipped.
 * uvu runs tests one at a time, so the directory change and the capture touch nothing else.
 */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const [out, err, dir] = [process.stdout.write, process.stderr.write, process.cwd()];
  process.stdout.write = ((c: string | Uint8Array) => {
    stdout += String(c);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => {
    stderr += String(c);
    return true;
  }) as typeof process.stderr.write;
  process.chdir(work);
  try {
    return { code: await main(args, { CI: 'true' }), stdout, stderr };
  } finally {
    process.chdir(dir);
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

function leg(name: string, id: string, arch: string, m: Partial<BuildMeta> = {}): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'builds', id, arch), { recursive: true });
  writeFileSync(
    join(dir, 'builds', 'builds.json'),
    JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id, arches: [arch] }], timestamp: 't' }),
  );
  writeFileSync(
    join(dir, 'builds', id, arch, 'meta.json'),
    JSON.stringify({ ...meta(arch, id, 'a', '1', 1), ...m }),
  );
  writeFileSync(join(dir, 'builds', id, arch, 'payload'), `${name}\n`);
  return name;
}

test.before.each(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('merge-builds: legs of different versions are refused, nothing written', async () => {
  const r = await cli([
    'merge-builds',
    '--output',
    'out',
    leg('a', '41.20261122.3.0', 'x86_64'),
    leg('b', '41.20261123.3.0', 'aarch64'),
  ]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /legs built different versions .*a: 41\.20261122\.3\.0.*b: 41\.20261123\.3\.0/);
  assert.not.ok(existsSync(join(work, 'out')));
});

test('merge-builds: a missing required arch is refused', async () => {
  const r = await cli([
    'merge-builds',
    '--output',
    'out',
    '--require-arch',
    'x86_64,aarch64',
    leg('a', '41.20261122.3.0', 'x86_64'),
  ]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /no leg built aarch64 of 41\.20261122\.3\.0; nothing was merged/);
  assert.not.ok(existsSync(join(work, 'out')));
});

test('merge-builds: the same arch from two legs is refused', async () => {
  const r = await cli([
    'merge-builds',
    leg('a', '41.20261122.3.0', 'x86_64'),
    leg('b', '41.20261122.3.0', 'x86_64'),
  ]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /x86_64 of 41\.20261122\.3\.0 is in two legs/);
});

test('merge-builds: builds.json naming an arch without meta.json is invalid input (65)', async () => {
  const dir = leg('a', '41.20261122.3.0', 'x86_64');
  rmSync(join(work, dir, 'builds', '41.20261122.3.0', 'x86_64', 'meta.json'));
  const r = await cli(['merge-builds', dir]);
  assert.is(r.code, 65);
  assert.match(
    r.stderr,
    /a\/builds\/builds\.json: lists 41\.20261122\.3\.0 x86_64, but .*meta\.json is missing/,
  );
  writeFileSync(join(work, dir, 'builds', 'builds.json'), '{"builds": [');
  const bad = await cli(['merge-builds', dir]);
  assert.is(bad.code, 65);
  assert.match(bad.stderr, /builds\.json: not JSON/);
  const wrong = leg('w', '41.20261122.3.0', 'aarch64', { 'coreos-assembler.basearch': 'x86_64' });
  const w = await cli(['merge-builds', wrong]);
  assert.is(w.code, 65);
  assert.match(
    w.stderr,
    /meta\.json: is 41\.20261122\.3\.0 x86_64, builds\.json says 41\.20261122\.3\.0 aarch64/,
  );
  const none = await cli(['merge-builds', 'nowhere']);
  assert.is(none.code, 64);
  assert.match(none.stderr, /nowhere: no builds\/builds\.json/);
});

test('merge-builds: re-merging the same leg is a no-op; a different one for a merged arch is refused', async () => {
  const a = leg('a', '41.20261122.3.0', 'x86_64');
  assert.is((await cli(['merge-builds', a])).code, 0);
  const before = readFileSync(join(work, 'out', 'builds', 'builds.json'), 'utf8');
  const again = await cli(['merge-builds', a]);
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stderr, /already merged/);
  const other = leg('c', '41.20261122.3.0', 'x86_64', { 'rocknsm.input-hash': 'f'.repeat(64) });
  const r = await cli(['merge-builds', other]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /exists and differs from .*c's x86_64; nothing was merged/);
  assert.is(readFileSync(join(work, 'out', 'builds', 'builds.json'), 'utf8'), before);
  assert.is(readFileSync(join(work, 'out', 'builds', '41.20261122.3.0', 'x86_64', 'payload'), 'utf8'), 'a\n');
});

test('summary: an unknown version is a usage error naming builds.json', async () => {
  const a = leg('a', '41.20261122.3.0', 'x86_64');
  assert.is((await cli(['merge-builds', a])).code, 0);
  const r = await cli(['summary', '--build', 'out', '--version', '41.20990101.3.0']);
  assert.is(r.code, 64);
  assert.match(r.stderr, /out\/builds\/builds\.json: no build 41\.20990101\.3\.0/);
  const ok = await cli(['summary', '--build', 'out']);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^### stable 41\.20261122\.3\.0\n/);
});

test.run();
