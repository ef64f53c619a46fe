// Publishing images against real parts: a docker-registry on 127.0.0.1 with htpasswd auth, images
// built by the real `rock-image build` for both arches (with the trust files of the stream's
// publish.trust baked in), real skopeo push/sign, GPG keys made per run, and the sensor-side
// verification with the policy files unpacked from the image itself. cosign cannot run here: a
// stand-in on PATH records its argv. Fault injection: registry stopped mid-push, the publishing
// process SIGKILLed between steps; each followed by a re-run that must converge.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, DataError, PipelineError, UsageError } from '../../pipeline/errors.ts';
import { createRunner, type Runner } from '../../pipeline/exec/run.ts';
import { copyExact } from '../../pipeline/exec/skopeo.ts';
import { createLogger } from '../../pipeline/log.ts';
import { readArchive } from '../../pipeline/oci-archive.ts';
import { lookasidePath, signAndTag, verifyAsSensor } from '../../pipeline/publish/image-tags.ts';
import { type ArchImage, openPush, type Pushed, pushImages } from '../../pipeline/publish/images.ts';
import { fcosBase, repoRoot } from '../world/fcos-base.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { followRegistry } from '../world/project.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `images-${process.pid}`);
const VERSION = '41.20261122.3.0';
const REPO_PATH = 'rocknsm/rocknsm-coreos';
const sigs = join(work, 'site', 'signatures');
const quiet: Runner = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));

let reg: TestRegistry;
let key: TestKey;
let intruder: TestKey;
let images: ArchImage[];
let rootfs: string;
let pushed: Pushed;
const repo = (path = REPO_PATH) => `${reg.host}/${path}`;
const target = (path = REPO_PATH, run: Runner = quiet) => ({
  repo: `docker://${repo(path)}`,
  authFile: reg.authFile,
  tlsVerify: false,
  run,
});
const sign = () => ({ gpgKey: key.email, gpgHome: key.home, lookasideDir: sigs });
const sensor = { authFile: '', tlsVerify: false };

/** Digest of what a reference points at, read back with skopeo. */
function digestOf(ref: string): string {
  const raw = sh('skopeo', ['inspect', '--raw', '--tls-verify=false', '--authfile', reg.authFile, ref]);
  return `sha256:${sh('sha256sum', [], { input: raw }).split(' ')[0]}`;
}

async function tagsOf(path: string): Promise<string[]> {
  const r = await fetch(`http://${reg.host}/v2/${path}/tags/list`, {
    headers: { authorization: `Basic ${Buffer.from(`${reg.user}:${reg.password}`).toString('base64')}` },
  });
  if (r.status === 404) return [];
  return (((await r.json()) as { tags: string[] | null }).tags ?? []).sort();
}

/** sha256 (hex) of a file, by sha256sum. */
const sha256Of = (file: string) => sh('sha256sum', [file]).split(' ')[0]!;

/** The archive's biggest layer: its digest and where its bytes lie in the archive file. */
function layerOf(img: ArchImage): { digest: string; offset: number; size: number } {
  return readArchive(img.archive, (a) => {
    const m = JSON.parse(a.blob(img.digest).toString('utf8')) as {
      layers: { digest: string; size: number }[];
    };
    const biggest = m.layers.reduce((x, y) => (y.size > x.size ? y : x));
    return { digest: biggest.digest, ...a.locate(biggest.digest) };
  });
}

const signatureFiles = (path: string, digest: string) => {
  const dir = lookasidePath(sigs, repo(path), digest);
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /^signature-\d+$/.test(f))
        .sort()
    : [];
};

/** A project copy whose stable stream publishes to the test registry with publish.trust. */
function makeProject(dir: string, trust: string): string {
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true });
  const stream = join(dir, 'manifests/streams/stable.yaml');
  const text = readFileSync(stream, 'utf8').replace(/^publish:\n( {2}.*\n)*/m, '');
  writeFileSync(stream, `${text}publish:\n  registry: ${repo()}\n${trust}`);
  followRegistry(dir, repo(), ['stable']);
  return dir;
}

