// The update graph with Fedora CoreOS's server semantics (coreos/fedora-coreos-cincinnati @95388bdf):
// edges case by case as compute_edges + filter_deadends make them, throttling as throttle_rollouts
// computes it, the wariness hash against published SipHash vectors and an independent oracle
// (CPython's own SipHash-1-3), the static graph a site carries, every published release an update
// target, bad rollout input refused at its line, and `rock-image serve-graph` over real HTTP.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rollout } from '../../pipeline/commands/promote.ts';
import { parseListen } from '../../pipeline/commands/serve-graph.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { PipelineError } from '../../pipeline/errors.ts';
import { createLogger } from '../../pipeline/log.ts';
import {
  clientGraph,
  computeEdges,
  computeWariness,
  type Graph,
  type GraphNode,
  graphFromMetadata,
  META,
  parseRustF64,
  rolloutParams,
  rustF64Display,
  ServedGraph,
  staticGraph,
  staticGraphPath,
  throttleRollouts,
  throttlingAt,
} from '../../pipeline/publish/graph.ts';
import { startGraphService } from '../../pipeline/publish/graph-service.ts';
import { fromBigInt, rustDefaultHashOfString, siphash, toBigInt } from '../../pipeline/publish/siphash.ts';
import {
  type ArchBuild,
  checkSiteDocText,
  parseControls,
  planSite,
  type ReleasesDoc,
  type RolloutControls,
  type UpdatesDoc,
  upsertUpdates,
} from '../../pipeline/publish/site.ts';
import { problems } from '../../pipeline/publish/validate.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `graph-${process.pid}`);
const quiet = createLogger({ mode: 'plain', out: { write: () => true } });
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const NOW_S = NOW / 1000;
const repo = 'ghcr.io/rocknsm/rocknsm-coreos';
const ref = (v: string, a: string) => `${repo}@sha256:${sha(`${v} ${a}`)}`;

/** releases.json of `versions`, each with an image for both arches unless `arches` says otherwise. */
function releasesDoc(versions: (string | { v: string; arches: string[] })[], stream = 'stable'): ReleasesDoc {
  return {
    note: '',
    stream,
    metadata: { 'last-modified': '2026-01-01T00:00:00Z' },
    releases: versions.map((x) => {
      const { v, arches } = typeof x === 'string' ? { v: x, arches: ['x86_64', 'aarch64'] } : x;
      return {
        version: v,
        metadata: `https://x/${v}/release.json`,
        commits: [],
        'oci-images': arches.map((a) => ({ architecture: a, image: repo, 'digest-ref': ref(v, a) })),
      };
    }),
  };
}

const updatesDoc = (entries: [string, RolloutControls][], stream = 'stable'): UpdatesDoc => ({
  stream,
  metadata: { 'last-modified': '2026-01-01T00:00:00Z' },
  releases: entries.map(([version, metadata]) => ({ version, metadata })),
});

const ro = (start_epoch: number, start_percentage: number, duration_minutes?: number) => ({
  rollout: { start_epoch, start_percentage, ...(duration_minutes !== undefined && { duration_minutes }) },
});
const done = ro(1_700_000_000, 1);

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

// --- SipHash and the wariness -------------------------------------------------------------------------

test('siphash: SipHash-1-3 matches Rust std SipHasher13 test vectors (key 00..0f, messages 00.. of 0..63 bytes)', () => {
  // rust-lang/rust library/core/tests/hash/sip.rs:42-108 @76dbe291 (test_siphash_1_3): the
  // expected u64 of each message as its 8 little-endian bytes.
  const vectors = [
    'dcc40f055801acab',
    '93ca577df39bf4c9',
    '4dd4c74d029bcb82',
    'fbf7dde7b80af88b',
    '2883d388605775cf',
    '673b53492fd5f9de',
    'a7229fc5502b0dc5',
    '4011b19b987d92d3',
    '8e9a298d11959036',
    'e43d066cb38ea425',
    '7f09ff92ee85de79',
    '52c34df9c118c170',
    'a2d9b457b184a378',
    'a7ff29120c766f30',
    '345df9c011a15a60',
    '5699512a6dd820d3',
    '668b907d1add4fcc',
    '0cd8db639068f29c',
    '3ee673b49c38fc8f',
    '1c7d298de59d1ff2',
    '40e0cca6462fdcc0',
    '44f8452bfeab92b9',
    '2e8720a39b7bfe7f',
    '23c1e6da7f0e5a52',
    '8c9c3467b2ae64f4',
    '79095b702859cd45',
    'a51399cae3353e3a',
    '353bde4a4ec71da9',
    '0dd06cef02ed0bfb',
    'f4e1b14ab43cd988',
    '63e6c543d6110f54',
    'bcd1218c1fdd7023',
    '0db6a7166c7b1581',
    'bff98f7ae5b9544d',
    '3e752a1f78129f75',
    '916b18bfbea3a1ce',
    '0662a2add308f52c',
    '5730c3a32d1c10b6',
    'a1363aae9674f4b3',
    '9283107b54576b62',
    '3115e4993236d2c1',
    '44d91a3f92c17c66',
    '258813c8fe4f7065',
    'a64989c2d180f224',
    '6b87f8faed1ccac2',
    '9621049ffc4b16c2',
    '23d6b168939c6ea1',
    'fd14518b9c16fb49',
    '464c07dff843319f',
    'b386cc1224affdc6',
    '8f09520ad149af7e',
    '9a2f299d5513f31c',
    '121ff4a2dd304ac4',
    'd01ea74389e9fa36',
    'e6bcf0734cb38f31',
    '80e9a77036bf7aa2',
    '756d3c24dbc0bcb4',
    '1315b7fd52d8f823',
    '088a7da64d5f038f',
    '48f1e8b7e5d09cd8',
    'ee44a6f7bce6f4f6',
    'f237180fd89ac5ae',
    'e094664b15f6b2c3',
    'a8b3bbb76290199d',
  ];
  const key = { k0: fromBigInt(0x0706050403020100n), k1: fromBigInt(0x0f0e0d0c0b0a0908n) };
  vectors.forEach((v, n) => {
    const got = toBigInt(
      siphash(
        Uint8Array.from({ length: n }, (_, i) => i),
        key,
      ),
    );
    assert.is(got, BigInt(`0x${Buffer.from(v, 'hex').reverse().toString('hex')}`), `${n} bytes`);
  });
  // The same core with 2 and 4 rounds gives the SipHash paper's vector (Appendix A; also
  // test_siphash_2_4 in the file above): 15 bytes 00..0e -> 0xa129ca6149be45e5.
  const m = Uint8Array.from({ length: 15 }, (_, i) => i);
  assert.is(toBigInt(siphash(m, key, 2, 4)), 0xa129ca6149be45e5n);
});

