// The publish actions (publish/actions.ts): pure, from a site plan and the image job. The real run
// that executes them and logs each one is test/publish/e2e.test.ts; here their order, subjects and
// the facts the plan can know before anything runs (the index digest).
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256Digest } from '../../pipeline/exec/skopeo.ts';
import { type ImageJob, PHASES, phaseOf, planActions } from '../../pipeline/publish/actions.ts';
import { renderIndex } from '../../pipeline/publish/images.ts';
import { type ArchBuild, planSite, type SiteInput } from '../../pipeline/publish/site.ts';

const VERSION = '41.20261127.3.0';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const mediaType = 'application/vnd.oci.image.manifest.v1+json';

function build(arch: 'x86_64' | 'aarch64'): ArchBuild {
  const n = `rocknsm-coreos-${VERSION}`;
  return {
    arch,
    dir: `/b/${arch}`,
    meta: {
      buildid: VERSION,
      'coreos-assembler.basearch': arch,
      images: {
        ostree: { path: `${n}-ostree.${arch}.ociarchive`, sha256: sha(`o${arch}`), size: 10 },
        metal: { path: `${n}-metal.${arch}.raw.xz`, sha256: sha(`m${arch}`), size: 20 },
      },
      'rocknsm.image-digest': `sha256:${sha(`d${arch}`)}`,
      'rocknsm.artifact-backends': { metal: 'coreos' },
    },
  };
}

const input = (over: Partial<SiteInput> = {}): SiteInput => ({
  stream: 'stable',
  version: VERSION,
  requireArches: ['x86_64', 'aarch64'],
  builds: [build('aarch64'), build('x86_64')],
  baseUrl: 'https://sensors.example/rock',
  imageRepo: 'registry.example/rocknsm/rocknsm-coreos',
  existing: { files: {} },
  now: Date.UTC(2026, 10, 27),
  signed: true,
  ...over,
});

const job = (sign: ImageJob['sign']): ImageJob => ({
  target: { repo: 'docker://registry.example/rocknsm/rocknsm-coreos' },
  // Given in the other order: the actions follow the canonical arch order.
  archives: (['aarch64', 'x86_64'] as const).map((arch) => ({
    arch,
    archive: `/b/${arch}/a.ociarchive`,
    digest: `sha256:${sha(`d${arch}`)}`,
    mediaType,
    size: arch.length,
  })),
  tags: ['stable', VERSION],
  sign,
});