test.before(async () => {
  for (const t of ['skopeo', 'buildah', 'umoci', 'gpg', 'docker-registry', 'htpasswd']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(sigs, { recursive: true });
  key = makeKey(join(work, 'key'), 'rock-release');
  intruder = makeKey(join(work, 'intruder'), 'intruder');
  reg = await startRegistry(join(work, 'registry'));
  sensor.authFile = reg.authFile;
  const project = makeProject(
    join(work, 'project'),
    `  trust:\n    gpg-key: manifests/keys/rocknsm-release.gpg\n    lookaside: file://${sigs}\n`,
  );
  mkdirSync(join(project, 'manifests/keys'), { recursive: true });
  copyFileSync(key.publicKey, join(project, 'manifests/keys/rocknsm-release.gpg'));
  const out = join(work, 'out');
  const r = shResult(
    process.execPath,
    [
      join(repoRoot, 'bin/rock-image.js'),
      'build',
      '--project',
      project,
      '--stream',
      'stable',
      '--base',
      `x86_64=${fcosBase('x86_64')}`,
      '--base',
      `aarch64=${fcosBase('aarch64')}`,
      '--output',
      out,
      '--storage',
      join(work, 'storage'),
      '--version',
      VERSION,
    ],
    { env: { CI: 'true' } },
  );
  if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
  images = (['x86_64', 'aarch64'] as const).map((arch) => {
    const meta = JSON.parse(readFileSync(join(out, 'builds', VERSION, arch, 'meta.json'), 'utf8'));
    return {
      arch,
      archive: join(out, 'builds', VERSION, arch, meta.images.ostree.path),
      digest: meta['rocknsm.image-digest'],
    };
  });
  // The sensor's view: the x86_64 image's root, with its own policy files and key.
  const unpack = join(work, 'unpack');
  mkdirSync(join(unpack, 'layout'), { recursive: true });
  sh('tar', ['-xf', images[0]!.archive, '-C', join(unpack, 'layout')]);
  sh('umoci', ['unpack', '--image', `${join(unpack, 'layout')}:${VERSION}`, join(unpack, 'bundle')]);
  rootfs = join(unpack, 'bundle', 'rootfs');
});

test.after(async () => {
  await reg?.stop();
  if (key) stopAgent(key);
  if (intruder) stopAgent(intruder);
  rmSync(work, { recursive: true, force: true });
});

test('image: carries policy.json (default reject, our repo signedBy our key), registries.d and the key', () => {
  const policy = JSON.parse(readFileSync(join(rootfs, 'etc/containers/policy.json'), 'utf8'));
  assert.equal(policy.default, [{ type: 'reject' }]);
  assert.equal(policy.transports.docker[repo()], [
    { type: 'signedBy', keyType: 'GPGKeys', keyPath: '/etc/pki/containers/rocknsm-coreos.gpg' },
  ]);
  // The images the image itself pulls (services, agents) are named one by one; nothing else.
  assert.equal(policy.transports.docker['docker.io/zeek/zeek'], [{ type: 'insecureAcceptAnything' }]);
  assert.not.ok(policy.transports.docker['']);
  assert.equal(policy.transports['containers-storage'], { '': [{ type: 'insecureAcceptAnything' }] });
  assert.ok(
    readFileSync(join(rootfs, 'etc/pki/containers/rocknsm-coreos.gpg')).equals(readFileSync(key.publicKey)),
  );
  assert.match(
    readFileSync(join(rootfs, 'etc/containers/registries.d/rocknsm-coreos.yaml'), 'utf8'),
    `docker:\n  ${repo()}:\n    lookaside: file://${sigs}\n`,
  );
});

test('push: each arch by digest, then the index; the registry holds exactly the built digests; no tags', async () => {
  const r = await pushImages(target(), images, { retries: 1, retryDelayMs: 100 });
  pushed = r;
  assert.equal(r.steps, { x86_64: 'pushed', aarch64: 'pushed', index: 'pushed' });
  for (const img of images) {
    assert.is(r.manifests[img.arch], img.digest);
    assert.is(digestOf(`docker://${repo()}@${img.digest}`), img.digest);
  }
  const raw = sh('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--authfile',
    reg.authFile,
    `docker://${repo()}@${r.index}`,
  ]);
  const index = JSON.parse(raw);
  assert.is(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(
    index.manifests.map((m: { digest: string; platform: unknown }) => [m.digest, m.platform]),
    [
      [images[0]!.digest, { architecture: 'amd64', os: 'linux' }],
      [images[1]!.digest, { architecture: 'arm64', os: 'linux' }],
    ],
  );
  assert.equal(await tagsOf(REPO_PATH), []);
});

test('push: re-running finds everything present and returns the same digests', async () => {
  const r = await pushImages(target(), images);
  assert.equal(r.steps, { x86_64: 'already-present', aarch64: 'already-present', index: 'already-present' });
  assert.equal(
    { manifests: r.manifests, index: r.index },
    { manifests: pushed.manifests, index: pushed.index },
  );
});

test('push: an archive that does not hold the recorded digest is refused before anything is pushed', async () => {
  const bad = [{ ...images[0]!, digest: `sha256:${'0'.repeat(64)}` }];
  try {
    await pushImages(target('rocknsm/bad'), bad);
    assert.unreachable('pushed');
  } catch (err) {
    assert.instance(err, PipelineError);
    assert.match((err as Error).message, images[0]!.archive);
    assert.match((err as Error).message, 'rocknsm.image-digest');
  }
  assert.equal(await tagsOf('rocknsm/bad'), []);
  const r = shResult('skopeo', [
    'inspect',
    '--raw',
    '--tls-verify=false',
    '--authfile',
    reg.authFile,
    `docker://${repo('rocknsm/bad')}@${images[0]!.digest}`,
  ]);
  assert.is.not(r.code, 0);
  for (const t of ['docker://h/r:tag', 'registry/repo', 'oci:relative/dir'])
    try {
      await pushImages({ repo: t }, images);
      assert.unreachable(t);
    } catch (err) {
      assert.instance(err, UsageError, t);
    }
});

test('push: the index goes out only over images the repository holds (it is pushed alone, index-only)', async () => {
  const path = 'rocknsm/order';
  const s = await openPush(target(path), images, { retries: 0 });
  try {
    try {
      await s.pushIndex();
      assert.unreachable('index pushed first');
    } catch (err) {
      assert.instance(err, PipelineError);
      assert.match((err as Error).message, 'x86_64, aarch64 not pushed yet');
    }
    // The registry (distribution 2.8) refuses such an index too, when skopeo writes it alone.
    const remote = { run: quiet, authFile: reg.authFile, tlsVerify: false };
    try {
      await copyExact(remote, `docker://${repo()}@${pushed.index}`, `docker://${repo(path)}:x`, {
        indexOnly: true,
      });
      assert.unreachable('the registry took an index over manifests it lacks');
    } catch (err) {
      assert.match((err as Error).message, /manifest/i);
    }
    assert.is(await s.pushArch('x86_64'), 'pushed');
    try {
      await s.pushIndex();
      assert.unreachable('index pushed before aarch64');
    } catch (err) {
      assert.match((err as Error).message, 'aarch64 not pushed yet');
    }
    assert.is(await s.pushArch('aarch64'), 'pushed');
    assert.is(await s.pushIndex(), 'pushed');
  } finally {
    s.close();
  }
  assert.is(digestOf(`docker://${repo(path)}@${pushed.index}`), pushed.index);
  assert.equal(await tagsOf(path), []);
});

test('signAndTag: every manifest and the index signed per tag, then the tags', async () => {
  const r = await signAndTag(target(), pushed, ['stable', VERSION], sign());
  assert.is(Object.keys(r.signatures).length, 6);
  assert.ok(Object.values(r.signatures).every((s) => s === 'signed'));
  assert.equal(r.tags, { stable: 'tagged', [VERSION]: 'tagged' });
  for (const d of [...Object.values(pushed.manifests), pushed.index]) {
    assert.equal(signatureFiles(REPO_PATH, d), ['signature-1', 'signature-2']);
    const payloads = signatureFiles(REPO_PATH, d).map((f) =>
      JSON.parse(
        sh('gpg', ['--batch', '--homedir', key.home, '--decrypt', join(lookasidePath(sigs, repo(), d), f)]),
      ),
    );
    assert.equal(
      payloads
        .map((p) => [
          p.critical.identity['docker-reference'],
          p.critical.image['docker-manifest-digest'],
          p.critical.type,
        ])
        .sort(),
      [
        [`${repo()}:${VERSION}`, d, 'atomic container signature'],
        [`${repo()}:stable`, d, 'atomic container signature'],
      ],
    );
  }
  assert.equal(await tagsOf(REPO_PATH), [VERSION, 'stable'].sort());
  assert.is(digestOf(`docker://${repo()}:stable`), pushed.index);
  assert.is(digestOf(`docker://${repo()}:${VERSION}`), pushed.index);
});

test('signAndTag: re-running adds no signature and no tag', async () => {
  const r = await signAndTag(target(), pushed, ['stable', VERSION], sign());
  assert.ok(Object.values(r.signatures).every((s) => s === 'already-signed'));
  assert.equal(r.tags, { stable: 'already-tagged', [VERSION]: 'already-tagged' });
  assert.equal(signatureFiles(REPO_PATH, pushed.index), ['signature-1', 'signature-2']);
});

test("sensor: the image's own policy accepts the signed index, both arches, by stream and version tag", async () => {
  for (const ref of [`docker://${repo()}:stable`, `docker://${repo()}:${VERSION}`]) {
    const all = await verifyAsSensor(ref, rootfs, sensor);
    assert.ok(all.accepted, all.reason);
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const one = await verifyAsSensor(ref, rootfs, { ...sensor, arch });
      assert.ok(one.accepted, `${arch}: ${one.reason}`);
    }
  }
});