test('wariness: node_uuid hashed as Rust hashes a String, against CPython as an independent SipHash-1-3', () => {
  // The oracle: CPython 3.11+ hashes bytes with SipHash-1-3 (sys.hash_info.algorithm ==
  // 'siphash13'), keyed by a secret that PYTHONHASHSEED=0 sets to zero; hash() returns the u64
  // as a signed int (-1 becomes -2). The expected values were computed once with
  //   PYTHONHASHSEED=0 python3 -c 'u = hash(s.encode() + b"\xff") % 2**64;
  //     print(hex(u), repr(min(max(float(u) / 2.0**64, 1e-06), 1.0)))'
  // (Python 3.11.7) and are written here: the bytes are the UTF-8 of the string and one 0xff, as
  // Rust's str::hash writes them (siphash.ts); the scaling is compute_wariness's
  // (fcos-policy-engine/src/main.rs:202-213 @95388bdf).
  const oracle: [string, bigint, number][] = [
    ['', 0x30406ea523c53defn, 0.18848315746051456],
    ['e0f3745b108f471cbd4883c6fbed8cdd', 0xa74033ccfdcec67cn, 0.6533234000651716],
    ['00000000000000000000000000000000', 0x50b4117930411200n, 0.31524762352660596],
    ['ffffffffffffffffffffffffffffffff', 0x815de5358a9b48c0n, 0.5053389793125521],
    ['0123456789abcdef0123456789abcdef', 0xb7fc4b7cafcbcea0n, 0.7186934642229936],
    ['abcdefg', 0x2295ef44bd078ae9n, 0.13510032108481887],
    ['abcdefgh', 0x5cd7657fa7f96c16n, 0.3626616894398233],
    ['ünïcödé ☃ node', 0x290fd9a8eccc881an, 0.16039810537476928],
    // Found by a search with the same oracle: 0x22e97d805a9 / 2^64 = 1.3e-7, clamped up to 1e-6.
    ['node-1352217', 0x22e97d805a9n, 0.000001],
  ];
  for (const [uuid, digest, wariness] of oracle) {
    assert.is(toBigInt(rustDefaultHashOfString(uuid)), digest, uuid);
    assert.is(computeWariness(undefined, uuid), wariness, uuid);
  }
  // An absent node_uuid hashes as the empty string (main.rs:197-201).
  assert.is(computeWariness(undefined, undefined), 0.18848315746051456);
});

test('wariness: rollout_wariness wins when it parses as a Rust f64, clamped to 0..1; else the hash', () => {
  const hashed = computeWariness(undefined, 'abcdefg');
  assert.is(computeWariness('0.25', 'abcdefg'), 0.25);
  assert.is(computeWariness('7', 'abcdefg'), 1);
  assert.is(computeWariness('-0.5', 'abcdefg'), 0);
  assert.is(computeWariness('1e-1', 'abcdefg'), 0.1);
  assert.is(computeWariness('inf', 'abcdefg'), 1);
  assert.ok(Number.isNaN(computeWariness('NaN', 'abcdefg')), 'f64::clamp keeps NaN');
  for (const notF64 of ['', ' 0.5', '0.5 ', '0x1', 'half', '1e', '.', '50%'])
    assert.is(computeWariness(notF64, 'abcdefg'), hashed, JSON.stringify(notF64));
  assert.equal(
    ['1.', '.5', '+1', 'Infinity', '-INF', '1E3'].map((s) => parseRustF64(s)),
    [1, 0.5, 1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1000],
  );
});

// --- the graph builder ------------------------------------------------------------------------------

test('rust Display of f64: shortest digits, never an exponent, 1.0 as "1"', () => {
  const cases: [number, string][] = [
    [1, '1'],
    [0, '0'],
    [0.5, '0.5'],
    [0.1 + 0.2, '0.30000000000000004'],
    [1e-7, '0.0000001'],
    [1.5e-10, '0.00000000015'],
    [1e21, '1000000000000000000000'],
    [123.456, '123.456'],
    [-0, '-0'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'inf'],
  ];
  for (const [x, s] of cases) assert.is(rustF64Display(x), s, String(x));
});

const edgesOf = (versions: string[], controls: [string, RolloutControls][]) =>
  graphFromMetadata(releasesDoc(versions), updatesDoc(controls), 'x86_64').edges;

test('edges: releases with no rollout and no barrier are never update targets', () => {
  // compute_edges adds edges only into rollout nodes (graph.rs:129-144) and barrier nodes
  // (:147-158); none here.
  const g = graphFromMetadata(releasesDoc(['1', '2', '3']), undefined, 'x86_64');
  assert.is(g.nodes.length, 3);
  assert.equal(g.edges, []);
});

test('edges: rollouts only, newest target first, each from every older node', () => {
  // Rollouts {1, 3}, no barrier: the loop walks nodes newest first (:129); for 3 the previous
  // barrier defaults to node 0 (:135-139): (0,3) (1,3) (2,3); then 1: (0,1). Node 2 is no target.
  assert.equal(
    edgesOf(
      ['1', '2', '3', '4'],
      [
        ['2', done],
        ['4', done],
      ],
    ),
    [
      [0, 3],
      [1, 3],
      [2, 3],
      [0, 1],
    ],
  );
});

test('edges: a barrier takes every node before it; rollouts after it start from it', () => {
  // Rollouts {0, 1, 3, 4}, barrier {2} (not a rollout).
  // Rollout loop: 4 -> previous barrier 2: (2,4) (3,4); 3 -> 2: (2,3); 1 -> none, 0: (0,1);
  // 0 -> range 0..0 is empty. Barrier loop (:147-158): 2 from start 0: (0,2) (1,2).
  assert.equal(
    edgesOf(
      ['1', '2', '3', '4', '5'],
      [
        ['1', done],
        ['2', done],
        ['3', { barrier: { reason: 'new signing key' } }],
        ['4', done],
        ['5', done],
      ],
    ),
    [
      [2, 4],
      [3, 4],
      [2, 3],
      [0, 1],
      [0, 2],
      [1, 2],
    ],
  );
});

