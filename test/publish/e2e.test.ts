// End to end: the real `rock-image build` makes both arches from the fixture bases, then the real
// `rock-image publish` (its --plan actions first, then the run, whose JSON log must list the same
// actions) pushes them to a docker-registry on 127.0.0.1 (htpasswd), signs, fills the
// site and a GitHub release on the local fake, and `rock-image promote` retags by digest into
// another stream; then a re-run of publish changes nothing. The build carries publish.trust
// (policy.json, registries.d pointing at the site's lookaside, the key), and a sensor-side check
// with the image's own files accepts what publish pushed and rejects an unsigned push.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyAsSensor } from '../../pipeline/publish/image-tags.ts';
import { problems } from '../../pipeline/publish/validate.ts';
import { updateMeta } from '../../pipeline/records.ts';
import { fcosBase, repoRoot } from '../world/fcos-base.ts';
import { type FakeGitHub, startFakeGitHub } from '../world/github.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { followRegistry } from '../world/project.ts';
import { pipeBytes } from '../world/published.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `e2e-${process.pid}`);
const VERSION = '41.20261122.3.0';
let reg: TestRegistry;
let key: TestKey;
let fake: FakeGitHub;

/** Runs the CLI asynchronously: the fake GitHub answers from this process's event loop. */
const cli = (args: string[], env: Record<string, string> = {}) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], {
      env: {
        ...process.env,
        CI: 'true',
        GNUPGHOME: key.home,
        GITHUB_TOKEN: fake.token,
        // Release download URLs are on the double, as GitHub Actions names its server.
        GITHUB_SERVER_URL: fake.url,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });

const digestOf = (ref: string) =>
  `sha256:${sh('sha256sum', [], { input: sh('skopeo', ['inspect', '--raw', '--tls-verify=false', '--authfile', reg.authFile, ref]) }).split(' ')[0]}`;

type Action = { kind: string } & Record<string, unknown>;

/** The actions `--plan` prints (publish/actions.ts planActions). */
const plannedActions = (stdout: string) => (JSON.parse(stdout) as { actions: Action[] }).actions;

/**
 * The actions a run executed, in order, with their outcomes: the `publish-action` events of the
 * JSON log it wrote (DIR/logs/<command>-<stream>-<version>-<time>.jsonl), the one not in `before`.
 */
function executedActions(command: string, stream: string, before: string[]) {
  const dir = join(work, 'out/logs');
  const logs = readdirSync(dir).filter(
    (f) => f.startsWith(`${command}-${stream}-${VERSION}-`) && !before.includes(f),
  );
  assert.is(logs.length, 1, logs.join(', '));
  return readFileSync(join(dir, logs[0]!), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event?: string; action?: Action; outcome?: string })
    .filter((e) => e.event === 'publish-action')
    .map((e) => ({ action: e.action!, outcome: e.outcome! }));
}

const logsNow = () => (existsSync(join(work, 'out/logs')) ? readdirSync(join(work, 'out/logs')) : []);

/** The options of the stable publish, with and without --plan. */
const publishArgs = () => [
  'publish',
  '--stream',
  'stable',
  '--version',
  VERSION,
  ...common(),
  '--github',
  'rocknsm/rocknsm-coreos',
  '--github-api',
  fake.url,
  '--github-pace-ms',
  '0',
];

/** The actions of the first publish, as --plan printed them beforehand. */
let planned: Action[] = [];