test('promote-style retag: a tag moves to another index by digest, signed for it first', async () => {
  const path = 'rocknsm/promote';
  const both = await pushImages(target(path), images);
  const x86Only = await pushImages(target(path), [images[0]!]);
  assert.is.not(x86Only.index, both.index);
  assert.equal((await signAndTag(target(path), both, ['stable'], sign())).tags, { stable: 'tagged' });
  const moved = await signAndTag(
    target(path),
    { manifests: x86Only.manifests, index: x86Only.index },
    ['stable'],
    sign(),
  );
  assert.equal(moved.tags, { stable: 'moved' });
  assert.is(digestOf(`docker://${repo(path)}:stable`), x86Only.index);
  assert.equal(await tagsOf(path), ['stable']);
  assert.equal(signatureFiles(path, x86Only.index), ['signature-1']);
});

test('sensor: an unsigned push to the same repository is rejected', async () => {
  sh('skopeo', [
    'copy',
    '--dest-tls-verify=false',
    '--authfile',
    reg.authFile,
    fcosBase('x86_64'),
    `docker://${repo()}:unsigned`,
  ]);
  const r = await verifyAsSensor(`docker://${repo()}:unsigned`, rootfs, sensor);
  assert.not.ok(r.accepted);
  assert.match(r.reason, 'A signature was required, but no signature exists');
});

