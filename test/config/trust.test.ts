// publish.trust key checks with real gpg, and `rock-image keys generate`: a trust key that is
// missing, no OpenPGP data, a private key or expired is refused at the stream's line (exit 65,
// nothing written); two keys make one keyring; the keys command makes an RSA-4096 signing key
// whose private half never lands in the project.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { ConfigError, formatIssue } from '../../pipeline/errors.ts';
import { showKeysSync } from '../../pipeline/exec/gpg.ts';
import { renderSummary } from '../../pipeline/gha.ts';
import { describeSigning, signingOf, trustFiles } from '../../pipeline/plan/trust.ts';
import { fcosBase, repoRoot } from '../world/fcos-base.ts';
import { exportArmored, exportSecret, makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { needTool, shResult } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'config', `trust-${process.pid}`);
let good: TestKey;
let next: TestKey;
let expired: TestKey;

test.before(() => {
  needTool('gpg');
  rmSync(work, { recursive: true, force: true });
  good = makeKey(join(work, 'good'), 'rock-good');
  next = makeKey(join(work, 'next'), 'rock-next');
  // Made (and expired) in the past: created 2026-01-01, valid for one day.
  expired = makeKey(join(work, 'expired'), 'rock-expired', { fakedTime: '20260101T000000' });
});
test.after(() => {
  for (const k of [good, next, expired]) if (k) stopAgent(k);
  rmSync(work, { recursive: true, force: true });
});

/** The real CLI, as a user runs it. */
const rockImage = (...args: string[]) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args]);

let n = 0;
/** A copy of the project whose stable stream's trust block is `trust` (YAML under publish:). */
function project(trust: string, keys: Record<string, string | Buffer> = {}): string {
  const dir = join(work, `project-${++n}`);
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true });
  for (const [f, bytes] of Object.entries(keys)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), bytes);
  }
  const stream = join(dir, 'manifests/streams/stable.yaml');
  const text = readFileSync(stream, 'utf8').replace(/^ {2}trust:\n( {4}.*\n)*/m, trust);
  writeFileSync(stream, text);
  return dir;
}

