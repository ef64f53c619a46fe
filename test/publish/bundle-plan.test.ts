// The bundle plan (publish/bundle.ts), pure: what goes in and every refusal, from hand-made
// release documents and an index as a registry returns it. The real tools run in bundle.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type BundleInput, parseSums, planBundle, renderSums } from '../../pipeline/publish/bundle.ts';

const V = '41.20261201.1.0';
const d = (c: string) => `sha256:${c.repeat(64)}`;
const REPO = 'registry.example/rocknsm/rocknsm-coreos';
const dir = `prod/streams/stable/builds/${V}`;

function input(over: Partial<BundleInput> = {}): BundleInput {
  return {
    stream: 'stable',
    version: V,
    releases: {
      note: '',
      stream: 'stable',
      metadata: { 'last-modified': '2026-12-01T00:00:00Z' },
      releases: [{ version: V, metadata: '', commits: [] }],
    },
    release: {
      release: V,
      stream: 'stable',
      architectures: {
        x86_64: { 'oci-image': { image: REPO, 'digest-ref': `${REPO}@${d('a')}` } },
        aarch64: { 'oci-image': { image: REPO, 'digest-ref': `${REPO}@${d('b')}` } },
      },
    },
    streamArches: ['x86_64', 'aarch64'],
    index: {
      digest: d('c'),
      doc: {
        manifests: [
          { digest: d('a'), platform: { architecture: 'amd64', os: 'linux' } },
          { digest: d('b'), platform: { architecture: 'arm64', os: 'linux' } },
        ],
      },
    },
    metas: {},
    siteFiles: [
      `${dir}/release.json`,
      `${dir}/SHA256SUMS`,
      `${dir}/x86_64/os-metal.x86_64.raw.xz`,
      `${dir}/x86_64/os-metal.x86_64.raw.xz.sig`,
      `${dir}/x86_64/os-ostree.x86_64.ociarchive`,
      `${dir}/x86_64/os-ostree.x86_64.ociarchive.sig`,
      `${dir}/aarch64/os-metal.aarch64.raw.xz`,
    ],
    signatureFiles: [d('a'), d('b'), d('c')].map(
      (x) => `rocknsm/rocknsm-coreos@${x.replace(':', '=')}/signature-1`,
    ),
    ...over,
  };
}

test('everything of both arches: each manifest, the index, their signatures, no .ociarchive', () => {
  const p = planBundle(input());
  assert.equal(p.arches, ['x86_64', 'aarch64']);
  assert.equal(
    p.images.map((i) => [i.src, i.ref, i.all]),
    [
      [`docker://${REPO}@${d('a')}`, 'x86_64', false],
      [`docker://${REPO}@${d('b')}`, 'aarch64', false],
      [`docker://${REPO}@${d('c')}`, V, true],
    ],
  );
  assert.is(p.index.carried, true);
  const dests = p.files.map((f) => f.dest);
  assert.is(dests.filter((f) => f.startsWith('signatures/')).length, 3);
  assert.not.ok(dests.some((f) => f.includes('ociarchive')));
  for (const doc of ['streams/stable.json', 'updates/stable.json', 'graph/stable/aarch64/v1/graph'])
    assert.ok(dests.includes(`site/${doc}`), doc);
});

test('one arch: its files only, and no index (it lists an image the bundle lacks)', () => {
  const p = planBundle(input({ arches: ['x86_64'] }));
  assert.is(p.index.carried, false);
  assert.equal(
    p.images.map((i) => i.ref),
    ['x86_64'],
  );
  assert.not.ok(p.files.some((f) => f.dest.includes('aarch64')));
});

test('pinned service images are carried once by digest; unpinned ones are listed, not carried', () => {
  const meta = {
    buildid: V,
    'coreos-assembler.basearch': 'x86_64',
    images: {},
    'rocknsm.image-digest': d('a'),
    'rocknsm.images': {
      'service/zeek': {
        ref: 'docker.io/zeek/zeek:7',
        image: `docker.io/zeek/zeek@${d('e')}`,
        digest: d('e'),
      },
      'agent/fleet': { ref: 'docker.io/x/fleet:1', image: 'docker.io/x/fleet:1' },
    },
  };
  const p = planBundle(
    input({ metas: { x86_64: meta, aarch64: { ...meta, 'rocknsm.image-digest': d('b') } } }),
  );
  const svc = p.images.filter((i) => i.layout === 'images/services');
  assert.equal(
    svc.map((i) => [i.src, i.ref, i.repository]),
    [[`docker://docker.io/zeek/zeek@${d('e')}`, 'service-zeek', 'docker.io/zeek/zeek']],
  );
  assert.equal(p.unpinned, ['docker.io/x/fleet:1']);
});

