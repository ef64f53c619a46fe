// The Zincati-protocol client (test/world/zincati.ts, written from Zincati's source) over real HTTP
// against `rock-image serve-graph`, for a release sequence with a barrier, a dead-end, a finished,
// a gradual and a paused rollout, at several wariness values and node UUIDs. The expected next
// update of every booted release is worked out below by hand from the upstream rules, not by our
// graph code:
// - edges into every rollout from each release back to the previous barrier, and into every
//   barrier that is not also a rollout from the barrier before it (coreos/fedora-coreos-cincinnati
//   commons/src/graph.rs:127-158 @95388bdf);
// - no edge out of a dead-end (commons/src/policy.rs:6-23);
// - per request, an edge into a rollout is hidden when the client's wariness is above the
//   rollout's throttling: 0 before its start, then start_percentage rising linearly to 1 over
//   duration_minutes, or held at start_percentage without one (policy.rs:26-89);
// - the client takes the target with the highest age_index, if newer than the booted release
//   (coreos/zincati src/cincinnati/mod.rs:302-315 @be76c4aa).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../pipeline/log.ts';
import { clientGraph, computeWariness, graphFromMetadata } from '../../pipeline/publish/graph.ts';
import { startGraphService } from '../../pipeline/publish/graph-service.ts';
import {
  cleanUpdates,
  parseControls,
  type ReleasesDoc,
  type RolloutControls,
  type UpdatesDoc,
  upsertUpdates,
} from '../../pipeline/publish/site.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { checkForUpdate, formatWariness, nextUpdate, type ZincatiIdentity } from '../world/zincati.ts';

const work = join(repoRoot, '.cache', 'publish', `zincati-service-${process.pid}`);
const quiet = createLogger({ mode: 'plain', out: { write: () => true } });
const repo = 'ghcr.io/rocknsm/rocknsm-coreos';
const hex = (v: string, a: string) =>
  [...`${v}${a}`.padEnd(64, '0')].map((c) => c.charCodeAt(0).toString(16).slice(-1)).join('');
const digest = (v: string, a: string) => `sha256:${hex(v, a)}`;
const ARCHES = ['x86_64', 'aarch64'] as const;
const T0 = Date.UTC(2026, 10, 1) / 1000; // first publish, seconds
const NOW_S = T0 + 30 * 86400; // the clock of every request
const DAY = 86400;

// The sequence: A, B (barrier), C, D (found broken: dead-end), E, F (gradual rollout, at 0.5 at
// NOW: started 2 h before over 4 h from 0), G (paused at 0: only a client of wariness 0 sees it).
const VERSIONS = [
  '44.20261101.3.0',
  '44.20261103.3.0',
  '44.20261105.3.0',
  '44.20261107.3.0',
  '44.20261109.3.0',
  '44.20261111.3.0',
  '44.20261113.3.0',
];
const [A, B, C, D, E, F, G] = VERSIONS as [string, string, string, string, string, string, string];

const releases: ReleasesDoc = {
  note: '',
  stream: 'stable',
  metadata: { 'last-modified': '2026-11-13T00:00:00Z' },
  releases: VERSIONS.map((v) => ({
    version: v,
    metadata: `https://sensors.example/${v}/release.json`,
    commits: [],
    'oci-images': ARCHES.map((a) => ({
      architecture: a,
      image: repo,
      'digest-ref': `${repo}@${digest(v, a)}`,
    })),
  })),
};

/** updates/stable.json as an operator may write it by hand: every entry kept. */
const handWritten: UpdatesDoc = {
  stream: 'stable',
  metadata: { 'last-modified': '2026-11-13T00:00:00Z' },
  releases: (
    [
      [A, { rollout: { start_epoch: T0, start_percentage: 1 } }],
      [
        B,
        {
          barrier: { reason: 'https://sensors.example/key-rotation' },
          rollout: { start_epoch: T0 + 2 * DAY, start_percentage: 1 },
        },
      ],
      [C, { rollout: { start_epoch: T0 + 4 * DAY, start_percentage: 1 } }],
      [
        D,
        {
          deadend: { reason: 'https://sensors.example/broken' },
          rollout: { start_epoch: T0 + 6 * DAY, start_percentage: 1 },
        },
      ],
      [E, { rollout: { start_epoch: T0 + 8 * DAY, start_percentage: 0, duration_minutes: 60 } }],
      [F, { rollout: { start_epoch: NOW_S - 7200, start_percentage: 0, duration_minutes: 240 } }],
      [G, { rollout: { start_epoch: NOW_S - 60, start_percentage: 0 } }],
    ] as [string, RolloutControls][]
  ).map(([version, metadata]) => ({ version, metadata })),
};

/**
 * The same stream as publish, promote and `rollout` write it (upsertUpdates, which cleans as
 * Fedora CoreOS's rollout.py does): each release published with an immediate rollout, then the
 * controls of the sequence.
 */