function issues(dir: string) {
  try {
    loadProject(projectPaths(dir));
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

const trustYaml = (key: string) =>
  `  trust:\n    gpg-key: ${key}\n    lookaside: https://rocknsm.github.io/rocknsm-coreos/signatures\n`;
// The stable stream's gpg-key value: line of `    gpg-key:` in the edited file, column 14.
const keyLine = (dir: string) =>
  readFileSync(join(dir, 'manifests/streams/stable.yaml'), 'utf8')
    .split('\n')
    .indexOf(
      readFileSync(join(dir, 'manifests/streams/stable.yaml'), 'utf8')
        .split('\n')
        .find((l) => l.startsWith('    gpg-key:'))!,
    ) + 1;

test('the shipped key: one armored RSA-4096 public key that signs, unexpired; every stream trusts it', () => {
  const key = join(repoRoot, 'manifests/keys/rocknsm.gpg');
  assert.match(readFileSync(key, 'utf8'), /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
  const shown = showKeysSync(key);
  assert.ok(!('error' in shown));
  if ('error' in shown) return;
  assert.is(shown.keys.length, 1);
  const k = shown.keys[0]!;
  assert.is(k.type, 'pub');
  assert.match(k.capabilities, 'S');
  assert.ok(k.expires !== undefined && k.expires * 1000 > Date.now(), 'has an expiry in the future');
  const proj = loadProject(projectPaths(repoRoot));
  for (const s of proj.streams.keys()) {
    const cfg = resolveStream(proj, s, repoRoot);
    assert.is(cfg.stream.publish.trust?.gpgKey.source, key, s);
    assert.is(cfg.stream.publish.unsigned, undefined);
    assert.ok(trustFiles(cfg).some((f) => f.path === '/etc/pki/containers/rocknsm-coreos.gpg'));
  }
});

test('trust key refused at its line: no OpenPGP data, a private key, an expired key', () => {
  const cases: [string, string | Buffer, string, RegExp][] = [
    ['manifests/keys/garbage.gpg', 'not a key at all\n', 'trust-key-openpgp', /is not an OpenPGP public key/],
    [
      'manifests/keys/private.asc',
      readFileSync(exportSecret(good, join(work, 'good-secret.asc'))),
      'trust-key-public',
      /holds a private key: commit only the public half/,
    ],
    [
      'manifests/keys/expired.gpg',
      readFileSync(expired.publicKey),
      'trust-key-expired',
      /expired on 2026-01-02/,
    ],
  ];
  for (const [file, bytes, rule, message] of cases) {
    const dir = project(trustYaml(file), { [file]: bytes });
    const got = issues(dir);
    const hit = got.find((i) => i.rule === rule);
    assert.ok(hit, `${file}: expected ${rule}, got ${got.map(formatIssue).join('; ')}`);
    assert.is(hit!.file, 'manifests/streams/stable.yaml');
    assert.is(hit!.line, keyLine(dir));
    assert.is(hit!.col, 14);
    assert.match(hit!.message, file);
    assert.match(hit!.message, message);
  }
});

test('CLI: a bad trust key exits 65 naming file:line and rule, no stack trace, nothing written', () => {
  const dir = project(trustYaml('manifests/keys/garbage.gpg'), { 'manifests/keys/garbage.gpg': 'junk\n' });
  const out = join(work, 'cli-out.ign');
  const r = rockImage('ignition', '--project', dir, '--profile', 'default', '--output', out);
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, `manifests/streams/stable.yaml:${keyLine(dir)}: trust-key-openpgp`);
  assert.not.match(r.stderr, /\n\s+at /);
  assert.not.ok(existsSync(out));
});

test('rotation: two armored keys become one keyring holding both; a binary one among them is refused', () => {
  const a = readFileSync(exportArmored(good, join(work, 'good.asc')));
  const b = readFileSync(exportArmored(next, join(work, 'next.asc')));
  const dir = project(trustYaml('[manifests/keys/old.gpg, manifests/keys/new.gpg]'), {
    'manifests/keys/old.gpg': a,
    'manifests/keys/new.gpg': b,
  });
  const cfg = resolveStream(loadProject(projectPaths(dir)), 'stable', dir);
  const ring = trustFiles(cfg).find((f) => f.path.endsWith('.gpg'))!;
  assert.is(ring.source, undefined);
  assert.is(ring.content, `${a}${b}`);
  const file = join(work, 'ring.asc');
  writeFileSync(file, ring.content!);
  const shown = showKeysSync(file);
  assert.equal(
    'keys' in shown ? shown.keys.map((k) => k.fingerprint).sort() : shown,
    [good.fingerprint, next.fingerprint].sort(),
  );
  // The policy still has ONE signedBy requirement for our repository (two would be ANDed).
  const policy = JSON.parse(trustFiles(cfg).find((f) => f.path.endsWith('policy.json'))!.content!);
  assert.is(policy.transports.docker['ghcr.io/rocknsm/rocknsm-coreos'].length, 1);

  const mixed = project(trustYaml('[manifests/keys/old.gpg, manifests/keys/new.gpg]'), {
    'manifests/keys/old.gpg': a,
    'manifests/keys/new.gpg': readFileSync(next.publicKey),
  });
  assert.ok(issues(mixed).some((i) => i.rule === 'trust-keys-armored'));
  const same = project(trustYaml('[manifests/keys/old.gpg, manifests/keys/new.gpg]'), {
    'manifests/keys/old.gpg': a,
    'manifests/keys/new.gpg': a,
  });
  assert.ok(issues(same).some((i) => i.rule === 'trust-key-usable' && /is also in/.test(i.message)));
});

test('a stream that publishes without trust needs publish.unsigned; plan shows the reason', () => {
  const dir = project('');
  const missing = issues(dir).find((i) => i.rule === 'publish-signed');
  assert.ok(missing);
  assert.is(missing!.file, 'manifests/streams/stable.yaml');
  const ok = project('  unsigned: a lab stream, sensors verify nothing\n');
  const cfg = resolveStream(loadProject(projectPaths(ok)), 'stable', ok);
  assert.is(cfg.stream.publish.unsigned?.reason, 'a lab stream, sensors verify nothing');
  assert.is(cfg.stream.publish.unsigned?.at.file, 'manifests/streams/stable.yaml');
  assert.equal(trustFiles(cfg), []);
});

test('the opt-out is visible: plan line and build summary say NONE with the reason and its line', () => {
  const ok = project('  unsigned: a lab stream, sensors verify nothing\n');
  const unsigned = signingOf(resolveStream(loadProject(projectPaths(ok)), 'stable', ok).stream.publish);
  const line = readFileSync(join(ok, 'manifests/streams/stable.yaml'), 'utf8')
    .split('\n')
    .findIndex((l) => l.startsWith('  unsigned:'));
  assert.equal(unsigned, {
    policy: 'unsigned',
    reason: 'a lab stream, sensors verify nothing',
    at: `manifests/streams/stable.yaml:${line + 1}`,
  });
  assert.match(
    describeSigning(unsigned),
    /^NONE, on purpose \(publish\.unsigned at manifests\/streams\/stable\.yaml:\d+: a lab stream/,
  );
  const meta = (signing: unknown) => ({
    buildid: '41.20261123.3.0',
    'coreos-assembler.basearch': 'x86_64',
    'rocknsm.signing': signing as never,
  });
  const md = renderSummary({ stream: 'stable', version: '41.20261123.3.0', current: [meta(unsigned)] });
  assert.match(
    md,
    '**Signatures: NONE.** NONE, on purpose (publish.unsigned at manifests/streams/stable.yaml:',
  );
  const shipped = signingOf(
    resolveStream(loadProject(projectPaths(repoRoot)), 'stable', repoRoot).stream.publish,
  );
  assert.equal(shipped, {
    policy: 'required',
    registry: 'ghcr.io/rocknsm/rocknsm-coreos',
    keys: ['manifests/keys/rocknsm.gpg'],
    lookaside: 'https://rocknsm.github.io/rocknsm-coreos/signatures',
  });
  const signed = renderSummary({ stream: 'stable', version: '41.20261123.3.0', current: [meta(shipped)] });
  assert.match(
    signed,
    '**Signatures:** required: sensors accept ghcr.io/rocknsm/rocknsm-coreos only signed by manifests/keys/rocknsm.gpg',
  );
});

test('rock-image plan prints the opt-out with its reason and line', () => {
  const ok = project('  unsigned: a lab stream, sensors verify nothing\n');
  const r = rockImage(
    'plan',
    '--project',
    ok,
    '--stream',
    'stable',
    '--arch',
    'x86_64',
    '--base',
    `x86_64=${fcosBase('x86_64')}`,
    '--storage',
    join(work, 'storage'),
  );
  assert.is(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^# signatures: NONE, on purpose \(publish\.unsigned at manifests\/streams\/stable\.yaml:\d+: a lab stream, sensors verify nothing\): sensors of this stream accept unsigned images$/m,
  );
});

test('keys generate: RSA-4096 signing key with an expiry; public half armored in manifests/keys, private half 0600 outside', () => {
  const dir = project(trustYaml('manifests/keys/rocknsm.gpg'));
  rmSync(join(dir, 'manifests/keys'), { recursive: true });
  const cli = (...args: string[]) => rockImage('keys', ...args, '--project', dir);
  // Inside the project: refused before anything is made.
  const inside = cli('generate', '--name', 'release', '--private-out', join(dir, 'secret.asc'));
  assert.is(inside.code, 64, inside.stderr);
  assert.match(inside.stderr, 'inside the project');
  assert.not.ok(existsSync(join(dir, 'secret.asc')));
  assert.not.ok(existsSync(join(dir, 'manifests/keys/release.gpg')));

  const secret = join(work, 'release-private.asc');
  const r = cli('generate', '--name', 'release', '--expire', '30d', '--private-out', secret);
  assert.is(r.code, 0, r.stderr);
  const pub = join(dir, 'manifests/keys/release.gpg');
  assert.match(readFileSync(pub, 'utf8'), /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
  assert.match(readFileSync(secret, 'utf8'), /^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
  assert.is(statSync(secret).mode & 0o777, 0o600);
  const shown = showKeysSync(pub);
  assert.ok('keys' in shown);
  if (!('keys' in shown)) return;
  const k = shown.keys[0]!;
  assert.is(shown.keys.length, 1);
  assert.is(k.type, 'pub');
  assert.match(k.capabilities, 'S');
  const days = ((k.expires ?? 0) * 1000 - Date.now()) / 86_400_000;
  assert.ok(days > 29 && days < 31, `expires in ${days} days`);
  // RSA (algorithm 1), 4096 bits: fields 4 and 3 of the pub record.
  const colons = shResult('gpg', [
    '--batch',
    '--homedir',
    join(work, 'good/gnupg'),
    '--with-colons',
    '--show-keys',
    pub,
  ]);
  assert.match(colons.stdout, /^pub:[^:]*:4096:1:/m);
  assert.match(r.stdout, `fingerprint: ${k.fingerprint}`);
  assert.match(r.stdout, 'gh secret set SIGNING_KEY <');
  // The config loader accepts what it made; a second run refuses to overwrite.
  const streamFile = join(dir, 'manifests/streams/stable.yaml');
  writeFileSync(streamFile, readFileSync(streamFile, 'utf8').replace('keys/rocknsm.gpg', 'keys/release.gpg'));
  assert.equal(
    issues(dir).filter((i) => i.file.endsWith('stable.yaml')),
    [],
  );
  const again = cli('generate', '--name', 'release', '--private-out', secret);
  assert.is(again.code, 64);
  assert.match(again.stderr, 'exists');
});

test.run();
