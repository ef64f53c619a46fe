import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Arch } from '../../pipeline/config/index.ts';
import { signFile } from '../../pipeline/exec/gpg.ts';
import { createRunner, type Runner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { lookasidePath, signAndTag } from '../../pipeline/publish/image-tags.ts';
import { type Pushed, pushImages } from '../../pipeline/publish/images.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { exportArmored, makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { sensorTrust, signedProject, tinyImage } from '../world/signed-release.ts';
import { needTool, shResult } from '../world/tools.ts';

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
  pushed = await pushImages(
    target(),
    ARCHES.map((a) => tinyImage(work, a)),
  );
  for (const [name, key] of Object.entries(keys)) await signInto(join(work, 'sigs', name), key);
  const armored = (k: TestKey) => exportArmored(k, join(work, `${k.email}.asc`));
  const project = (name: string, keyFiles: string[]) =>
    signedProject(join(work, name), repo(), keyFiles, `http://127.0.0.1:${site.port}/signatures`);
  single = sensorTrust(
    project('project-single', [armored(keys.release)]),
    join(work, 'sensor-single'),
    repo(),
  );
  rotation = sensorTrust(
    project('project-rotation', [armored(keys.release), armored(keys.next)]),
    join(work, 'sensor-rotation'),
    repo(),
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

test('artifact signatures by the RSA-4096 release key are SHA-256 and verify as coreos-installer verifies them', async () => {
  const file = join(work, 'artifact.raw.xz');
  writeFileSync(file, 'the bytes of a disk image\n');
  await signFile(file, keys.release.fingerprint, keys.release.home);
  // Signature packet digest algorithm 8: SHA256 (RFC 4880 9.4); gpg's default for this key is 10.
  const packets = shResult('gpg', ['--batch', '--list-packets', `${file}.sig`]);
  assert.match(packets.stdout, /digest algo 8,/);
  // coreos-installer's verification: a home holding only the public key, the signature file,
  // the data on stdin (coreos/coreos-installer src/io/verify.rs:206-216 @bee4500).
  const home = join(work, 'installer-gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  assert.is(shResult('gpg', ['--homedir', home, '--batch', '--import', keys.release.publicKey]).code, 0);
  const verify = (input: string) =>
    shResult('gpg', ['--homedir', home, '--batch', '--verify', `${file}.sig`, '-'], { input }).code;
  assert.is(verify(readFileSync(file, 'utf8')), 0);
  assert.is.not(verify('the bytes of another disk image\n'), 0);
});

test.run();