test.before(async () => {
  for (const t of ['skopeo', 'buildah', 'gpg', 'docker-registry', 'htpasswd']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  key = makeKey(join(work, 'key'), 'rock-e2e');
  reg = await startRegistry(join(work, 'registry'));
  fake = await startFakeGitHub();
  // The project as shipped, its stable and testing streams trusting the test key and the site's lookaside.
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(work, 'project', d), { recursive: true });
  mkdirSync(join(work, 'project/manifests/keys'), { recursive: true });
  copyFileSync(key.publicKey, join(work, 'project/manifests/keys/rocknsm-release.gpg'));
  // testing too: promote signs for it, and refuses a key its sensors do not trust.
  for (const name of ['stable', 'testing', 'next']) {
    const stream = join(work, `project/manifests/streams/${name}.yaml`);
    writeFileSync(
      stream,
      `${readFileSync(stream, 'utf8').replace(/^publish:\n( {2}.*\n)*/m, '')}publish:\n  registry: ${reg.host}/rocknsm/rocknsm-coreos\n  trust:\n    gpg-key: manifests/keys/rocknsm-release.gpg\n    lookaside: file://${join(work, 'site/signatures')}\n`,
    );
  }
  followRegistry(join(work, 'project'), `${reg.host}/rocknsm/rocknsm-coreos`, ['stable', 'testing', 'next']);
  const r = shResult(
    process.execPath,
    [
      join(repoRoot, 'bin/rock-image.js'),
      '--project',
      join(work, 'project'),
      'build',
      '--stream',
      'stable',
      '--base',
      `x86_64=${fcosBase('x86_64')}`,
      '--base',
      `aarch64=${fcosBase('aarch64')}`,
      '--output',
      join(work, 'out'),
      '--storage',
      join(work, 'storage'),
      '--version',
      VERSION,
    ],
    { env: { CI: 'true' } },
  );
  if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
  await addDisks();
});

/** Small xz disk images in the build, as the coreos backend leaves them (publish refuses native disks for shipped streams). */
async function addDisks(): Promise<void> {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const dir = join(work, 'out/builds', VERSION, arch);
    const name = `rocknsm-coreos-${VERSION}-metal.${arch}.raw.xz`;
    const raw = Buffer.alloc(8192, `metal ${VERSION} ${arch}\n`);
    const xz = pipeBytes('xz', ['-c', '-T1'], raw).stdout;
    writeFileSync(join(dir, name), xz);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    await updateMeta(join(dir, 'meta.json'), (m) => ({
      ...m,
      images: {
        ...m.images,
        metal: {
          path: name,
          sha256: sha(xz),
          size: xz.length,
          'uncompressed-sha256': sha(raw),
          'uncompressed-size': raw.length,
        },
      },
      'rocknsm.artifact-backends': { ...(m['rocknsm.artifact-backends'] ?? {}), metal: 'coreos' },
    }));
  }
}

test.after(async () => {
  await reg?.stop();
  await fake?.close();
  if (key) stopAgent(key);
  rmSync(work, { recursive: true, force: true });
});

const common = () => [
  '--project',
  join(work, 'project'),
  '--build',
  join(work, 'out'),
  '--site',
  join(work, 'site'),
  '--base-url',
  'https://sensors.example/rock',
  '--registry',
  `${reg.host}/rocknsm/rocknsm-coreos`,
  '--authfile',
  reg.authFile,
  '--insecure-registry',
  '--sign-by',
  key.fingerprint,
];

test('publish --plan prints the actions publish then runs: same list, same order, each done', async () => {
  const plan = await cli([...publishArgs(), '--plan']);
  assert.is(plan.code, 0, plan.stderr);
  planned = plannedActions(plan.stdout);
  assert.not.ok(existsSync(join(work, 'site')), '--plan writes nothing');
  const before = logsNow();
  const r = await cli(publishArgs());
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stderr, fake.token);
  const ran = executedActions('publish', 'stable', before);
  assert.equal(
    ran.map((x) => x.action),
    planned,
  );
  assert.equal(
    ran.filter((x) => x.outcome !== 'done'),
    [],
  );
  // Every kind of action a signed registry publish with a GitHub release takes, in the order
  // that keeps readers consistent: images and files, the draft, signatures, tags, documents, release.
  const kinds = [...new Set(planned.map((a) => a.kind))];
  assert.equal(kinds, [
    'push-image',
    'push-index',
    'copy-file',
    'write-sums',
    'sign-file',
    'github-draft',
    'sign-image',
    'tag',
    'write-document',
    'github-publish',
  ]);
  // The index the plan named before anything was pushed is what the tags point at.
  const index = planned.find((a) => a.kind === 'push-index')!.digest;
  assert.is(digestOf(`docker://${reg.host}/rocknsm/rocknsm-coreos:stable`), index);
});

