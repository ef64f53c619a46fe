// Ephemeral GPG keys for signing tests: a private GNUPGHOME per key, no passphrase, ed25519.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needTool, sh } from './tools.ts';

export interface TestKey {
  home: string;
  email: string;
  fingerprint: string;
  /** Binary public key export (what /etc/pki/containers/<name>.gpg holds). */
  publicKey: string;
}

export interface KeyOptions {
  /** Key algorithm for --quick-gen-key; default ed25519. */
  algo?: string;
  /** Expiry as --quick-gen-key takes it; default 1d. */
  expire?: string;
  /**
   * Make the key (and every later signature from this home) at this time, `YYYYMMDDThhmmss`:
   * gpg's --faked-system-time, also written to the home's gpg.conf so that signers driving gpg
   * through gpgme (skopeo --sign-by) sign at that time too. With a short expiry this makes a key
   * that has expired by now, with signatures made while it was valid.
   */
  fakedTime?: string;
}

/** Makes a signing key in `dir` (recreated), valid for a day unless `opts` say otherwise. */
export function makeKey(dir: string, name: string, opts: KeyOptions = {}): TestKey {
  needTool('gpg');
  rmSync(dir, { recursive: true, force: true });
  const home = join(dir, 'gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  if (opts.fakedTime) writeFileSync(join(home, 'gpg.conf'), `faked-system-time ${opts.fakedTime}\n`);
  const email = `${name}@rocknsm.test`;
  const env = { GNUPGHOME: home };
  sh(
    'gpg',
    [
      '--batch',
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      '',
      '--quick-gen-key',
      `${name} <${email}>`,
      opts.algo ?? 'ed25519',
      'sign',
      opts.expire ?? '1d',
    ],
    { env },
  );
  const fingerprint = sh('gpg', ['--batch', '--with-colons', '--list-secret-keys', email], { env })
    .split('\n')
    .find((l) => l.startsWith('fpr:'))!
    .split(':')[9]!;
  const publicKey = join(dir, `${name}.gpg`);
  sh('gpg', ['--batch', '--yes', '--output', publicKey, '--export', fingerprint], { env });
  return { home, email, fingerprint, publicKey };
}

/** The key's public half, ASCII-armored, written to `file`. */
export function exportArmored(key: TestKey, file: string): string {
  sh('gpg', ['--batch', '--yes', '--armor', '--output', file, '--export', key.fingerprint], {
    env: { GNUPGHOME: key.home },
  });
  return file;
}

/** The key's PRIVATE half, ASCII-armored, written to `file` (what must never be committed). */
export function exportSecret(key: TestKey, file: string): string {
  sh(
    'gpg',
    [
      '--batch',
      '--yes',
      '--pinentry-mode',
      'loopback',
      '--passphrase',
      '',
      '--armor',
      '--output',
      file,
      '--export-secret-keys',
      key.fingerprint,
    ],
    { env: { GNUPGHOME: key.home } },
  );
  return file;
}

/** Stops the gpg-agent a key's home started (it would outlive the test otherwise). */
export function stopAgent(key: TestKey): void {
  sh('gpgconf', ['--homedir', key.home, '--kill', 'gpg-agent']);
}