test('edges: a barrier that is a rollout gets only its rollout edges; nothing leaves a dead-end', () => {
  // Nodes: 0 plain, 1 rollout+dead-end, 2 barrier+rollout, 3 rollout, 4 dead-end (no rollout),
  // 5 rollout. Rollout loop: 5 -> previous barrier 2: (2,5) (3,5) (4,5); 3 -> 2: (2,3);
  // 2 -> no barrier before it, 0: (0,2) (1,2); 1 -> (0,1). Barrier loop: 2 is a rollout,
  // "in-progress barrier", skipped (:149-151). filter_deadends (policy.rs:6-23) then drops the
  // edges out of 1 and 4: (4,5) and (1,2). Node 4 is no target: a dead-end alone is not one.
  const g = graphFromMetadata(
    releasesDoc(['1', '2', '3', '4', '5', '6']),
    updatesDoc([
      ['2', { ...done, deadend: { reason: 'bootloader' } }],
      ['3', { ...done, barrier: { reason: 'key' } }],
      ['4', done],
      ['5', { deadend: { reason: 'broken' } }],
      ['6', done],
    ]),
    'x86_64',
  );
  assert.equal(g.edges, [
    [2, 5],
    [3, 5],
    [2, 3],
    [0, 2],
    [0, 1],
  ]);
  assert.equal(computeEdges(g.nodes).length, 7, 'before filter_deadends');
  assert.is(g.nodes[4]!.metadata[META.deadendReason], 'broken');
});

test('nodes: age_index counts skipped releases; payload is the last digest-ref of the arch; metadata as upstream writes it', () => {
  const releases = releasesDoc([
    { v: '1', arches: ['x86_64'] },
    { v: '2', arches: ['aarch64'] },
    '3',
    { v: '4', arches: ['x86_64'] },
  ]);
  delete releases.releases[3]!['oci-images']; // no oci-images: skipped (graph.rs:54-56)
  releases.releases[2]!['oci-images']!.unshift({ architecture: 'x86_64', image: repo, 'digest-ref': '' });
  releases.releases[2]!['oci-images']!.push({
    architecture: 'x86_64',
    image: repo,
    'digest-ref': ref('3b', 'x'),
  });
  const updates = updatesDoc([
    ['1', { barrier: { reason: '' } }],
    ['3', { rollout: { start_epoch: 1_800_000_000, start_percentage: 0.25, duration_minutes: 2880 } }],
    // A second entry of the same version: applied after the first (graph.rs:164-167).
    ['3', { deadend: { reason: 'later entry' } }],
  ]);
  const g = graphFromMetadata(releases, updates, 'x86_64');
  assert.equal(
    g.nodes.map((n) => [n.version, n.metadata[META.ageIndex]]),
    [
      ['1', '0'],
      ['3', '2'],
    ],
  );
  assert.is(g.nodes[1]!.payload, ref('3b', 'x'));
  assert.equal(g.nodes[0]!.metadata, {
    [META.ageIndex]: '0',
    [META.scheme]: 'oci',
    [META.barrier]: 'true',
    [META.barrierReason]: 'generic',
  });
  assert.equal(g.nodes[1]!.metadata, {
    [META.ageIndex]: '2',
    [META.scheme]: 'oci',
    [META.deadend]: 'true',
    [META.deadendReason]: 'later entry',
    [META.rollout]: 'true',
    [META.startEpoch]: '1800000000',
    [META.startValue]: '0.25',
    [META.duration]: '2880',
  });
  assert.equal(Object.keys(g.nodes[1]!), ['version', 'metadata', 'payload'], 'upstream field order');
  // Fedora CoreOS's finished form {"start_percentage": 1.0}: only the keys present are written,
  // and 1.0 as Rust displays it.
  const fin = graphFromMetadata(
    releasesDoc(['1']),
    {
      ...updatesDoc([]),
      releases: [{ version: '1', metadata: { rollout: { start_percentage: 1 } } as never }],
    },
    'aarch64',
  );
  assert.equal(fin.nodes[0]!.metadata, {
    [META.ageIndex]: '0',
    [META.scheme]: 'oci',
    [META.rollout]: 'true',
    [META.startValue]: '1',
  });
  assert.equal(problems('graph', g), []);
});

// --- throttling -----------------------------------------------------------------------------------

const node = (metadata: Record<string, string>): GraphNode => ({ version: 'v', payload: 'p', metadata });

test('throttling: the rollout curve at several times, start values and durations, as policy.rs computes it', () => {
  const S = 1_800_000_000;
  const p = rolloutParams(
    node({
      [META.rollout]: 'true',
      [META.startEpoch]: String(S),
      [META.startValue]: '0.2',
      [META.duration]: '100',
    }),
    0,
  )!;
  assert.is(throttlingAt(p, S - 1), 0, 'nothing before the start');
  assert.is(throttlingAt(p, S), 0.2, 'start_value at the start');
  // start_value + rate * elapsed, rate = (1 - start_value) / (end - start) (policy.rs:58-66).
  assert.is(throttlingAt(p, S + 3000), 0.2 + (0.8 / 6000) * 3000);
  assert.ok(Math.abs(throttlingAt(p, S + 3000) - 0.6) < 1e-12);
  assert.is(
    throttlingAt(p, S + 6000),
    0.2 + (0.8 / 6000) * 6000,
    'at the end: still the formula (now > end is 1)',
  );
  assert.is(throttlingAt(p, S + 6001), 1);
  // No duration: no progress past start_value (policy.rs:68-74); none parses as u64 either.
  for (const d of [undefined, 'soon', '-5']) {
    const q = rolloutParams(
      node({
        [META.rollout]: 'true',
        [META.startEpoch]: String(S),
        [META.startValue]: '0.5',
        ...(d && { [META.duration]: d }),
      }),
      0,
    )!;
    assert.is(throttlingAt(q, S - 1), 0);
    assert.is(throttlingAt(q, S + 10 * 365 * 86400), 0.5, String(d));
  }
  // Duration 0 counts as one minute (m.max(1), :53).
  const z = rolloutParams(
    node({
      [META.rollout]: 'true',
      [META.startEpoch]: String(S),
      [META.startValue]: '0',
      [META.duration]: '0',
    }),
    0,
  )!;
  assert.is(throttlingAt(z, S + 30), 0.5);
  assert.is(throttlingAt(z, S + 61), 1);
  // Defaults: start_epoch 0 and start_value 0 when absent or not numbers (:37-47).
  const d = rolloutParams(node({ [META.rollout]: 'true', [META.startEpoch]: 'yesterday' }), 0)!;
  assert.equal([d.startEpoch, d.startValue, d.minutes], [0, 0, undefined]);
  assert.is(rolloutParams(node({ [META.startEpoch]: '1' }), 0), undefined, 'no rollout key, no rollout');
});