test('published: registry holds the built digests under stream and version tags; site and GitHub complete', async () => {
  const repo = `${reg.host}/rocknsm/rocknsm-coreos`;
  const index = digestOf(`docker://${repo}:stable`);
  assert.is(digestOf(`docker://${repo}:${VERSION}`), index);
  const site = join(work, 'site');
  const release = JSON.parse(
    readFileSync(join(site, `prod/streams/stable/builds/${VERSION}/release.json`), 'utf8'),
  );
  assert.equal(problems('release', release), []);
  for (const arch of ['x86_64', 'aarch64']) {
    const meta = JSON.parse(readFileSync(join(work, 'out/builds', VERSION, arch, 'meta.json'), 'utf8'));
    assert.is(
      release.architectures[arch]['oci-image']['digest-ref'],
      `${repo}@${meta['rocknsm.image-digest']}`,
    );
    assert.is(
      digestOf(`docker://${release.architectures[arch]['oci-image']['digest-ref']}`),
      meta['rocknsm.image-digest'],
    );
    for (const img of Object.values(meta.images) as { path: string }[]) {
      const f = join(site, `prod/streams/stable/builds/${VERSION}/${arch}/${img.path}`);
      assert.ok(existsSync(f) && existsSync(`${f}.sig`), img.path);
    }
  }
  const graph = JSON.parse(readFileSync(join(site, 'graph/stable/aarch64/v1/graph'), 'utf8'));
  assert.equal(problems('graph', graph), []);
  assert.is(graph.nodes[0].payload, release.architectures.aarch64['oci-image']['digest-ref']);
  assert.ok(existsSync(join(site, 'signatures')), 'image signatures in the lookaside');
  assert.is(fake.releases.length, 1);
  assert.is(fake.releases[0]!.draft, false);
  assert.equal(fake.violations, []);
});

test("sensor: the image's own policy accepts the published index for both arches, rejects an unsigned push", async () => {
  needTool('umoci');
  const repo = `${reg.host}/rocknsm/rocknsm-coreos`;
  // The sensor's trust files, unpacked from the published x86_64 image.
  const meta = JSON.parse(readFileSync(join(work, 'out/builds', VERSION, 'x86_64/meta.json'), 'utf8'));
  const layout = join(work, 'sensor/layout');
  mkdirSync(layout, { recursive: true });
  sh('tar', ['-xf', join(work, 'out/builds', VERSION, 'x86_64', meta.images.ostree.path), '-C', layout]);
  sh('umoci', ['unpack', '--image', `${layout}:${VERSION}`, join(work, 'sensor/bundle')]);
  const root = join(work, 'sensor/bundle/rootfs');
  assert.ok(existsSync(join(root, 'etc/containers/policy.json')));
  const sensor = { authFile: reg.authFile, tlsVerify: false };
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const v = await verifyAsSensor(`docker://${repo}:stable`, root, { ...sensor, arch });
    assert.ok(v.accepted, `${arch}: ${v.reason}`);
  }
  sh('skopeo', [
    'copy',
    '--dest-tls-verify=false',
    '--dest-authfile',
    reg.authFile,
    fcosBase('x86_64'),
    `docker://${repo}:unsigned`,
  ]);
  const unsigned = await verifyAsSensor(`docker://${repo}:unsigned`, root, sensor);
  assert.not.ok(unsigned.accepted);
  assert.match(unsigned.reason, 'A signature was required, but no signature exists');
});

