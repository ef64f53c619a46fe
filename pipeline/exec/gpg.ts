// gpg: detached signatures for published artifacts (what coreos-installer checks: a binary
// detached signature, <file>.sig), public key export, and reading back who signed what.
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { UsageError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { createRunner, type Runner } from './run.ts';
import { requireTool } from './tools.ts';

export interface GpgOptions {
  /** Process runner; default: a quiet one. */
  run?: Runner;
  /** File holding the key's passphrase (loopback pinentry); default: the key has none or an agent has it. */
  passphraseFile?: string;
}

/** A runner that logs nowhere, for callers of the module-level API that pass none. */
export function quietRunner(): Runner {
  return createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
}

function base(gpgHome: string | undefined, opts: GpgOptions): string[] {
  return [
    '--batch',
    '--no-tty',
    ...(gpgHome ? ['--homedir', gpgHome] : []),
    ...(opts.passphraseFile ? ['--pinentry-mode', 'loopback', '--passphrase-file', opts.passphraseFile] : []),
  ];
}

/** Resolves a key given by fingerprint, key ID or email to its full primary fingerprint. */
export async function fingerprint(key: string, gpgHome?: string, opts: GpgOptions = {}): Promise<string> {
  requireTool('gpg');
  const run = opts.run ?? quietRunner();
  const r = await run('gpg', [...base(gpgHome, opts), '--with-colons', '--list-secret-keys', '--', key], {
    allowFailure: true,
  });
  const fprs = r.stdout
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f, i, all) => f[0] === 'fpr' && all[i - 1]?.[0] === 'sec')
    .map((f) => f[9]!);
  if (r.exitCode !== 0 || fprs.length === 0)
    throw new UsageError(`no GPG secret key '${key}'${gpgHome ? ` in ${gpgHome}` : ''} to sign with`);
  if (fprs.length > 1)
    throw new UsageError(`GPG key '${key}' is ambiguous (${fprs.join(', ')}); give the fingerprint`);
  return fprs[0]!;
}

/**
 * Writes `<file>.sig`, a detached binary signature by `key` (atomically: a reader never sees a
 * partial signature). Returns the signature's path.
 */
export async function signFile(
  file: string,
  key: string,
  gpgHome?: string,
  opts: GpgOptions = {},
): Promise<string> {
  requireTool('gpg');
  const run = opts.run ?? quietRunner();
  const out = `${file}.sig`;
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    await run('gpg', [
      ...base(gpgHome, opts),
      '--yes',
      '--local-user',
      key,
      '--detach-sign',
      '--output',
      tmp,
      '--',
      file,
    ]);
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
  }
  return out;
}

/** The public key (binary, or ASCII-armored with `armor`), optionally written to `output` atomically. */
export async function exportPublicKey(
  key: string,
  gpgHome?: string,
  opts: GpgOptions & { armor?: boolean; output?: string } = {},
): Promise<Buffer> {
  requireTool('gpg');
  const run = opts.run ?? quietRunner();
  const fpr = await fingerprint(key, gpgHome, { ...opts, run });
  const tmp = `${opts.output ?? '/nonexistent'}.tmp-${process.pid}`;
  const args = [...base(gpgHome, opts), ...(opts.armor ? ['--armor'] : []), '--export'];
  // The runner returns text; binary keys go through a file.
  const file = opts.output ? tmp : undefined;
  if (file) {
    await run('gpg', [...args, '--yes', '--output', file, '--', fpr]);
    const bytes = readFileSync(file);
    renameSync(file, opts.output!);
    return bytes;
  }
  if (!opts.armor) throw new UsageError('exportPublicKey: a binary export needs an output file');
  const r = await run('gpg', [...args, '--', fpr]);
  return Buffer.from(r.stdout);
}

/** Writes `bytes` to `path` atomically. */
export interface SignedPayload {
  /** Primary-key fingerprint of the signer (VALIDSIG). */
  signer: string;
  payload: string;
}

/**
 * Checks a signature that embeds its payload (simple-signing signatures) against the keys in
 * `gpgHome`; returns the signer and payload, or undefined when it does not verify.
 */
export async function readSigned(
  sigFile: string,
  gpgHome?: string,
  opts: GpgOptions = {},
): Promise<SignedPayload | undefined> {
  requireTool('gpg');
  const run = opts.run ?? quietRunner();
  const statusFile = `${sigFile}.status-${process.pid}`;
  try {
    const r = await run(
      'gpg',
      [...base(gpgHome, opts), '--status-file', statusFile, '--decrypt', '--', sigFile],
      { allowFailure: true },
    );
    const status = readFileSync(statusFile, 'utf8');
    const valid = /^\[GNUPG:\] VALIDSIG (\S+)(?: \S+){8} (\S+)/m.exec(status);
    if (r.exitCode !== 0 || !valid) return undefined;
    return { signer: valid[2]!, payload: r.stdout };
  } catch {
    return undefined;
  } finally {
    rmSync(statusFile, { force: true });
  }
}
