// What a sensor enforces from its first pull, with REAL skopeo and gpg: the trust files the
// profile's Ignition writes (policy.json, registries.d entry, key ring), taken out of the config
// `rock-image ignition` renders, and `skopeo --policy P --registries.d D copy docker://... dir:...`
// against a real docker-registry holding a two-arch index, with the simple-signing lookaside
// served over HTTP at the URL the stream's publish.trust names. Accepted: our index signed by the
// release key (both arches). Rejected, for both arches: unsigned, signed by another key, a
// tampered signature, signed by a key that has since expired. A rotation keyring accepts either
// key. Only the policy's keyPath is moved under the test's root (skopeo has no --root); every
// other byte is the Ignition's.
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Arch } from '../../pipeline/config/index.ts';
import { createRunner, type Runner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import {
  type ArchImage,
  lookasidePath,
  type Pushed,
  pushImages,
  signAndTag,
} from '../../pipeline/publish/images.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { exportArmored, makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { followRegistry } from '../world/project.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { needTool, sh, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `trust-${process.pid}`);
const REPO_PATH = 'rocknsm/rocknsm-coreos';
const ARCHES: Arch[] = ['x86_64', 'aarch64'];
const ociArch = { x86_64: 'amd64', aarch64: 'arm64' } as const;
const quiet: Runner = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));

