// What publish ships to coreos-installer and sensors: disks only as xz (metal raw.xz, metal4k as
// metal 4k.raw.xz, qemu qcow2.xz), and artifacts of the native backend only when the stream file
// says allow-native-disks: true; the refusal is one line naming the stream file and the setting,
// exit 65, before anything is written or uploaded.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ExitCode, PipelineError } from '../../pipeline/errors.ts';
import { type ArchBuild, planSite, type SiteInput } from '../../pipeline/publish/site.ts';
import { problems } from '../../pipeline/publish/validate.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { makeKey, stopAgent } from '../world/gpg.ts';
import { shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `native-disks-${process.pid}`);
const VERSION = '41.20261126.3.0';
const sha = (b: string) => createHash('sha256').update(b).digest('hex');
const mediaType = 'application/vnd.oci.image.manifest.v1+json';
const at = { file: 'manifests/streams/stable.yaml', line: 16, col: 1 };

/** A build whose disk and PXE files were made by `backend` (meta.json as artifacts/index.ts writes it). */
function build(arch: 'x86_64' | 'aarch64', backend: string, ext = 'xz', extra: string[] = []): ArchBuild {
  const n = `rocknsm-coreos-${VERSION}`;
  const images: ArchBuild['meta']['images'] = {
    ostree: { path: `${n}-ostree.${arch}.ociarchive`, sha256: sha(`o${arch}`), size: 1 },
    metal: { path: `${n}-metal.${arch}.raw.${ext}`, sha256: sha(`m${arch}`), size: 1 },
    qemu: { path: `${n}-qemu.${arch}.qcow2.${ext}`, sha256: sha(`q${arch}`), size: 1 },
    'live-kernel': { path: `${n}-live-kernel.${arch}`, sha256: sha(`k${arch}`), size: 1 },
  };
  for (const k of extra)
    images[k] = { path: `${n}-${k}.${arch}.raw.xz`, sha256: sha(`${k}${arch}`), size: 1 };
  const made = Object.keys(images).filter((k) => k !== 'ostree');
  return {
    arch,
    dir: join(work, 'out', 'builds', VERSION, arch),
    meta: {
      buildid: VERSION,
      'coreos-assembler.basearch': arch,
      images,
      'rocknsm.image-digest': `sha256:${sha(`d${arch}`)}`,
      'rocknsm.artifact-backends': Object.fromEntries(made.map((k) => [k, backend])),
    },
  };
}

const input = (builds: ArchBuild[], over: Partial<SiteInput> = {}): SiteInput => ({
  stream: 'stable',
  version: VERSION,
  requireArches: ['x86_64', 'aarch64'],
  builds,
  baseUrl: 'https://sensors.example/rock',
  imageRepo: 'ghcr.io/rocknsm/rocknsm-coreos',
  existing: { files: {} },
  now: Date.UTC(2026, 10, 26),
  signed: true,
  ...over,
});