test('sensor: an image signed with another key is rejected', async () => {
  const other = await pushImages(target('rocknsm/rocknsm-coreos'), images);
  assert.is(other.index, pushed.index);
  // The intruder signs the same index and its manifests for a tag of its own, into the same lookaside.
  await signAndTag(target(), pushed, ['intruder'], {
    gpgKey: intruder.email,
    gpgHome: intruder.home,
    lookasideDir: sigs,
  });
  const r = await verifyAsSensor(`docker://${repo()}:intruder`, rootfs, sensor);
  assert.not.ok(r.accepted);
  assert.match(r.reason, /signature|key/i);
});

test('sensor: tampered and replayed signatures are rejected', async () => {
  // A copy of the sensor's trust files pointing at a doctored lookaside.
  const root = join(work, 'tampered-root');
  const bad = join(work, 'tampered-sigs');
  cpSync(join(rootfs, 'etc'), join(root, 'etc'), { recursive: true });
  writeFileSync(
    join(root, 'etc/containers/registries.d/rocknsm-coreos.yaml'),
    `docker:\n  ${repo()}:\n    lookaside: file://${bad}\n`,
  );
  // 1. every byte-level tamper of the stable signatures: flip a byte in the signed data.
  cpSync(sigs, bad, { recursive: true });
  for (const d of [...Object.values(pushed.manifests), pushed.index])
    for (const f of signatureFiles(REPO_PATH, d)) {
      const p = join(lookasidePath(bad, repo(), d), f);
      const b = readFileSync(p);
      const at = Math.floor(b.length / 2);
      b[at] = (b[at] ?? 0) ^ 0xff;
      writeFileSync(p, b);
    }
  const tampered = await verifyAsSensor(`docker://${repo()}:stable`, root, sensor);
  assert.not.ok(tampered.accepted);
  // 2. valid signatures of the aarch64 manifest put in place of the x86_64 ones.
  rmSync(bad, { recursive: true, force: true });
  cpSync(sigs, bad, { recursive: true });
  const x86 = lookasidePath(bad, repo(), pushed.manifests.x86_64);
  rmSync(x86, { recursive: true });
  cpSync(lookasidePath(bad, repo(), pushed.manifests.aarch64), x86, { recursive: true });
  const replayed = await verifyAsSensor(`docker://${repo()}:stable`, root, { ...sensor, arch: 'x86_64' });
  assert.not.ok(replayed.accepted);
  assert.match(replayed.reason, /digest/i);
  // The real lookaside still verifies (the doctored copies were separate).
  assert.ok((await verifyAsSensor(`docker://${repo()}:stable`, rootfs, sensor)).accepted);
});

