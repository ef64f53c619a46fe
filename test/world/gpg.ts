// Ephemeral GPG keys for signing tests: a private GNUPGHOME per key, no passphrase, ed25519.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { needTool, sh } from './tools.ts';

export interface TestKey {
  home: string;
  email: string;
  fingerprint: string;
  /** Binary public key export (what /etc/pki/containers/<name>.gpg holds). */
  publicKey: string;
}

/** Makes a signing key in `dir` (recreated), valid for a day. */
export function makeKey(dir: string, name: string): TestKey {
  needTool('gpg');
  rmSync(dir, { recursive: true, force: true });
  const home = join(dir, 'gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
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
      'ed25519',
      'sign',
      '1d',
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

/** Stops the gpg-agent a key's home started (it would outlive the test otherwise). */
export function stopAgent(key: TestKey): void {
  sh('gpgconf', ['--homedir', key.home, '--kill', 'gpg-agent']);
}