test('throttling: an edge into a rollout is hidden exactly while wariness > throttling; then dead-ends filtered', () => {
  const S = 1_800_000_000;
  // 0 plain, 1 rollout 20% -> 100% over 100 minutes, 2 barrier; edges (0,1) then (0,2) (1,2).
  const g = graphFromMetadata(
    releasesDoc(['1', '2', '3']),
    updatesDoc([
      ['2', ro(S, 0.2, 100)],
      ['3', { barrier: { reason: 'b' } }],
    ]),
    'x86_64',
  );
  assert.equal(g.edges, [
    [0, 1],
    [0, 2],
    [1, 2],
  ]);
  const into1 = (w: number, t: number) => clientGraph(g, w, t).edges.some(([, to]) => to === 1);
  assert.is(into1(0, S - 1), true, 'wariness 0 is not > 0');
  assert.is(into1(0.000001, S - 1), false);
  assert.is(into1(0.2, S), true);
  assert.is(into1(0.2000001, S), false);
  assert.is(into1(0.59, S + 3000), true);
  assert.is(into1(0.61, S + 3000), false);
  assert.is(into1(1, S + 6000), true, 'at the end second: the formula, here exactly 1');
  assert.is(into1(1, S + 6001), true);
  assert.is(into1(Number.NaN, S - 1), true, 'NaN > x is false: nothing hidden');
  // Barrier edges are never throttled.
  assert.equal(throttleRollouts(g, 1, S - 1).edges, [
    [0, 2],
    [1, 2],
  ]);
});

/** A small deterministic PRNG (mulberry32). */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random stream: barriers, dead-ends, finished, gradual, paused and future rollouts. */
function randomSite(rand: () => number, n: number, start: number) {
  const versions = Array.from({ length: n }, (_, i) => `${i + 1}`);
  const entries: [string, RolloutControls][] = [];
  for (const v of versions) {
    const c: RolloutControls = {};
    const r = rand();
    if (r < 0.1) c.barrier = { reason: 'b' };
    if (rand() < 0.08) c.deadend = { reason: 'd' };
    if (r > 0.3) {
      const kind = rand();
      if (kind < 0.5) c.rollout = { start_epoch: start - 86400, start_percentage: 1 };
      else if (kind < 0.8)
        c.rollout = {
          start_epoch: start + Math.floor((rand() - 0.5) * 7200),
          start_percentage: Math.floor(rand() * 10) / 10,
          duration_minutes: 1 + Math.floor(rand() * 120),
        };
      else c.rollout = { start_epoch: start + Math.floor((rand() - 0.5) * 7200), start_percentage: rand() };
    }
    if (Object.keys(c).length) entries.push([v, c]);
  }
  return { releases: releasesDoc(versions), updates: updatesDoc(entries) };
}

test('served graph: the precomputed body is exactly clientGraph for random streams, times and warinesses', () => {
  const rand = prng(7);
  const S = 1_800_000_000;
  for (let round = 0; round < 40; round++) {
    const { releases, updates } = randomSite(rand, 5 + Math.floor(rand() * 60), S);
    const g = graphFromMetadata(releases, updates, 'x86_64');
    const served = new ServedGraph(g, 4);
    for (let k = 0; k < 25; k++) {
      const w = k % 5 === 0 ? computeWariness(undefined, `node-${round}-${k}`) : rand();
      const t = S + Math.floor((rand() - 0.5) * 3 * 7200);
      const body = JSON.parse(served.body(w, t).toString('utf8')) as Graph;
      assert.equal(body, clientGraph(g, w, t), `round ${round} wariness ${w} at ${t}`);
    }
  }
});

// --- the static graph on a site ---------------------------------------------------------------------

test('static graph: the path Zincati asks for under base_url <site>/graph/<stream>/<basearch>/', () => {
  assert.is(staticGraphPath('stable', 'x86_64'), 'graph/stable/x86_64/v1/graph');
  // base_url "https://rocknsm.github.io/rocknsm-coreos/graph/${stream}/${basearch}/" with the
  // variables substituted; Zincati then URL-joins `v1/graph` onto it (formats.md §6).
  const base = 'https://rocknsm.github.io/rocknsm-coreos/graph/stable/x86_64/';
  assert.is(
    new URL('v1/graph', base).href,
    `https://rocknsm.github.io/rocknsm-coreos/${staticGraphPath('stable', 'x86_64')}`,
  );
});

test('static graph: the most wary client at publish time: finished rollouts and barriers only', () => {
  const S = NOW_S;
  const releases = releasesDoc(['1', '2', '3', '4', '5']);
  const updates = updatesDoc([
    ['2', ro(S - 7200, 0, 60)], // finished an hour ago
    ['3', ro(S, 1)], // immediate, published now
    ['4', { barrier: { reason: 'key' } }],
    ['5', ro(S - 60, 0.5, 120)], // half way: not in the static file
  ]);
  const g = staticGraph(releases, updates, 'x86_64', S);
  assert.is(g.nodes.length, 5, 'every node stays, so every machine finds itself');
  // Upstream edges: 4 -> (3,4); 2 -> (0,2) (1,2); 1 -> (0,1); barrier 3: (0,3) (1,3) (2,3).
  // Throttled at wariness 1: the edge into 4 (in progress) goes.
  assert.equal(g.edges, [
    [0, 2],
    [1, 2],
    [0, 1],
    [0, 3],
    [1, 3],
    [2, 3],
  ]);
  assert.equal(g, clientGraph(graphFromMetadata(releases, updates, 'x86_64'), 1, S));
  // Once that rollout is over, a later write of the file includes it.
  assert.ok(staticGraph(releases, updates, 'x86_64', S + 121 * 60).edges.some(([, to]) => to === 4));
});