function published(): UpdatesDoc {
  let doc: UpdatesDoc | undefined;
  const step = (v: string, controls: ReturnType<typeof parseControls> | undefined, seconds: number) => {
    doc = upsertUpdates(doc, 'stable', v, controls, seconds * 1000, VERSIONS);
  };
  step(A, undefined, T0);
  step(B, parseControls({ barrier: 'https://sensors.example/key-rotation' }), T0 + 2 * DAY);
  step(C, undefined, T0 + 4 * DAY);
  step(D, undefined, T0 + 6 * DAY);
  step(E, parseControls({ rolloutHours: '1' }), T0 + 7 * DAY);
  // D found broken a day later: a dead-end.
  step(D, parseControls({ deadend: 'https://sensors.example/broken' }), T0 + 8 * DAY);
  step(F, parseControls({ rolloutHours: '4', rolloutStartPercentage: '0' }), NOW_S - 7200);
  step(G, parseControls({ rolloutStartPercentage: '0' }), NOW_S - 60);
  return doc!;
}

/**
 * The next update by the upstream rules, worked out by hand for this sequence, by the client's
 * wariness w. Edges (graph.rs): into B (a barrier and a rollout: rollout edges, from 0) from A;
 * into C from B; into D from B, C; into E from B, C, D; into F from B..E; into G from B..F. None
 * leaves D (dead-end). Throttling at NOW: A-E finished (1), F 0.5, G 0. Hidden when w > throttling.
 */
function expected(booted: string, w: number): string | undefined {
  const best = (...targets: [string, number][]) => targets.find(([, t]) => !(w > t))?.[0];
  switch (booted) {
    case A:
      return B; // the barrier, whatever the wariness
    case B:
    case C:
      return best([G, 0], [F, 0.5], [E, 1]);
    case D:
      return undefined; // a dead-end: no edges out
    case E:
      return best([G, 0], [F, 0.5]);
    case F:
      return best([G, 0]);
    default:
      return undefined; // G: nothing newer
  }
}

function writeSite(dir: string, updates: UpdatesDoc) {
  for (const [rel, doc] of [
    ['prod/streams/stable/releases.json', releases],
    ['updates/stable.json', updates],
  ] as const) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), `${JSON.stringify(doc, null, 2)}\n`);
  }
}

// Node UUIDs (32 lowercase hex digits, as Zincati sends them) chosen so that their hashed
// wariness (computeWariness, checked against SipHash-1-3 test vectors in graph.test.ts) falls on
// both sides of F's throttling; asserted below, so the choice cannot silently go stale.
const UUIDS = [
  'e0f3745b108f471cbd4883c6fbed8cdd',
  '0b1a6f3c2d4e4f5a8b9c0d1e2f3a4b5c',
  '7c2e9a14d3b84f0e9a6c5b4d3e2f1a09',
  'a1b2c3d4e5f60718293a4b5c6d7e8f90',
  'ffeeddccbbaa99887766554433221100',
  '1234567890abcdef1234567890abcdef',
];
type Who = { label: string; uuid: string; rolloutWariness?: number; w: number };
const clients: Who[] = [
  // Zincati sends rollout_wariness with six decimals (formatWariness): 0.500001 is the least it
  // can send above 0.5, and the server compares what it reads.
  ...[0, 0.25, 0.5, 0.500001, 0.5000004, 0.75, 1].map((rw) => ({
    label: `rollout_wariness=${rw}`,
    uuid: UUIDS[0]!,
    rolloutWariness: rw,
    w: Number(formatWariness(rw)),
  })),
  ...UUIDS.map((uuid) => ({ label: `node_uuid=${uuid}`, uuid, w: computeWariness(undefined, uuid) })),
];

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('the node UUIDs hash to warinesses on both sides of the gradual rollout', () => {
  const hashed = clients.filter((c) => c.rolloutWariness === undefined).map((c) => c.w);
  assert.ok(hashed.some((w) => w > 0 && w <= 0.5) && hashed.some((w) => w > 0.5), hashed.join(' '));
});

test('cleaned as publish writes it: completed rollouts before the last one go, barrier and dead-end stay', () => {
  const doc = published();
  assert.equal(
    doc.releases.map((r) => [r.version, Object.keys(r.metadata).sort()]),
    [
      [B, ['barrier']],
      [D, ['deadend']],
      [E, ['rollout']],
      [F, ['rollout']],
      [G, ['rollout']],
    ],
  );
  // E's hour ran out days ago: completed, as rollout.py turns a stale rollout into 1.0.
  assert.equal(doc.releases[2]!.metadata.rollout, { start_epoch: T0 + 7 * DAY, start_percentage: 1 });
  assert.equal(cleanUpdates(doc.releases, NOW_S, VERSIONS), doc.releases, 'cleaning again changes nothing');
});