test('sensor: images from a repository the policy does not name are rejected', async () => {
  sh('skopeo', [
    'copy',
    '--dest-tls-verify=false',
    '--authfile',
    reg.authFile,
    fcosBase('x86_64'),
    `docker://${repo('someone/else')}:latest`,
  ]);
  const r = await verifyAsSensor(`docker://${repo('someone/else')}:latest`, rootfs, sensor);
  assert.not.ok(r.accepted);
  assert.match(r.reason, /rejected/i);
});

test('fault: registry stopped mid-push, the push fails; a re-run converges on the same digests', async () => {
  const path = 'rocknsm/fault-stop';
  let copies = 0;
  const stopping: Runner = async (cmd, args, opts) => {
    if (cmd === 'skopeo' && args[0] === 'copy' && ++copies === 2) await reg.stop();
    return quiet(cmd, args, opts);
  };
  try {
    await pushImages(target(path, stopping), images, { retries: 0 });
    assert.unreachable('push went through with the registry down');
  } catch (err) {
    assert.instance(err, PipelineError);
  }
  await reg.start();
  assert.is(digestOf(`docker://${repo(path)}@${images[0]!.digest}`), images[0]!.digest);
  const again = await pushImages(target(path), images, { retries: 0 });
  assert.equal(again.steps, { x86_64: 'already-present', aarch64: 'pushed', index: 'pushed' });
  assert.is(again.index, pushed.index);
  await signAndTag(target(path), again, ['stable'], {});
  assert.equal(await tagsOf(path), ['stable']);
});

test('fault: registry down for one attempt, the retry finishes the push in the same run', async () => {
  const path = 'rocknsm/fault-retry';
  let copies = 0;
  let failures = 0;
  const flaky: Runner = async (cmd, args, opts) => {
    if (cmd === 'skopeo' && args[0] === 'copy' && ++copies === 2) await reg.stop();
    try {
      return await quiet(cmd, args, opts);
    } catch (err) {
      // The registry comes back after the first failed attempt.
      if (!reg.running && ++failures === 1) await reg.start();
      throw err;
    }
  };
  const r = await pushImages(target(path, flaky), images, { retries: 2, retryDelayMs: 50 });
  assert.ok(failures >= 1);
  assert.equal(r.steps, { x86_64: 'pushed', aarch64: 'pushed', index: 'pushed' });
  assert.is(digestOf(`docker://${repo(path)}@${r.index}`), pushed.index);
});

function child(path: string, killAt: string): number | null {
  const input = {
    target: { repo: `docker://${repo(path)}`, authFile: reg.authFile, tlsVerify: false },
    images,
    tags: ['stable', VERSION],
    sign: sign(),
  };
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'test/publish/images-child.ts'), JSON.stringify(input)],
    {
      env: { ...process.env, KILL_AT: killAt },
      encoding: 'utf8',
      cwd: repoRoot,
    },
  );
  return r.signal === 'SIGKILL' ? -9 : r.status;
}