/** A build of `version` with only the OCI archive (planSite reads no file). */
const build = (version: string, arch: 'x86_64' | 'aarch64'): ArchBuild => ({
  arch,
  dir: `/nonexistent/${version}/${arch}`,
  meta: {
    buildid: version,
    'coreos-assembler.basearch': arch,
    images: {
      ostree: { path: `r-${version}-ostree.${arch}.ociarchive`, sha256: sha(`${version}${arch}`), size: 1 },
    },
    'rocknsm.image-digest': `sha256:${sha(`${version} ${arch}`)}`,
  },
});

function plan(
  version: string,
  existing: { releases?: ReleasesDoc; updates?: UpdatesDoc },
  now = NOW,
  controls?: ReturnType<typeof parseControls>,
) {
  return planSite({
    stream: 'stable',
    version,
    requireArches: ['x86_64', 'aarch64'],
    builds: [build(version, 'x86_64'), build(version, 'aarch64')],
    baseUrl: 'https://sensors.example/rock',
    imageRepo: repo,
    existing: { files: {}, ...existing },
    now,
    controls,
    signed: true,
  });
}
const doc = <T>(p: ReturnType<typeof planSite>, path: string) =>
  p.documents.find((d) => d.path === path)!.json as T;

test('publish: every release gets an immediate rollout and is an update target; re-runs converge', () => {
  const p1 = plan('41.20261122.3.0', {});
  const u1 = doc<UpdatesDoc>(p1, 'updates/stable.json');
  assert.equal(u1.releases, [
    { version: '41.20261122.3.0', metadata: { rollout: { start_epoch: NOW_S, start_percentage: 1 } } },
  ]);
  const r1 = doc<ReleasesDoc>(p1, 'prod/streams/stable/releases.json');
  const p2 = plan('41.20261123.3.0', { releases: r1, updates: u1 }, NOW + 86_400_000);
  const u2 = doc<UpdatesDoc>(p2, 'updates/stable.json');
  // The first release's rollout is done and the second's is in force: the first entry goes, as
  // Fedora CoreOS's rollout.py cleans (cleanUpdates); machines on it still update.
  assert.equal(u2.releases, [
    {
      version: '41.20261123.3.0',
      metadata: { rollout: { start_epoch: NOW_S + 86_400, start_percentage: 1 } },
    },
  ]);
  const g = doc<Graph>(p2, 'graph/stable/x86_64/v1/graph');
  assert.equal(g.edges, [[0, 1]], 'machines on the first release update to the second');
  for (const d of p2.documents) assert.equal(problems(d.kind, d.json), [], d.path);
  // The same publish again a minute later: updates unchanged (the same object, last-modified too).
  const r2 = doc<ReleasesDoc>(p2, 'prod/streams/stable/releases.json');
  const again = plan('41.20261123.3.0', { releases: r2, updates: u2 }, NOW + 86_460_000);
  assert.is(doc<UpdatesDoc>(again, 'updates/stable.json'), u2);
  // A legacy entry without a rollout (an older publish wrote `{}`) gets one on the next publish
  // of that version; a barrier given alone keeps a rollout beside it (as rollout.py writes them).
  const legacy = upsertUpdates(updatesDoc([['1', {}]]), 'stable', '1', undefined, NOW, ['1']);
  assert.equal(legacy.releases[0]!.metadata, { rollout: { start_epoch: NOW_S, start_percentage: 1 } });
  const barrier = upsertUpdates(legacy, 'stable', '1', parseControls({ barrier: 'key' }), NOW + 5000, ['1']);
  assert.equal(barrier.releases[0]!.metadata, {
    barrier: { reason: 'key' },
    rollout: { start_epoch: NOW_S, start_percentage: 1 },
  });
});

test('rollout controls: an open start is kept on a re-run, a changed rollout starts now; --clear is immediate', () => {
  const gradual = parseControls({ rolloutHours: '24' });
  assert.equal(gradual, { rollout: { start_percentage: 0, duration_minutes: 1440 } });
  const a = upsertUpdates(undefined, 'stable', '1', gradual, NOW, ['1']);
  assert.equal(a.releases[0]!.metadata, {
    rollout: { start_epoch: NOW_S, start_percentage: 0, duration_minutes: 1440 },
  });
  assert.is(
    upsertUpdates(a, 'stable', '1', parseControls({ rolloutHours: '24' }), NOW + 3_600_000, ['1']),
    a,
  );
  const b = upsertUpdates(a, 'stable', '1', parseControls({ rolloutHours: '48' }), NOW + 3_600_000, ['1']);
  assert.equal(b.releases[0]!.metadata.rollout, {
    start_epoch: NOW_S + 3600,
    start_percentage: 0,
    duration_minutes: 2880,
  });
  const at = parseControls({
    rolloutHours: '1.5',
    rolloutStart: '2026-12-01T00:00:00Z',
    rolloutStartPercentage: '0.1',
  });
  assert.equal(at, {
    rollout: { start_epoch: Date.UTC(2026, 11, 1) / 1000, start_percentage: 0.1, duration_minutes: 90 },
  });
  assert.equal(
    parseControls({ rolloutStartPercentage: '0' }),
    { rollout: { start_percentage: 0 } },
    'held at 0: paused',
  );
  assert.equal(parseControls({ rolloutStart: '1800000000' }), {
    rollout: { start_epoch: 1_800_000_000, start_percentage: 1 },
  });
  // --clear asks for an immediate rollout and nothing else.
  const cleared = upsertUpdates(b, 'stable', '1', { rollout: { start_percentage: 1 } }, NOW + 7_200_000, [
    '1',
  ]);
  assert.equal(cleared.releases[0]!.metadata, {
    rollout: { start_epoch: NOW_S + 7200, start_percentage: 1 },
  });
});