for (const [name, updates] of [
  ['written by hand, every entry kept', () => handWritten],
  ['as publish, promote and rollout write it (cleaned)', published],
] as const) {
  test(`over HTTP, ${name}: every booted release, arch and client gets the upstream rules' next update`, async () => {
    const site = join(work, name.split(' ')[0]!);
    writeSite(site, updates());
    const svc = await startGraphService({
      site,
      host: '127.0.0.1',
      port: 0,
      now: () => NOW_S * 1000,
      log: quiet,
    });
    let checks = 0;
    const seen = new Set<string | undefined>();
    try {
      for (const basearch of ARCHES)
        for (const c of clients)
          for (const v of VERSIONS) {
            const identity: ZincatiIdentity = {
              basearch,
              stream: 'stable',
              platform: 'metal',
              nodeUuid: c.uuid,
              booted: { version: v, image: `${repo}:stable`, digest: digest(v, basearch) },
            };
            const got = await checkForUpdate(`${svc.url}/`, identity, {
              ...(c.rolloutWariness !== undefined && { rolloutWariness: c.rolloutWariness }),
            });
            if (got.reason === 'error') throw got.error;
            const want = expected(v, c.w);
            assert.is(got.next?.version, want, `${basearch} ${c.label} (w=${c.w}) booted ${v}`);
            if (want)
              assert.is(
                got.next!.payload,
                `${repo}@${digest(want, basearch)}`,
                `${basearch} payload of ${want}`,
              );
            else assert.ok(got.reason === 'no-update-target', `${v}: ${got.reason}`);
            checks++;
            seen.add(want);
          }
      // A release the graph does not list: Zincati logs it and stays.
      const stranger = await checkForUpdate(`${svc.url}/`, {
        basearch: 'x86_64',
        stream: 'stable',
        platform: 'metal',
        nodeUuid: UUIDS[0]!,
        booted: { version: '44.20261030.3.0', image: `${repo}:stable`, digest: digest('nope', 'x86_64') },
      });
      assert.is(stranger.reason, 'not-in-graph');
    } finally {
      await svc.close();
    }
    assert.is(checks, ARCHES.length * clients.length * VERSIONS.length);
    assert.equal([...seen].sort(), [B, E, F, G, undefined].sort(), 'every kind of answer occurs');
  });
}

test('cleaning never changes a next update: random streams, every node, every wariness', () => {
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let round = 0; round < 200; round++) {
    const n = 2 + Math.floor(rand() * 14);
    const versions = Array.from({ length: n }, (_, i) => `44.${20261100 + i}.3.0`);
    const rel: ReleasesDoc = {
      ...releases,
      releases: versions.map((v) => ({
        version: v,
        metadata: `https://sensors.example/${v}/release.json`,
        commits: [],
        'oci-images': [
          { architecture: 'x86_64', image: repo, 'digest-ref': `${repo}@${digest(v, 'x86_64')}` },
        ],
      })),
    };
    const entries: UpdatesDoc['releases'] = [];
    for (const [i, v] of versions.entries()) {
      const m: RolloutControls = {};
      const r = rand();
      if (r < 0.5) m.rollout = { start_epoch: NOW_S - Math.floor(rand() * 10 * DAY), start_percentage: 1 };
      else if (r < 0.65)
        m.rollout = {
          start_epoch: NOW_S - 3600,
          start_percentage: Math.round(rand() * 10) / 10,
          duration_minutes: 1 + Math.floor(rand() * 240),
        };
      else if (r < 0.75) m.rollout = { start_epoch: NOW_S + 3600, start_percentage: 1 };
      if (rand() < 0.15) m.barrier = { reason: 'b' };
      if (rand() < 0.1 && i < n - 1) m.deadend = { reason: 'd' };
      if (Object.keys(m).length > 0) entries.push({ version: v, metadata: m });
    }
    const raw: UpdatesDoc = {
      stream: 'stable',
      metadata: { 'last-modified': '2026-11-01T00:00:00Z' },
      releases: entries,
    };
    const clean: UpdatesDoc = { ...raw, releases: cleanUpdates(entries, NOW_S, versions) };
    for (const w of [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1]) {
      const g1 = clientGraph(graphFromMetadata(rel, raw, 'x86_64'), w, NOW_S);
      const g2 = clientGraph(graphFromMetadata(rel, clean, 'x86_64'), w, NOW_S);
      for (const v of versions) {
        const booted = { version: v, image: `${repo}:stable`, digest: digest(v, 'x86_64') };
        assert.is(
          nextUpdate(g2, booted).next?.version,
          nextUpdate(g1, booted).next?.version,
          `round ${round} w=${w} booted ${v}: ${JSON.stringify(entries)}`,
        );
      }
    }
  }
});

test.run();