for (const killAt of ['after-push', 'mid-sign', 'mid-tag']) {
  test(`fault: process killed (${killAt}); a re-run converges with no duplicate signature or tag`, async () => {
    const path = `rocknsm/killed-${killAt}`;
    assert.is(child(path, killAt), -9);
    const before = await tagsOf(path);
    if (killAt !== 'mid-tag') assert.equal(before, [], 'no tag before signatures');
    const again = await pushImages(target(path), images);
    assert.is(again.index, pushed.index);
    await signAndTag(target(path), again, ['stable', VERSION], sign());
    assert.equal(await tagsOf(path), [VERSION, 'stable'].sort());
    for (const d of [...Object.values(again.manifests), again.index])
      assert.equal(signatureFiles(path, d), ['signature-1', 'signature-2'], d);
    const root = join(work, `root-${killAt}`);
    cpSync(join(rootfs, 'etc'), join(root, 'etc'), { recursive: true });
    writeFileSync(
      join(root, 'etc/containers/policy.json'),
      readFileSync(join(rootfs, 'etc/containers/policy.json'), 'utf8').replaceAll(repo(), repo(path)),
    );
    writeFileSync(
      join(root, 'etc/containers/registries.d/rocknsm-coreos.yaml'),
      `docker:\n  ${repo(path)}:\n    lookaside: file://${sigs}\n`,
    );
    const v = await verifyAsSensor(`docker://${repo(path)}:stable`, root, sensor);
    assert.ok(v.accepted, v.reason);
  });
}