// --- bad input ------------------------------------------------------------------------------------

test('bad input: command-line rollout values are usage errors naming the option (exit 64)', () => {
  const usage = (v: Parameters<typeof parseControls>[0], re: RegExp) =>
    assert.throws(
      () => parseControls(v),
      (e: unknown) => e instanceof PipelineError && e.exitCode === 64 && re.test(e.message),
    );
  usage({ rolloutHours: '0' }, /--rollout-hours must be a number of hours > 0/);
  usage({ rolloutHours: '-3' }, /--rollout-hours/);
  usage({ rolloutHours: '0.001' }, /at least one minute/);
  usage({ rolloutStartPercentage: '50' }, /fraction of machines, 0\.\.1.*for 50% give 0\.5/);
  usage({ rolloutStartPercentage: '-0.1' }, /--rollout-start-percentage/);
  usage({ rolloutStart: 'tomorrow' }, /--rollout-start is not a time/);
  usage({ rolloutStart: '2026-11-22T12:00:00' }, /with a zone/);
  usage({ barrier: ' ' }, /--barrier needs a reason/);
});

test('bad input: the CLI reports every option problem at once, exit 64, no stack trace, nothing written', () => {
  const site = join(work, 'cli-site');
  mkdirSync(join(site, 'prod/streams/stable'), { recursive: true });
  writeFileSync(join(site, 'prod/streams/stable/releases.json'), JSON.stringify(releasesDoc(['1'])));
  const r = shResult(process.execPath, [
    join(repoRoot, 'bin/rock-image.js'),
    'rollout',
    '--stream',
    'stable',
    '--version',
    '1',
    '--site',
    site,
    '--rollout-hours=-3',
    '--rollout-start',
    'tomorrow',
    '--rollout-start-percentage',
    '50',
  ]);
  assert.is(r.code, 64, r.stderr);
  for (const o of ['--rollout-hours', '--rollout-start is not a time', '--rollout-start-percentage'])
    assert.match(r.stderr, o);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.not.ok(existsSync(join(site, 'updates')) || existsSync(join(site, 'graph')));
});

const ctxAt = (cwd: string, now = NOW): Context => ({
  root: repoRoot,
  cwd,
  env: {},
  now: () => now,
  log: quiet,
  run: (() => {
    throw new Error('no commands here');
  }) as never,
  stdout: { write: () => true },
  cores: 2,
});

test('bad input: a broken updates file is refused at its lines (exit 65) and nothing is written', async () => {
  const site = join(work, 'bad-site');
  mkdirSync(join(site, 'prod/streams/stable'), { recursive: true });
  mkdirSync(join(site, 'updates'), { recursive: true });
  writeFileSync(
    join(site, 'prod/streams/stable/releases.json'),
    JSON.stringify(releasesDoc(['1', '2', '3']), null, 2),
  );
  const text = `{
  "stream": "stable",
  "metadata": { "last-modified": "2026-01-01T00:00:00Z" },
  "releases": [
    { "version": "1", "metadata": { "rollout": { "start_epoch": 1800000000, "start_percentage": 1 } } },
    { "version": "2", "metadata": { "rollout": { "start_epoch": 1800000000, "start_percentage": 0, "duration_minutes": 0 } } },
    { "version": "3", "metadata": { "rollout": { "start_epoch": "tomorrow", "start_percentage": 50 } } }
  ]
}
`;
  const file = join(site, 'updates/stable.json');
  writeFileSync(file, text);
  const lineOf = (needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
  const colOf = (needle: string, key: string) =>
    text.split('\n')[lineOf(needle) - 1]!.indexOf(key) + key.length + 3;
  try {
    await rollout.run(ctxAt(work), { stream: 'stable', version: '1', site: 'bad-site', barrier: 'key' }, []);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, PipelineError);
    const err = e as PipelineError;
    assert.is(err.exitCode, 65);
    const msg = err.message;
    assert.match(msg, `${file}: 3 problems; nothing written`);
    assert.match(
      msg,
      `${file}:${lineOf('"duration_minutes": 0')}:${colOf('"duration_minutes": 0', '"duration_minutes"')}: rollout at /releases/1/metadata/rollout/duration_minutes: 2: a rollout lasts at least one minute`,
    );
    assert.match(
      msg,
      `${file}:${lineOf('"tomorrow"')}:${colOf('"tomorrow"', '"start_epoch"')}: rollout at /releases/2/metadata/rollout/start_epoch: 3: start_epoch is not a time`,
    );
    assert.match(
      msg,
      /start_percentage is the fraction of machines at the start, 0\.\.1 \(for 50% write 0\.5\) \(got 50\)/,
    );
  }
  assert.is(readFileSync(file, 'utf8'), text, 'updates untouched');
  assert.not.ok(existsSync(join(site, 'graph')), 'no graph written');
  // Not JSON at all: the line and column of the syntax error.
  writeFileSync(file, '{\n  "stream": "stable",\n  "releases": [,]\n}\n');
  await rollout.run(ctxAt(work), { stream: 'stable', version: '1', site: 'bad-site', clear: true }, []).then(
    () => assert.unreachable(),
    (e) => assert.match(String(e.message), new RegExp(`^${file}:3:\\d+: not JSON`)),
  );
  // From publish (the document already parsed): the file and the pointer.
  assert.throws(
    () => plan('4', { updates: updatesDoc([['1', ro(1, 0, 0)]]) }),
    (e: unknown) =>
      e instanceof PipelineError &&
      e.exitCode === 65 &&
      e.message.includes('updates/stable.json: rollout at /releases/0/metadata/rollout/duration_minutes'),
  );
});