let reg: TestRegistry;
let site: StaticServer;
let pushed: Pushed;
const keys: Record<'release' | 'next' | 'other' | 'expired', TestKey> = {} as never;
const repo = () => `${reg.host}/${REPO_PATH}`;
const target = () => ({ repo: `docker://${repo()}`, tlsVerify: false, run: quiet });
const served = () => join(work, 'site', 'signatures');

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A one-layer OCI image for `arch` as an oci-archive (what a build's .ociarchive is). */
function tinyImage(arch: Arch): ArchImage {
  const dir = join(work, 'images', arch);
  const blobs = join(dir, 'layout', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  mkdirSync(join(dir, 'root', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'root', 'etc', 'os-release'), `ID=rocknsm-test\nARCH=${arch}\n`);
  sh('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '-cf',
    join(dir, 'layer.tar'),
    '-C',
    join(dir, 'root'),
    '.',
  ]);
  const blob = (bytes: Buffer | string) => {
    const d = sha256(bytes);
    writeFileSync(join(blobs, d.slice(7)), bytes);
    return { digest: d, size: Buffer.byteLength(bytes) };
  };
  const layer = blob(readFileSync(join(dir, 'layer.tar')));
  const config = blob(
    JSON.stringify({
      architecture: ociArch[arch],
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }),
  );
  writeFileSync(join(dir, 'layout', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, 'layout', 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  const archive = join(dir, `${arch}.ociarchive`);
  sh('tar', ['-cf', archive, '-C', join(dir, 'layout'), '.']);
  return { arch, archive, digest: manifest.digest };
}

/** A project copy: stable publishes to the test registry, trusting `keyFiles`; a profile follows it. */
function project(name: string, keyFiles: string[]): string {
  const dir = join(work, name);
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true });
  const names = keyFiles.map((f, i) => {
    cpSync(f, join(dir, 'manifests/keys', `key-${i}.asc`));
    return `manifests/keys/key-${i}.asc`;
  });
  const stream = join(dir, 'manifests/streams/stable.yaml');
  const text = readFileSync(stream, 'utf8').replace(/^publish:\n( {2}.*\n)*/m, '');
  writeFileSync(
    stream,
    `${text}publish:\n  registry: ${repo()}\n  trust:\n    gpg-key: [${names.join(', ')}]\n    lookaside: http://127.0.0.1:${site.port}/signatures\n`,
  );
  followRegistry(dir, repo(), ['stable']);
  return dir;
}

/**
 * Renders the default profile with the real CLI and writes the trust files its Ignition config
 * holds under `root`; returns the policy (keyPath moved under root) and registries.d paths.
 */
function sensorTrust(projectDir: string, root: string): { policy: string; registriesD: string } {
  const ign = join(root, 'config.ign');
  mkdirSync(root, { recursive: true });
  const r = shResult(process.execPath, [
    join(repoRoot, 'bin/rock-image.js'),
    'ignition',
    '--project',
    projectDir,
    '--profile',
    'default',
    '--ssh-key',
    join(repoRoot, 'test/fixtures/profiles/test-keys.pub'),
    '--output',
    ign,
    '--validate',
  ]);
  assert.is(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(ign, 'utf8')) as {
    storage: { files: { path: string; contents: { source: string } }[] };
  };
  const trust = cfg.storage.files.filter((f) => /^\/etc\/(containers|pki\/containers)\//.test(f.path));
  assert.equal(trust.map((f) => f.path).sort(), [
    '/etc/containers/policy.json',
    '/etc/containers/registries.d/rocknsm-coreos.yaml',
    '/etc/pki/containers/rocknsm-coreos.gpg',
  ]);
  for (const f of trust) {
    const m = /^data:([^,]*),(.*)$/s.exec(f.contents.source)!;
    const bytes = m[1]!.endsWith(';base64')
      ? Buffer.from(m[2]!, 'base64')
      : Buffer.from(decodeURIComponent(m[2]!));
    mkdirSync(dirname(join(root, f.path)), { recursive: true });
    writeFileSync(join(root, f.path), bytes);
  }
  const policy = JSON.parse(readFileSync(join(root, 'etc/containers/policy.json'), 'utf8'));
  const ours = policy.transports.docker[repo()];
  // One requirement: any key in the ring (formats.md §9; two would be ANDed).
  assert.equal(ours, [
    { type: 'signedBy', keyType: 'GPGKeys', keyPath: '/etc/pki/containers/rocknsm-coreos.gpg' },
  ]);
  ours[0].keyPath = join(root, ours[0].keyPath);
  writeFileSync(join(root, 'policy.json'), JSON.stringify(policy));
  return { policy: join(root, 'policy.json'), registriesD: join(root, 'etc/containers/registries.d') };
}

/** Points the served lookaside at `dir` (each case has its own signatures). */
function serveSignatures(dir: string | undefined): void {
  rmSync(served(), { force: true, recursive: true });
  mkdirSync(dirname(served()), { recursive: true });
  if (dir) symlinkSync(dir, served());
}

/** Signs the index and both manifests for tag stable into `dir` with `key`. */
async function signInto(dir: string, key: TestKey): Promise<void> {
  await signAndTag(target(), pushed, ['stable'], {
    gpgKey: key.fingerprint,
    gpgHome: key.home,
    lookasideDir: dir,
  });
}

/** The sensor's pull of one arch's instance: skopeo copy under the policy the Ignition wrote. */
function pull(trust: { policy: string; registriesD: string }, arch: Arch) {
  mkdirSync(join(work, 'pulled'), { recursive: true });
  const out = join(work, 'pulled', `${arch}-${Math.random().toString(36).slice(2)}`);
  const r = shResult('skopeo', [
    '--policy',
    trust.policy,
    '--registries.d',
    trust.registriesD,
    '--override-arch',
    ociArch[arch],
    '--override-os',
    'linux',
    'copy',
    '--src-tls-verify=false',
    `docker://${repo()}:stable`,
    `dir:${out}`,
  ]);
  rmSync(out, { recursive: true, force: true });
  return { ok: r.code === 0, why: r.stderr.trim().split('\n').at(-1) ?? '' };
}

let single: { policy: string; registriesD: string };
let rotation: { policy: string; registriesD: string };

test.before(async () => {
  for (const t of ['skopeo', 'gpg', 'docker-registry', 'htpasswd', 'tar', 'ignition-validate']) needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'site'), { recursive: true });
  keys.release = makeKey(join(work, 'keys/release'), 'rock-release', { algo: 'rsa4096', expire: '1y' });
  keys.next = makeKey(join(work, 'keys/next'), 'rock-next');
  keys.other = makeKey(join(work, 'keys/other'), 'intruder');
  keys.expired = makeKey(join(work, 'keys/expired'), 'rock-expired', { fakedTime: '20260101T000000' });
  reg = await startRegistry(join(work, 'registry'), undefined, undefined, { auth: false });
  site = await serveDir(join(work, 'site'));
  pushed = await pushImages(target(), ARCHES.map(tinyImage));
  for (const [name, key] of Object.entries(keys)) await signInto(join(work, 'sigs', name), key);
  const armored = (k: TestKey) => exportArmored(k, join(work, `${k.email}.asc`));
  single = sensorTrust(project('project-single', [armored(keys.release)]), join(work, 'sensor-single'));
  rotation = sensorTrust(
    project('project-rotation', [armored(keys.release), armored(keys.next)]),
    join(work, 'sensor-rotation'),
  );
});

test.after(async () => {
  await site?.close();
  await reg?.stop();
  for (const k of Object.values(keys)) if (k) stopAgent(k);
  rmSync(work, { recursive: true, force: true });
});

