// The comparison CI runs against the real `rpm-ostree compose tree --print-only` (ci.yml,
// rpm-ostree-print-only), tested here with a hand-made rpm-ostree-shaped output: equal passes,
// every difference is reported with its JSON path, and the CLI exits 1 on one.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compose } from '../../pipeline/commands/compose.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { UsageError } from '../../pipeline/errors.ts';
import { createLogger } from '../../pipeline/log.ts';
import { compareTreefiles, formatDifferences } from '../../pipeline/plan/print-only-compare.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const recorded = join(root, 'test/fixtures/rpm-ostree-print-only/fcos-shaped.stable.x86_64.json');
const treefile = 'test/fixtures/fcos-shaped/manifest.yaml';

function context() {
  let out = '';
  const ctx: Context = {
    root,
    cwd: root,
    env: {},
    now: () => Date.UTC(2025, 1, 20),
    log: createLogger({ mode: 'plain', out: { write: () => true } }),
    run: async () => {
      throw new Error('nothing may run');
    },
    stdout: { write: (s: string) => (out += s) },
    cores: 2,
  };
  return { ctx, out: () => out };
}

const values = (extra: Record<string, unknown>) => ({
  stream: 'stable',
  arch: ['x86_64'],
  mode: 'host',
  treefile,
  output: '/tmp/rock-print-only',
  ...extra,
});

test('equal treefiles: no differences', () => {
  const t = { packages: ['a', 'b'], ref: 'x/x86_64', metadata: { k: 1 }, rojig: { description: null } };
  assert.equal(compareTreefiles(t, structuredClone(t)), []);
});

test('each kind of difference, at its JSON pointer (RFC 6901 escapes)', () => {
  const ours = { packages: ['a', 'b', 'c'], ref: 'r', metadata: { 'a/b': 1, 'c~d': true }, units: ['u'] };
  const theirs = { ref: 'r', packages: ['a', 'B'], metadata: { 'a/b': 2, 'c~d': true }, basearch: 'x86_64' };
  const diffs = compareTreefiles(ours, theirs);
  assert.equal(diffs, [
    { path: '/basearch', kind: 'missing', rpmOstree: 'x86_64' },
    { path: '/units', kind: 'extra', ours: ['u'] },
    {
      path: '',
      kind: 'order',
      ours: ['packages', 'ref', 'metadata'],
      rpmOstree: ['ref', 'packages', 'metadata'],
    },
    { path: '/packages/1', kind: 'value', ours: 'b', rpmOstree: 'B' },
    { path: '/packages/2', kind: 'extra', ours: 'c' },
    { path: '/metadata/a~1b', kind: 'value', ours: 1, rpmOstree: 2 },
  ]);
  assert.match(formatDifferences(diffs), '/packages/1: rock-image "b", rpm-ostree "B"\n');
  assert.match(formatDifferences(diffs), '/basearch: only rpm-ostree has "x86_64"\n');
  // A value and its type: 41 and "41" differ, null and a missing key differ.
  assert.equal(compareTreefiles({ releasever: 41 }, { releasever: '41' })[0]?.kind, 'value');
  assert.equal(compareTreefiles({ a: null }, {})[0], { path: '/a', kind: 'extra', ours: null });
});

test('--check-print-only: the rpm-ostree-shaped output of the fcos-shaped tree matches', async () => {
  const { ctx, out } = context();
  const code = await compose.run(ctx, values({ 'check-print-only': recorded }), []);
  assert.is(code, 0, out());
  assert.match(out(), 'x86_64: the flattened treefile matches rpm-ostree compose tree --print-only');
});

test('--check-print-only: a changed package, a missing field and another order exit 1 with paths', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'print-only-'));
  try {
    const theirs = JSON.parse(readFileSync(recorded, 'utf8')) as Record<string, unknown>;
    const { ref, ...rest } = theirs;
    (rest.packages as string[])[0] = 'NetworkManager-tui';
    const file = join(dir, 'rpm-ostree.json');
    writeFileSync(file, JSON.stringify({ ...rest, ref, ima: true }, null, 2));
    const { ctx, out } = context();
    assert.is(await compose.run(ctx, values({ 'check-print-only': file }), []), 1);
    const text = out();
    assert.match(text, 'x86_64: 3 difference(s) from rpm-ostree compose tree --print-only');
    assert.match(text, '/ima: only rpm-ostree has true\n');
    assert.match(text, '/: key order differs: rock-image ["packages","ref",');
    assert.match(text, '/packages/0: rock-image "NetworkManager", rpm-ostree "NetworkManager-tui"\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--check-print-only needs one arch and JSON', async () => {
  const { ctx } = context();
  for (const extra of [
    { 'check-print-only': recorded, arch: ['x86_64', 'aarch64'] },
    { 'check-print-only': join(root, treefile) },
  ]) {
    let err: unknown;
    await compose.run(ctx, values(extra) as never, []).catch((e) => {
      err = e;
    });
    assert.instance(err, UsageError, JSON.stringify(extra));
  }
});

test('--print-only --json: the wrapper a compose hands rpm-ostree and the flattened treefile', async () => {
  const { ctx, out } = context();
  assert.is(await compose.run(ctx, values({ 'print-only': true, json: true }), []), 0);
  const printed = JSON.parse(out()) as Record<
    string,
    { wrapper: Record<string, unknown>; treefile: unknown }
  >;
  assert.equal(Object.keys(printed), ['x86_64']);
  assert.equal(printed.x86_64!.wrapper, {
    path: '/tmp/rock-print-only/work/x86_64/treefile/rocknsm-stable.json',
    treefile: { include: join(root, treefile), variables: { stream: 'stable', prod: true } },
  });
  assert.equal(compareTreefiles(printed.x86_64!.treefile, JSON.parse(readFileSync(recorded, 'utf8'))), []);
});

test.run();