test('publish again: converges, nothing re-uploaded; promote retags by digest into another stream', async () => {
  const uploads = fake.requests.filter((q) => q.op === 'repos/upload-release-asset').length;
  const before = logsNow();
  const again = await cli(publishArgs());
  assert.is(again.code, 0, again.stderr);
  // The same actions, each finding its result already there.
  const ran = executedActions('publish', 'stable', before);
  assert.equal(
    ran.map((x) => x.action),
    planned,
  );
  assert.equal(
    ran.filter((x) => x.outcome !== 'already-present'),
    [],
  );
  assert.is(fake.requests.filter((q) => q.op === 'repos/upload-release-asset').length, uploads);
  const repo = `${reg.host}/rocknsm/rocknsm-coreos`;
  const index = digestOf(`docker://${repo}:stable`);
  const promote = ['promote', '--version', VERSION, '--from', 'stable', '--to', 'testing', ...common()];
  // promote --plan too prints the actions the promote runs: the index re-signed and re-tagged, no push of new bytes.
  const promotePlan = await cli([...promote, '--rollout-hours', '24', '--plan']);
  assert.is(promotePlan.code, 0, promotePlan.stderr);
  const promoteActions = plannedActions(promotePlan.stdout);
  const beforePromote = logsNow();
  const p = await cli([...promote, '--rollout-hours', '24']);
  assert.is(p.code, 0, p.stderr);
  const promoted = executedActions('promote', 'testing', beforePromote);
  assert.equal(
    promoted.map((x) => x.action),
    promoteActions,
  );
  assert.equal(
    promoted.filter((x) => x.action.kind.startsWith('push-')).map((x) => x.outcome),
    ['already-present', 'already-present', 'already-present'],
  );
  assert.equal(
    promoteActions.filter((a) => a.kind === 'tag'),
    [{ kind: 'tag', tag: 'testing', digest: index }],
  );
  assert.is(digestOf(`docker://${repo}:testing`), index, 'same index, no rebuild');
  const site = join(work, 'site');
  const releases = JSON.parse(readFileSync(join(site, 'prod/streams/testing/releases.json'), 'utf8'));
  assert.equal(
    releases.releases.map((r: { version: string }) => r.version),
    [VERSION],
  );
  const updates = JSON.parse(readFileSync(join(site, 'updates/testing.json'), 'utf8'));
  assert.is(updates.releases[0].metadata.rollout.duration_minutes, 1440);
  assert.ok(existsSync(join(site, `prod/streams/testing/builds/${VERSION}/x86_64/SHA256SUMS.sig`)));
  const stream = JSON.parse(readFileSync(join(site, 'streams/testing.json'), 'utf8'));
  assert.equal(problems('stream', stream), []);
});

// promote --github: the disks a release.json names at the GitHub release must be there, with
// their signatures, before anything is written for the target stream.
test('promote --github: refused when the repository has no such release (nothing written); promoted, disks named at the release downloads', async () => {
  const github = ['--github', 'rocknsm/rocknsm-coreos', '--github-api', fake.url];
  const rel = fake.releases.find((r) => r.tag_name === `v${VERSION}`)!;
  const disk = `rocknsm-coreos-${VERSION}-metal.aarch64.raw.xz`;
  assert.ok(rel.assets.some((a) => a.name === disk) && rel.assets.some((a) => a.name === `${disk}.sig`));

  // Pointed at a repository without that release (a fork's, a typo): refused, nothing written.
  const site = join(work, 'site');
  const repo = `${reg.host}/rocknsm/rocknsm-coreos`;
  const promote = (gh: string[]) =>
    cli(['promote', '--version', VERSION, '--from', 'stable', '--to', 'next', ...common(), ...gh]);
  const refused = await promote(
    github.map((x) => (x === 'rocknsm/rocknsm-coreos' ? 'rocknsm/elsewhere' : x)),
  );
  assert.is(refused.code, 1, refused.stderr);
  assert.match(
    refused.stderr,
    `no published GitHub release v${VERSION}: publish the version first; nothing written`,
  );
  assert.not.ok(existsSync(join(site, 'streams/next.json')), 'no stream metadata');
  assert.not.ok(existsSync(join(site, 'prod/streams/next')), 'no release files');
  const tag = shResult('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--authfile',
    reg.authFile,
    `docker://${repo}:next`,
  ]);
  assert.is.not(tag.code, 0, 'no :next tag pushed');

  // The repository that holds the release: promoted, the disks named at its downloads.
  const ok = await promote(github);
  assert.is(ok.code, 0, ok.stderr);
  assert.is(digestOf(`docker://${repo}:next`), digestOf(`docker://${repo}:stable`));
  const stream = JSON.parse(readFileSync(join(site, 'streams/next.json'), 'utf8'));
  assert.equal(problems('stream', stream), []);
  const metal = stream.architectures.aarch64.artifacts.metal.formats['raw.xz'].disk;
  assert.is(metal.location, `${fake.url}/rocknsm/rocknsm-coreos/releases/download/v${VERSION}/${disk}`);
  assert.is(metal.signature, `${metal.location}.sig`);
  assert.equal(fake.violations, []);
});

test.run();