test('the index holds one image per arch, each signed in the lookaside the registries.d names', () => {
  assert.equal(Object.keys(pushed.manifests).sort(), [...ARCHES].sort());
  const regd = readFileSync(join(single.registriesD, 'rocknsm-coreos.yaml'), 'utf8');
  assert.match(regd, `lookaside: http://127.0.0.1:${site.port}/signatures`);
  for (const d of [...Object.values(pushed.manifests), pushed.index])
    assert.equal(readdirSync(lookasidePath(join(work, 'sigs/release'), repo(), d)), ['signature-1']);
});

test('accepted: signed by the release key, both arches', async () => {
  serveSignatures(join(work, 'sigs/release'));
  for (const arch of ARCHES) {
    const r = pull(single, arch);
    assert.ok(r.ok, `${arch}: ${r.why}`);
  }
  // The sensor fetched the per-arch signatures over HTTP from the lookaside (the server's log
  // lines arrive once this process's event loop runs again after the synchronous pulls).
  await new Promise((r) => setTimeout(r, 300));
  for (const arch of ARCHES)
    assert.ok(
      site.requests.some((p) => p.includes(pushed.manifests[arch]!.replace(':', '='))),
      `${arch} signature requested: ${site.requests.join(' ')}`,
    );
});

test('rejected: unsigned, both arches', () => {
  serveSignatures(undefined);
  for (const arch of ARCHES) {
    const r = pull(single, arch);
    assert.not.ok(r.ok, arch);
    assert.match(r.why, 'A signature was required, but no signature exists');
  }
});

test('rejected: signed by another key, both arches', () => {
  serveSignatures(join(work, 'sigs/other'));
  for (const arch of ARCHES) {
    const r = pull(single, arch);
    assert.not.ok(r.ok, arch);
    // Observed from skopeo 1.9.3 + gpgme here: summary 128 and GPG_ERR_NO_PUBKEY (err 9), the
    // signer's key is not in the ring.
    assert.match(r.why, 'Invalid GPG signature');
    assert.match(r.why, 'Summary:128');
    assert.match(r.why, keys.other.fingerprint);
  }
});

test('rejected: a tampered signature, both arches', () => {
  const bad = join(work, 'sigs/tampered');
  cpSync(join(work, 'sigs/release'), bad, { recursive: true });
  for (const d of Object.values(pushed.manifests)) {
    const p = join(lookasidePath(bad, repo(), d), 'signature-1');
    const b = readFileSync(p);
    const at = Math.floor(b.length / 2);
    b[at] = (b[at] ?? 0) ^ 0xff;
    writeFileSync(p, b);
  }
  serveSignatures(bad);
  for (const arch of ARCHES) {
    const r = pull(single, arch);
    assert.not.ok(r.ok, arch);
    // The policy rejects the signature that is there (gpgme's complaint varies with the byte hit:
    // a bad signature, no signature packet, "No data"), not a missing one.
    assert.match(r.why, 'Source image rejected: ');
    assert.not.match(r.why, 'no signature exists');
  }
});

test('rejected: signed by a key that has expired since (in a keyring that trusts it), both arches', () => {
  // The expired key's own ring: were it not expired, its signatures would be accepted.
  const root = join(work, 'sensor-expired');
  mkdirSync(root, { recursive: true });
  const policy = JSON.parse(readFileSync(single.policy, 'utf8'));
  policy.transports.docker[repo()][0].keyPath = keys.expired.publicKey;
  writeFileSync(join(root, 'policy.json'), JSON.stringify(policy));
  serveSignatures(join(work, 'sigs/expired'));
  for (const arch of ARCHES) {
    const r = pull({ policy: join(root, 'policy.json'), registriesD: single.registriesD }, arch);
    assert.not.ok(r.ok, arch);
    // Observed from skopeo 1.9.3 + gpgme here: summary 32 and GPG_ERR_KEY_EXPIRED (0x99), signed by
    // the (trusted) key that has expired since.
    assert.match(r.why, 'Summary:32,');
    assert.match(r.why, keys.expired.fingerprint);
  }
});

test('rotation: the two-key ring accepts either key, still nothing else; the single ring refuses the new key', () => {
  for (const who of ['release', 'next'] as const) {
    serveSignatures(join(work, 'sigs', who));
    for (const arch of ARCHES) {
      const r = pull(rotation, arch);
      assert.ok(r.ok, `${who} ${arch}: ${r.why}`);
    }
  }
  serveSignatures(join(work, 'sigs/next'));
  for (const arch of ARCHES) assert.not.ok(pull(single, arch).ok, `single ring, next key, ${arch}`);
  for (const who of ['other', 'expired'] as const) {
    serveSignatures(join(work, 'sigs', who));
    for (const arch of ARCHES) assert.not.ok(pull(rotation, arch).ok, `${who} ${arch}`);
  }
});

test.run();