test('rollout command: writes the entry and the static graphs; the same options again change nothing', async () => {
  const site = join(work, 'good-site');
  mkdirSync(join(site, 'prod/streams/stable'), { recursive: true });
  writeFileSync(
    join(site, 'prod/streams/stable/releases.json'),
    JSON.stringify(releasesDoc(['1', '2']), null, 2),
  );
  const values = { stream: 'stable', version: '2', site: 'good-site', 'rollout-hours': '2' };
  assert.is(await rollout.run(ctxAt(work), values, []), 0);
  const updates = readFileSync(join(site, 'updates/stable.json'), 'utf8');
  assert.equal(JSON.parse(updates).releases, [
    {
      version: '2',
      metadata: { rollout: { start_epoch: NOW_S, start_percentage: 0, duration_minutes: 120 } },
    },
  ]);
  const graph = JSON.parse(readFileSync(join(site, 'graph/stable/aarch64/v1/graph'), 'utf8')) as Graph;
  assert.equal(graph.edges, [], 'the rollout is in progress: not in the static file');
  assert.is(await rollout.run(ctxAt(work, NOW + 60_000), values, []), 0);
  assert.is(readFileSync(join(site, 'updates/stable.json'), 'utf8'), updates, 'converged');
  // Three hours later: the rollout is over; rewriting (here --clear) puts it in the static file.
  await rollout.run(
    ctxAt(work, NOW + 3 * 3_600_000),
    { stream: 'stable', version: '2', site: 'good-site', clear: true },
    [],
  );
  const after = JSON.parse(readFileSync(join(site, 'graph/stable/x86_64/v1/graph'), 'utf8')) as Graph;
  assert.equal(after.edges, [[0, 1]]);
});

// --- the service ----------------------------------------------------------------------------------

let clock = NOW;
const S = NOW_S;

/** A site with stable (both arches, a barrier, a dead-end, a gradual rollout) and testing (x86_64). */
function writeSite(dir: string) {
  const put = (rel: string, d: unknown) => {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), `${JSON.stringify(d, null, 2)}\n`);
  };
  put('prod/streams/stable/releases.json', releasesDoc(['1', '2', '3', '4']));
  put(
    'updates/stable.json',
    updatesDoc([
      ['1', done],
      ['2', { ...done, deadend: { reason: 'broken' } }],
      ['3', { ...done, barrier: { reason: 'key' } }],
      ['4', ro(S, 0, 100)],
    ]),
  );
  put(
    'prod/streams/testing/releases.json',
    releasesDoc(
      [
        { v: '10', arches: ['x86_64'] },
        { v: '11', arches: ['x86_64'] },
      ],
      'testing',
    ),
  );
  put(
    'updates/testing.json',
    updatesDoc(
      [
        ['10', done],
        ['11', done],
      ],
      'testing',
    ),
  );
}

const get = async (url: string, init?: RequestInit) => {
  const r = await fetch(url, init);
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
};
const zincatiQuery = (stream: string, basearch: string, extra = '') =>
  `/v1/graph?basearch=${basearch}&os_version=1&group=default&node_uuid=e0f3745b108f471cbd4883c6fbed8cdd&platform=metal&stream=${stream}&os_checksum=${encodeURIComponent(ref('1', basearch))}&oci=true${extra}`;

test('service: graphs for two streams and both arches over real HTTP, throttled per request', async () => {
  const site = join(work, 'svc-site');
  writeSite(site);
  const svc = await startGraphService({ site, host: '127.0.0.1', port: 0, now: () => clock, log: quiet });
  try {
    clock = NOW + 30 * 60_000; // the stable rollout of 4 is at 0.3
    for (const [stream, arch] of [
      ['stable', 'x86_64'],
      ['stable', 'aarch64'],
      ['testing', 'x86_64'],
    ] as const) {
      const r = await get(`${svc.url}${zincatiQuery(stream, arch)}`);
      assert.is(r.status, 200, r.body);
      assert.is(r.type, 'application/json');
      const docs = {
        releases: JSON.parse(readFileSync(join(site, `prod/streams/${stream}/releases.json`), 'utf8')),
        updates: JSON.parse(readFileSync(join(site, `updates/${stream}.json`), 'utf8')),
      };
      const want = clientGraph(
        graphFromMetadata(docs.releases, docs.updates, arch),
        computeWariness(undefined, 'e0f3745b108f471cbd4883c6fbed8cdd'),
        Math.floor(clock / 1000),
      );
      assert.equal(JSON.parse(r.body), want, `${stream} ${arch}`);
    }
    // stable: rollout 4 at 0.3; this node's wariness 0.653 does not see it; wariness 0.2 does.
    const into4 = async (extra: string) =>
      (
        JSON.parse((await get(`${svc.url}${zincatiQuery('stable', 'x86_64', extra)}`)).body) as Graph
      ).edges.some(([, to]) => to === 3);
    assert.is(await into4(''), false);
    assert.is(await into4('&rollout_wariness=0.2'), true);
    assert.is(await into4('&rollout_wariness=0.31'), false);
    clock = NOW + 101 * 60_000;
    assert.is(await into4(''), true, 'the rollout is over');
  } finally {
    await svc.close();
  }
});

test('service: 400 for a bad scope, 404 elsewhere, 405 for other methods, /healthz', async () => {
  const site = join(work, 'svc-codes');
  writeSite(site);
  const svc = await startGraphService({ site, host: '127.0.0.1', port: 0, now: () => NOW, log: quiet });
  try {
    const bad = [
      '/v1/graph?stream=stable&oci=true',
      '/v1/graph?basearch=&stream=stable&oci=true',
      '/v1/graph?basearch=x86_64&oci=true',
      '/v1/graph?basearch=x86_64&stream=&oci=true',
      '/v1/graph?basearch=x86_64&stream=nosuch&oci=true',
      '/v1/graph?basearch=x86_64&stream=../updates&oci=true',
      '/v1/graph?basearch=aarch64&stream=testing&oci=true',
      '/v1/graph?basearch=s390x&stream=stable&oci=true',
      '/v1/graph?basearch=x86_64&stream=stable',
      '/v1/graph?basearch=x86_64&stream=stable&oci=false',
      '/v1/graph?basearch=x86_64&stream=stable&oci=1',
      '/v1/graph?basearch=x86_64&stream=stable&stream=testing&oci=true',
    ];
    for (const p of bad) {
      const r = await get(`${svc.url}${p}`);
      assert.is(r.status, 400, p);
      assert.is(r.type, 'application/json');
      assert.type(JSON.parse(r.body).value, 'string');
    }
    for (const p of ['/', '/v1/graphs', '/v1/graph/', '/healthz/v1'])
      assert.is((await get(`${svc.url}${p}`)).status, 404, p);
    // Under a prefix, such as the static graph's path: the same answer.
    const prefixed = await get(`${svc.url}/graph/stable/x86_64${zincatiQuery('stable', 'x86_64')}`);
    assert.is(prefixed.status, 200);
    assert.is(prefixed.body, (await get(`${svc.url}${zincatiQuery('stable', 'x86_64')}`)).body);
    assert.is((await get(`${svc.url}${zincatiQuery('stable', 'x86_64')}`, { method: 'POST' })).status, 405);
    const h = await get(`${svc.url}/healthz`);
    assert.is(h.status, 200);
    assert.equal(Object.keys(JSON.parse(h.body).streams), ['stable', 'testing']);
    const head = await fetch(`${svc.url}${zincatiQuery('testing', 'x86_64')}`, { method: 'HEAD' });
    assert.is(head.status, 200);
  } finally {
    await svc.close();
  }
});