test('actions: images first, the index digest known from the manifests, tags after the draft, documents, release last', () => {
  const plan = planSite(input());
  const github = { spec: { tag: `v${VERSION}`, name: VERSION, body: '' } };
  const actions = planActions({ plan, images: job({ gpgKey: 'KEY' }), signBy: 'KEY', github });
  const index = sha256Digest(
    renderIndex(
      (['x86_64', 'aarch64'] as const).map((arch) => ({
        arch,
        mediaType,
        digest: `sha256:${sha(`d${arch}`)}`,
        size: arch.length,
      })),
    ),
  );
  assert.equal(actions.slice(0, 3), [
    {
      kind: 'push-image',
      arch: 'x86_64',
      archive: '/b/x86_64/a.ociarchive',
      digest: `sha256:${sha('dx86_64')}`,
    },
    {
      kind: 'push-image',
      arch: 'aarch64',
      archive: '/b/aarch64/a.ociarchive',
      digest: `sha256:${sha('daarch64')}`,
    },
    {
      kind: 'push-index',
      digest: index,
      manifests: [`sha256:${sha('dx86_64')}`, `sha256:${sha('daarch64')}`],
    },
  ]);
  // Phases never go back: what the JSON log's publish-step boundaries promise.
  const phases = actions.map((a) => PHASES.indexOf(phaseOf(a)));
  assert.equal(
    phases,
    [...phases].sort((a, b) => a - b),
  );
  // Each of the 3 digests signed for each tag's identity, then both tags moved to the index.
  const repo = 'registry.example/rocknsm/rocknsm-coreos';
  assert.equal(
    actions.filter((a) => a.kind === 'sign-image').map((a) => `${a.identity}@${a.digest}`),
    [`sha256:${sha('dx86_64')}`, `sha256:${sha('daarch64')}`, index].flatMap((d) => [
      `${repo}:stable@${d}`,
      `${repo}:${VERSION}@${d}`,
    ]),
  );
  assert.equal(
    actions.filter((a) => a.kind === 'tag'),
    [
      { kind: 'tag', tag: 'stable', digest: index },
      { kind: 'tag', tag: VERSION, digest: index },
    ],
  );
  // Every file and SHA256SUMS (per arch and the version's) copied or written, then signed.
  assert.is(actions.filter((a) => a.kind === 'copy-file').length, 4);
  assert.equal(
    actions.filter((a) => a.kind === 'write-sums').map((a) => a.dest),
    [
      `prod/streams/stable/builds/${VERSION}/x86_64/SHA256SUMS`,
      `prod/streams/stable/builds/${VERSION}/aarch64/SHA256SUMS`,
      `prod/streams/stable/builds/${VERSION}/SHA256SUMS`,
    ],
  );
  assert.is(actions.filter((a) => a.kind === 'sign-file').length, 7);
  const draft = actions.find((a) => a.kind === 'github-draft');
  assert.equal(draft?.kind === 'github-draft' && draft.assets.map((a) => a.name).slice(-2), [
    'SHA256SUMS',
    'SHA256SUMS.sig',
  ]);
  assert.equal(
    actions.filter((a) => a.kind === 'write-document').map((a) => a.path),
    plan.documents.map((d) => d.path),
  );
  assert.is(actions.at(-1)!.kind, 'github-publish');
});

test('actions: the same list whatever the site already holds (a re-run logs the same actions)', () => {
  const first = planSite(input());
  const present = Object.fromEntries(first.files.map((f) => [f.dest, { size: f.size, sha256: f.sha256 }]));
  const again = planSite(input({ existing: { files: present } }));
  assert.ok(again.files.every((f) => f.state === 'present'));
  const j = job({ gpgKey: 'KEY' });
  assert.equal(
    planActions({ plan: again, images: j, signBy: 'KEY' }),
    planActions({ plan: first, images: j, signBy: 'KEY' }),
  );
});

test('actions: unsigned, nothing signed; an OCI layout without an identity cannot be signed', () => {
  const plan = planSite(input({ signed: false }));
  const actions = planActions({ plan, images: job({}) });
  assert.equal(
    actions.filter((a) => a.kind.startsWith('sign-')),
    [],
  );
  assert.is(actions.filter((a) => a.kind === 'tag').length, 2);
  assert.throws(
    () => planActions({ plan, images: { ...job({ gpgKey: 'KEY' }), target: { repo: 'oci:/site/oci' } } }),
    /needs the identity/,
  );
});

test('documents: rendered again with the same content, release.json and the stream keep their last-modified', () => {
  const first = planSite(input());
  const docs = Object.fromEntries(first.documents.map((d) => [d.path, d.json]));
  const later = { now: Date.UTC(2026, 10, 28) };
  const kept = planSite(input({ ...later, existing: { files: {}, documents: docs } }));
  for (const path of [`prod/streams/stable/builds/${VERSION}/release.json`, 'streams/stable.json'])
    assert.equal(kept.documents.find((d) => d.path === path)!.json, docs[path], path);
  // Another content (here: unsigned) is a new document, with the new time.
  const changed = planSite(input({ ...later, signed: false, existing: { files: {}, documents: docs } }));
  const stream = changed.documents.find((d) => d.path === 'streams/stable.json')!.json as {
    metadata: Record<string, string>;
  };
  assert.is(stream.metadata['last-modified'], '2026-11-28T00:00:00Z');
});

test.run();