const refusal = (f: () => unknown): PipelineError => {
  try {
    f();
  } catch (err) {
    if (err instanceof PipelineError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
};

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('plan: coreos-made disks publish without opting in; metal4k is metal 4k.raw.xz beside raw.xz', () => {
  const plan = planSite(input([build('x86_64', 'coreos', 'xz', ['metal4k']), build('aarch64', 'coreos')]));
  const stream = plan.documents.find((d) => d.kind === 'stream')!.json as {
    architectures: Record<string, { artifacts: Record<string, { formats: Record<string, unknown> }> }>;
  };
  assert.equal(Object.keys(stream.architectures.x86_64!.artifacts.metal!.formats).sort(), [
    '4k.raw.xz',
    'pxe',
    'raw.xz',
  ]);
  assert.equal(Object.keys(stream.architectures.x86_64!.artifacts.qemu!.formats), ['qcow2.xz']);
  assert.not.ok(
    'metal4k' in stream.architectures.x86_64!.artifacts,
    'no metal4k platform in stream metadata',
  );
  for (const d of plan.documents) assert.equal(problems(d.kind, d.json), [], d.path);
});

test('plan: native disks refused in one line naming the stream file and the setting, exit 65', () => {
  const builds = [build('x86_64', 'native'), build('aarch64', 'coreos')];
  const err = refusal(() => planSite(input(builds, { nativeDisks: { allowed: false, at } })));
  assert.is(err.exitCode, ExitCode.config);
  assert.not.match(err.message, '\n');
  assert.ok(err.message.startsWith('manifests/streams/stable.yaml:16:1: '), err.message);
  assert.match(err.message, 'x86_64 live-kernel, metal, qemu');
  assert.not.match(err.message, 'aarch64');
  assert.match(err.message, 'allow-native-disks: true in manifests/streams/stable.yaml');
  // A stream this project does not define cannot allow them either.
  assert.match(refusal(() => planSite(input(builds))).message, 'allow-native-disks: true');
  // An unrecorded backend counts as native: nothing proves the disks were made upstream's way.
  const old = build('x86_64', 'coreos');
  delete old.meta['rocknsm.artifact-backends'];
  assert.is(refusal(() => planSite(input([old, build('aarch64', 'coreos')]))).exitCode, 65);
  // The last run's backend (builds made before the per-image record) stands for its images.
  old.meta['rocknsm.artifacts'] = { backend: 'coreos' };
  planSite(input([old, build('aarch64', 'coreos')]));
});

test('plan: allow-native-disks: true lets them through', () => {
  const plan = planSite(
    input([build('x86_64', 'native'), build('aarch64', 'native')], { nativeDisks: { allowed: true, at } }),
  );
  assert.is(plan.files.filter((f) => f.key === 'metal').length, 2);
});

test('plan: zstd disks refused whatever the backend (coreos-installer reads only raw.xz, 4k.raw.xz)', () => {
  const err = refusal(() =>
    planSite(
      input([build('x86_64', 'coreos', 'zst'), build('aarch64', 'coreos')], { nativeDisks: undefined }),
    ),
  );
  assert.match(err.message, /images\.metal is rocknsm-coreos-[\d.]+-metal\.x86_64\.raw\.zst, not xz/);
  assert.match(err.message, /images\.qemu is .*qcow2\.zst, not xz/);
});

/** `rock-image publish` of VERSION to stable from the test project (made by the first cli test). */
const publishCli = (more: string[], env: NodeJS.ProcessEnv) =>
  shResult(
    process.execPath,
    [
      join(repoRoot, 'bin/rock-image.js'),
      '--project',
      join(work, 'project'),
      'publish',
      '--stream',
      'stable',
      '--version',
      VERSION,
      '--build',
      join(work, 'out'),
      '--site',
      join(work, 'site'),
      '--base-url',
      'https://sensors.example/rock',
      '--registry',
      '127.0.0.1:9/none',
      ...more,
    ],
    { env: { CI: 'true', ...env } },
  );

test('cli: publish and publish --plan refuse native disks (exit 65) before anything is written; opting in plans', () => {
  const project = join(work, 'project');
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  const streamFile = join(project, 'manifests/streams/stable.yaml');
  const text = readFileSync(streamFile, 'utf8');
  const line = text.split('\n').findIndex((l) => l.startsWith('artifact-backend:')) + 1;
  assert.ok(line > 0, 'stable.yaml names its backend');
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const b = build(arch, 'native');
    mkdirSync(b.dir, { recursive: true });
    writeFileSync(join(b.dir, 'meta.json'), JSON.stringify(b.meta));
    for (const img of Object.values(b.meta.images)) writeFileSync(join(b.dir, img.path), 'x');
    // The archive's index.json names the image's manifest: --plan renders the OCI index from it.
    const index = {
      schemaVersion: 2,
      manifests: [{ mediaType, digest: b.meta['rocknsm.image-digest'], size: 1 }],
    };
    writeFileSync(join(b.dir, 'index.json'), JSON.stringify(index));
    const tar = shResult('tar', ['-cf', b.meta.images.ostree!.path, 'index.json'], { cwd: b.dir });
    assert.is(tar.code, 0, tar.stderr);
  }
  const site = join(work, 'site');
  const publish = (...more: string[]) =>
    publishCli(['--github', 'rocknsm/rocknsm-coreos', '--github-api', 'http://127.0.0.1:9', ...more], {
      GITHUB_TOKEN: 'ghp_unused',
    });
  for (const args of [[], ['--plan']]) {
    const r = publish(...args);
    assert.is(r.code, 65, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      `manifests/streams/stable.yaml:${line}:1: refusing to publish ${VERSION} to stable`,
    );
    assert.match(lines[0]!, 'allow-native-disks: true');
    // Nothing uploaded or written: no site, no log of a publish step, no registry contacted.
    assert.not.ok(existsSync(site), 'no site written');
    assert.not.match(r.stderr, /skopeo|127\.0\.0\.1:9/);
  }
  writeFileSync(
    streamFile,
    text.replace(/^artifact-backend: coreos$/m, 'artifact-backend: native\nallow-native-disks: true'),
  );
  const ok = publish('--plan');
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, '"raw.xz"');
  // The actions name the index over both manifests, pushed before any tag moves to it.
  const planned = JSON.parse(ok.stdout) as { actions: { kind: string; digest?: string }[] };
  const kinds = planned.actions.map((a) => a.kind);
  assert.equal(kinds.slice(0, 3), ['push-image', 'push-image', 'push-index']);
  const index = planned.actions[2]!.digest;
  assert.ok(kinds.indexOf('tag') > kinds.lastIndexOf('github-draft'));
  assert.ok(planned.actions.filter((a) => a.kind === 'tag').every((a) => a.digest === index));
  assert.not.ok(existsSync(site));
});

