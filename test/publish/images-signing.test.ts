// Artifact signatures (exec/gpg.ts) with real gpg: what coreos-installer checks is a detached
// binary signature <file>.sig verifiable with only our exported public key. And the pure trust
// renderer (plan/trust.ts) for the cosign variant, which cannot be verified by Debian's skopeo.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../pipeline/errors.ts';
import { cosignSignArgv } from '../../pipeline/exec/cosign.ts';
import { exportPublicKey, fingerprint, readSigned, signFile } from '../../pipeline/exec/gpg.ts';
import { renderPolicy, renderRegistriesD, repositoryOf } from '../../pipeline/plan/trust.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { needTool, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `signing-${process.pid}`);
let key: TestKey;
let other: TestKey;

test.before(() => {
  needTool('gpg');
  rmSync(work, { recursive: true, force: true });
  key = makeKey(join(work, 'key'), 'rock-release');
  other = makeKey(join(work, 'other'), 'rock-other');
});
test.after(() => {
  if (key) stopAgent(key);
  if (other) stopAgent(other);
  rmSync(work, { recursive: true, force: true });
});

/** gpg --verify in a fresh keyring holding only `pub`: what a downloader with our key does. */
function verifyWith(pub: string, sig: string, file: string) {
  const home = join(work, `verify-${Math.random().toString(36).slice(2)}`);
  mkdirSync(home, { mode: 0o700 });
  shResult('gpg', ['--batch', '--homedir', home, '--import', pub]);
  const r = shResult('gpg', ['--batch', '--homedir', home, '--status-fd', '1', '--verify', sig, file]);
  shResult('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
  return r;
}

test('signFile: detached binary <file>.sig, verifiable with the exported public key only', async () => {
  const dir = join(work, 'artifacts');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'rocknsm-coreos-41.20261122.3.0-metal.x86_64.raw.xz');
  writeFileSync(file, Buffer.alloc(300_000, 7));
  const sig = await signFile(file, key.email, key.home);
  assert.is(sig, `${file}.sig`);
  const bytes = readFileSync(sig);
  // An OpenPGP signature packet (old or new format tag 2), not ASCII armor.
  assert.ok([0x88, 0x89, 0xc2].includes(bytes[0]!), `first byte ${bytes[0]}`);
  assert.not.match(bytes.subarray(0, 20).toString('latin1'), '-----BEGIN');
  assert.equal(readdirSync(dir).sort(), [file, sig].map((p) => p.slice(dir.length + 1)).sort());
  const pub = join(work, 'release.gpg');
  const exported = await exportPublicKey(key.email, key.home, { output: pub });
  assert.ok(exported.equals(readFileSync(pub)));
  const ok = verifyWith(pub, sig, file);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, `VALIDSIG ${key.fingerprint}`);
  // A changed artifact no longer verifies; nor does our signature under another key.
  writeFileSync(file, Buffer.alloc(300_000, 8));
  assert.is.not(verifyWith(pub, sig, file).code, 0);
  const otherPub = join(work, 'other.gpg');
  await exportPublicKey(other.email, other.home, { output: otherPub });
  writeFileSync(file, Buffer.alloc(300_000, 7));
  assert.is.not(verifyWith(otherPub, sig, file).code, 0);
});

test('exportPublicKey: armored text; fingerprint resolves email and refuses unknown keys', async () => {
  const armored = (await exportPublicKey(key.email, key.home, { armor: true })).toString();
  assert.match(armored, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
  assert.is(await fingerprint(key.email, key.home), key.fingerprint);
  try {
    await fingerprint('nobody@rocknsm.test', key.home);
    assert.unreachable('found');
  } catch (err) {
    assert.instance(err, UsageError);
    assert.match((err as Error).message, 'nobody@rocknsm.test');
  }
});

test('readSigned: payload and signer of a valid signature; undefined for a corrupt one', async () => {
  const file = join(work, 'payload.json');
  writeFileSync(file, '{"critical":{}}');
  const sig = join(work, 'payload.sig');
  const r = shResult('gpg', ['--batch', '--homedir', key.home, '--yes', '--output', sig, '--sign', file]);
  assert.is(r.code, 0, r.stderr);
  const got = await readSigned(sig, key.home);
  assert.equal(got, { signer: key.fingerprint, payload: '{"critical":{}}' });
  const b = readFileSync(sig);
  b[b.length - 10] = (b[b.length - 10] ?? 0) ^ 0xff;
  writeFileSync(sig, b);
  assert.is(await readSigned(sig, key.home), undefined);
});

test('trust: our repository signedBy our keyring only (no sigstoreSigned); service repos accepted', () => {
  const policy = JSON.parse(
    renderPolicy(
      'rocknsm-coreos',
      { registry: 'ghcr.io/rocknsm/rocknsm-coreos', lookaside: 'https://x/sigs' },
      ['docker.io/zeek/zeek:7.0.5', 'ghcr.io/rocknsm/fsf@sha256:abc', 'localhost:5000/a/b:1'],
    ),
  );
  assert.equal(policy.transports.docker['ghcr.io/rocknsm/rocknsm-coreos'], [
    { type: 'signedBy', keyType: 'GPGKeys', keyPath: '/etc/pki/containers/rocknsm-coreos.gpg' },
  ]);
  assert.equal(Object.keys(policy.transports.docker), [
    'docker.io/zeek/zeek',
    'ghcr.io/rocknsm/fsf',
    'ghcr.io/rocknsm/rocknsm-coreos',
    'localhost:5000/a/b',
  ]);
  assert.equal(policy.default, [{ type: 'reject' }]);
  assert.is(
    renderRegistriesD({ registry: 'ghcr.io/rocknsm/rocknsm-coreos', lookaside: 'https://x/sigs' })
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n'),
    'docker:\n  ghcr.io/rocknsm/rocknsm-coreos:\n    lookaside: https://x/sigs\n',
  );
  assert.is(repositoryOf('localhost:5000/a/b'), 'localhost:5000/a/b');
  assert.is(repositoryOf('quay.io/x/y:tag@sha256:1'), 'quay.io/x/y');
});

test('cosign argv: by digest, legacy bundle, no signing config', () => {
  assert.equal(cosignSignArgv({ key: 'k.key', repo: 'ghcr.io/r/i', digest: 'sha256:ab' }), [
    'sign',
    '--new-bundle-format=false',
    '--use-signing-config=false',
    '--yes',
    '--key',
    'k.key',
    'ghcr.io/r/i@sha256:ab',
  ]);
});

test.run();