const refuses = (over: Partial<BundleInput>, msg: string) => () =>
  assert.throws(
    () => planBundle(input(over)),
    (e: Error) => e.message.includes(msg),
  );

test(
  'refused: a version the site does not list',
  refuses({ version: '41.1' }, '41.1 is not published in stable'),
);
test(
  'refused: the release lacks an arch the stream needs',
  refuses(
    {
      streamArches: ['x86_64', 'aarch64'],
      release: {
        release: V,
        stream: 'stable',
        architectures: { x86_64: input().release!.architectures.x86_64! },
      },
    },
    'has no aarch64 image, which the stream needs',
  ),
);
test('refused: an arch asked for that the release lacks', () => {
  const only = {
    release: V,
    stream: 'stable',
    architectures: { x86_64: input().release!.architectures.x86_64! },
  };
  assert.throws(
    () => planBundle(input({ streamArches: ['x86_64'], release: only, arches: ['aarch64'] })),
    /has no aarch64 \(it has x86_64\)/,
  );
});
test(
  'refused: the index lists other digests than release.json',
  refuses(
    {
      index: {
        digest: d('c'),
        doc: { manifests: [{ digest: d('f'), platform: { architecture: 'amd64', os: 'linux' } }] },
      },
    },
    `digest mismatch for x86_64: the registry's index lists ${d('f')}, release.json ${d('a')}`,
  ),
);
test('refused: meta.json records another image than release.json', () => {
  const meta = {
    buildid: V,
    'coreos-assembler.basearch': 'x86_64',
    images: {},
    'rocknsm.image-digest': d('9'),
  };
  assert.throws(
    () => planBundle(input({ metas: { x86_64: meta } })),
    (e: Error) => e.message.includes(`meta.json rocknsm.image-digest is ${d('9')}`),
  );
});
test(
  'refused: an image without a signature in the lookaside',
  refuses({ signatureFiles: [] }, `${REPO}@${d('a')} has no signature`),
);

test('incremental: the layers both versions have are left out, per arch; the base must be published', () => {
  const V0 = '41.20261130.1.0';
  const old = input().release!;
  const base = {
    ...old,
    release: V0,
    architectures: {
      x86_64: { 'oci-image': { image: REPO, 'digest-ref': `${REPO}@${d('0')}` } },
      aarch64: { 'oci-image': { image: REPO, 'digest-ref': `${REPO}@${d('1')}` } },
    },
  };
  const releases = {
    ...input().releases!,
    releases: [{ version: V0, metadata: '', commits: [] }, ...input().releases!.releases],
  };
  const layers = {
    [d('0')]: [d('2'), d('3')],
    [d('1')]: [d('4'), d('5')],
    [d('a')]: [d('2'), d('6')],
    [d('b')]: [d('4'), d('7')],
  };
  const p = planBundle(input({ releases, since: { version: V0, release: base, layers } }));
  assert.equal(p.since, {
    version: V0,
    manifests: [
      { arch: 'x86_64', digest: d('0') },
      { arch: 'aarch64', digest: d('1') },
    ],
    omitted: [d('2'), d('4')],
  });
  assert.throws(
    () => planBundle(input({ since: { version: V0, release: base, layers } })),
    /--since 41.20261130.1.0 is not published/,
  );
  assert.throws(
    () => planBundle(input({ releases, since: { version: V, release: base, layers } })),
    /is the version bundled/,
  );
});

test('SHA256SUMS: sorted, and a list naming paths outside the bundle is refused by line', () => {
  const text = renderSums([
    { path: 'b', sha256: 'f'.repeat(64) },
    { path: 'a/x', sha256: '0'.repeat(64) },
  ]);
  assert.is(text, `${'0'.repeat(64)}  a/x\n${'f'.repeat(64)}  b\n`);
  assert.equal([...parseSums(text).sums.keys()], ['a/x', 'b']);
  const bad = parseSums(`${'0'.repeat(64)}  ../etc/passwd\n${'0'.repeat(64)}  /etc/shadow\nnonsense\n`);
  assert.equal(bad.problems, [
    'SHA256SUMS:1: path ../etc/passwd leaves the bundle',
    'SHA256SUMS:2: path /etc/shadow leaves the bundle',
    "SHA256SUMS:3: not '<sha256>  <path>'",
  ]);
});

test.run();