test('cli: a signed stream (publish.trust) is not published unsigned, nor signed by a key its sensors do not trust', () => {
  // The project of the test above, its disks allowed; the shipped stable stream trusts manifests/keys/rocknsm.gpg.
  const site = join(work, 'site');
  const stranger = makeKey(join(work, 'stranger'), 'stranger');
  try {
    // At the stream's own repository (refused before any registry is contacted), unless given another.
    const run = (...more: string[]) =>
      publishCli(['--registry', 'ghcr.io/rocknsm/rocknsm-coreos', ...more], { GNUPGHOME: stranger.home });
    const unsigned = run();
    assert.is(unsigned.code, 64, unsigned.stderr);
    assert.match(
      unsigned.stderr,
      'stream stable is signed (publish.trust: manifests/keys/rocknsm.gpg): give --sign-by',
    );
    const other = run('--sign-by', stranger.fingerprint);
    assert.is(other.code, 64, other.stderr);
    assert.match(other.stderr, `is key ${stranger.fingerprint}, which sensors of stable do not trust`);
    // Another repository (a fork's ROCK_REGISTRY): the image's policy trusts only the stream's own.
    const elsewhere = run('--registry', 'ghcr.io/fork/rocknsm-coreos', '--sign-by', stranger.fingerprint);
    assert.is(elsewhere.code, 64, elsewhere.stderr);
    assert.match(
      elsewhere.stderr,
      'stream stable is signed for ghcr.io/rocknsm/rocknsm-coreos (publish.registry), and its images trust only that repository: pushed to ghcr.io/fork/rocknsm-coreos',
    );
    for (const r of [unsigned, other, elsewhere]) assert.not.match(r.stderr, /skopeo|127\.0\.0\.1:9|==>/);
    assert.not.ok(existsSync(site), 'no site written');
  } finally {
    stopAgent(stranger);
  }
});

test.run();