test('cosign: where cosign exists, every manifest and the index are signed by digest with the legacy bundle format', async () => {
  const bin = join(work, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  const record = join(work, 'cosign-argv');
  writeFileSync(join(bin, 'cosign'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${record}\n`);
  chmodSync(join(bin, 'cosign'), 0o755);
  const oldPath = process.env.PATH;
  process.env.PATH = `${bin}:${oldPath}`;
  try {
    await signAndTag(target(), pushed, ['stable'], { cosignKey: '/keys/cosign.key' });
  } finally {
    process.env.PATH = oldPath;
  }
  const insecure = '--allow-insecure-registry --allow-http-registry';
  assert.equal(
    readFileSync(record, 'utf8').trim().split('\n'),
    [pushed.manifests.x86_64, pushed.manifests.aarch64, pushed.index].map(
      (d) =>
        `sign --new-bundle-format=false --use-signing-config=false --yes ${insecure} --key /keys/cosign.key ${repo()}@${d}`,
    ),
  );
});

test('oci layout target: same digests, tags as ref names, readable by skopeo', async () => {
  const dir = join(work, 'site', 'oci');
  const t = { repo: `oci:${dir}`, run: quiet };
  const r = await pushImages(t, images);
  assert.is(r.index, pushed.index);
  assert.equal((await pushImages(t, images)).steps.index, 'already-present');
  const s = await signAndTag(t, r, ['stable', VERSION], {
    ...sign(),
    identity: 'ghcr.io/rocknsm/rocknsm-coreos',
  });
  assert.equal(s.tags, { stable: 'tagged', [VERSION]: 'tagged' });
  assert.equal((await signAndTag(t, r, ['stable'], {})).tags, { stable: 'already-tagged' });
  const names = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')).manifests.map(
    (m: { annotations?: Record<string, string> }) => m.annotations?.['org.opencontainers.image.ref.name'],
  );
  assert.equal(names.filter(Boolean).sort(), [VERSION, 'stable'].sort());
  const raw = sh('skopeo', ['inspect', '--raw', `oci:${dir}:stable`]);
  assert.is(`sha256:${sh('sha256sum', [], { input: raw }).split(' ')[0]}`, pushed.index);
  sh('skopeo', ['copy', '--multi-arch', 'all', `oci:${dir}:stable`, `dir:${join(work, 'oci-copy')}`]);
  assert.ok(
    existsSync(join(lookasidePath(sigs, 'ghcr.io/rocknsm/rocknsm-coreos', pushed.index), 'signature-1')),
  );
  // A tag is the index alone: one whose image the target lacks is refused, nothing tagged.
  const lacking = join(work, 'oci-lacking');
  cpSync(dir, lacking, { recursive: true });
  rmSync(join(lacking, 'blobs/sha256', pushed.manifests.aarch64.slice(7)));
  try {
    await signAndTag({ repo: `oci:${lacking}`, run: quiet }, r, ['testing'], {});
    assert.unreachable('tagged');
  } catch (err) {
    assert.instance(err, PipelineError);
    assert.match((err as Error).message, `${pushed.manifests.aarch64} is not in the target`);
  }
  assert.not.match(readFileSync(join(lacking, 'index.json'), 'utf8'), '"testing"');
});

test('oci layout target: blobs go straight from the archive (nothing unpacked); a damaged blob is replaced, a damaged archive refused', async () => {
  const dir = join(work, 'oci-stream');
  const scratch = join(work, 'oci-stream-scratch');
  const t = { repo: `oci:${dir}`, run: quiet };
  const s = await openPush(t, images, { workDir: scratch });
  try {
    for (const img of images) assert.is(await s.pushArch(img.arch), 'pushed');
    assert.is(await s.pushIndex(), 'pushed');
    // The scratch directory holds the index's own layout and nothing of any image.
    const staged = readdirSync(join(scratch, 'layout', 'index', 'blobs', 'sha256'));
    assert.equal(staged, [s.index.slice(7)]);
  } finally {
    s.close();
  }
  // Every blob the archives hold is in the layout, each hashing to its name; no temporary left.
  const blobs = join(dir, 'blobs', 'sha256');
  const names = readdirSync(blobs);
  assert.equal(
    names.filter((n) => n.includes('.tmp-')),
    [],
  );
  for (const n of names) assert.is(sha256Of(join(blobs, n)), n, n);
  const layer = layerOf(images[0]!);
  // A blob in the layout that no longer hashes to its name is written again by a re-run.
  writeFileSync(join(blobs, layer.digest.slice(7)), 'damaged');
  assert.equal((await pushImages(t, images)).steps, {
    x86_64: 'pushed',
    aarch64: 'already-present',
    index: 'already-present',
  });
  assert.is(sha256Of(join(blobs, layer.digest.slice(7))), layer.digest.slice(7));
  // An archive whose layer does not match its digest: refused naming it, nothing put in.
  const archive = join(work, 'damaged.ociarchive');
  copyFileSync(images[0]!.archive, archive);
  const fd = openSync(archive, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, layer.offset + Math.floor(layer.size / 2));
  byte[0] = byte[0]! ^ 0xff;
  writeSync(fd, byte, 0, 1, layer.offset + Math.floor(layer.size / 2));
  closeSync(fd);
  const other = join(work, 'oci-damaged');
  try {
    await pushImages({ repo: `oci:${other}`, run: quiet }, [{ ...images[0]!, archive }]);
    assert.unreachable('pushed');
  } catch (err) {
    assert.instance(err, DataError);
    assert.match((err as Error).message, `${archive}: blob ${layer.digest} does not match its digest`);
  }
  const left = readdirSync(join(other, 'blobs', 'sha256'));
  assert.not.ok(left.includes(layer.digest.slice(7)), 'the damaged layer is not in the layout');
  assert.not.ok(left.includes(images[0]!.digest.slice(7)), 'nor the manifest that names it');
  assert.equal(
    left.filter((n) => n.includes('.tmp-')),
    [],
  );
});

test('config: publish.trust with a missing key is an error naming the file, line and rule', async () => {
  const { loadProject, projectPaths } = await import('../../pipeline/config/index.ts');
  const project = makeProject(
    join(work, 'project-bad'),
    `  trust:\n    gpg-key: manifests/keys/missing.gpg\n    lookaside: https://example.org/sigs\n`,
  );
  try {
    loadProject(projectPaths(project));
    assert.unreachable('loaded');
  } catch (err) {
    assert.instance(err, ConfigError);
    const issue = (err as ConfigError).issues.find((i) => i.rule === 'trust-key-exists');
    assert.ok(issue, (err as Error).message);
    assert.is(issue!.file, 'manifests/streams/stable.yaml');
    const lines = readFileSync(join(project, 'manifests/streams/stable.yaml'), 'utf8').split('\n');
    assert.match(lines[issue!.line! - 1]!, 'gpg-key: manifests/keys/missing.gpg');
  }
});

test.run();