test('service: a changed updates file is read again; a broken one keeps the last good graph', async () => {
  const site = join(work, 'svc-refresh');
  writeSite(site);
  // The files are looked at again at most every siteRecheckMs (default a second): wait longer.
  const svc = await startGraphService({
    site,
    host: '127.0.0.1',
    port: 0,
    now: () => NOW,
    log: quiet,
    siteRecheckMs: 50,
  });
  const recheck = () => new Promise((r) => setTimeout(r, 60));
  const edges = async () =>
    (JSON.parse((await get(`${svc.url}${zincatiQuery('testing', 'x86_64')}`)).body) as Graph).edges;
  try {
    assert.equal(await edges(), [[0, 1]]);
    // Release 11 becomes a dead-end target only: written as publish writes, temp file + rename.
    const file = join(site, 'updates/testing.json');
    const next = updatesDoc(
      [
        ['10', done],
        ['11', { ...done, barrier: { reason: 'stop here' } }],
      ],
      'testing',
    );
    writeFileSync(`${file}.tmp`, JSON.stringify(next));
    renameSync(`${file}.tmp`, file);
    await recheck();
    const g = JSON.parse((await get(`${svc.url}${zincatiQuery('testing', 'x86_64')}`)).body) as Graph;
    assert.is(g.nodes[1]!.metadata[META.barrierReason], 'stop here');
    // Broken: the last good documents stay in use, /healthz names the problem and its line.
    writeFileSync(file, JSON.stringify(updatesDoc([['11', ro(1, 2)]], 'testing'), null, 2));
    await recheck();
    const still = JSON.parse((await get(`${svc.url}${zincatiQuery('testing', 'x86_64')}`)).body) as Graph;
    assert.is(still.nodes[1]!.metadata[META.barrierReason], 'stop here');
    const h = JSON.parse((await get(`${svc.url}/healthz`)).body);
    assert.match(h.streams.testing.error, `${file}:`);
    assert.match(h.streams.testing.error, 'start_percentage');
  } finally {
    await svc.close();
  }
  // A broken document stops the start, naming the file and line.
  await startGraphService({ site, host: '127.0.0.1', port: 0, log: quiet }).then(
    () => assert.unreachable(),
    (e) =>
      assert.match(String(e.message), new RegExp(`${join(site, 'updates/testing.json')}:\\d+:\\d+: rollout`)),
  );
});

test('service: --metadata-url fetches the documents over HTTP, refetches, keeps the last good copy', async () => {
  const site = join(work, 'svc-url');
  writeSite(site);
  let broken = false;
  const origin: Server = createServer((req, res) => {
    const p = join(
      site,
      decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/rock\//, ''),
    );
    if (broken) return res.writeHead(500).end();
    if (!p.startsWith(site) || !existsSync(p)) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(readFileSync(p));
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(origin.address() as { port: number }).port}/rock`;
  const svc = await startGraphService({
    metadataUrl: base,
    streams: ['testing'],
    host: '127.0.0.1',
    port: 0,
    now: () => NOW,
    log: quiet,
  });
  try {
    const nodes = async () =>
      (JSON.parse((await get(`${svc.url}${zincatiQuery('testing', 'x86_64')}`)).body) as Graph).nodes.length;
    assert.is(await nodes(), 2);
    writeFileSync(
      join(site, 'prod/streams/testing/releases.json'),
      JSON.stringify(
        releasesDoc(
          [
            { v: '10', arches: ['x86_64'] },
            { v: '11', arches: ['x86_64'] },
            { v: '12', arches: ['x86_64'] },
          ],
          'testing',
        ),
      ),
    );
    assert.is(await nodes(), 2, 'not refetched yet');
    await svc.refresh();
    assert.is(await nodes(), 3);
    broken = true;
    await svc.refresh();
    assert.is(await nodes(), 3, 'last good copy');
    assert.match(JSON.parse((await get(`${svc.url}/healthz`)).body).streams.testing.error, 'HTTP 500');
    assert.is(
      (await get(`${svc.url}${zincatiQuery('stable', 'x86_64')}`)).status,
      400,
      'not a served stream',
    );
  } finally {
    await svc.close();
    origin.close();
  }
});

test('service: `rock-image serve-graph` with plain node; SIGTERM ends it cleanly (exit 0)', async () => {
  const site = join(work, 'svc-cli');
  writeSite(site);
  assert.equal(parseListen('[::1]:8080'), { host: '::1', port: 8080 });
  assert.equal(parseListen(':9'), { host: '0.0.0.0', port: 9 });
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'bin/rock-image.js'), 'serve-graph', '--site', site, '--listen', '127.0.0.1:0'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+)\/v1\/graph/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error(`exited: ${stderr}`)));
  });
  try {
    assert.is((await get(`${url}/healthz`)).status, 200);
    assert.is((await get(`${url}${zincatiQuery('stable', 'aarch64')}`)).status, 200);
  } finally {
    child.kill('SIGTERM');
  }
  assert.is(await exited, 0, stderr);
  assert.match(stderr, 'SIGTERM: closing');
});

test('checkSiteDocText: a document of another stream is refused', () => {
  assert.throws(
    () => checkSiteDocText('releases', JSON.stringify(releasesDoc(['1'], 'testing')), 'r.json', 'stable'),
    /r\.json:\d+:\d+: stream at \/stream: is for stream testing, not stable/,
  );
});

test.run();
