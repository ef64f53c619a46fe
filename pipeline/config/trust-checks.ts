import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigIssue } from '../errors.ts';
import { showKeysSync } from '../exec/gpg.ts';
import { sha256Hex } from '../files.ts';
import type { TrustConfig } from '../plan/trust.ts';
import { issueAt, type ProjectPaths, type RawStream } from './types.ts';
import type { SourceFile } from './yaml.ts';

/** publish.trust: needs publish.registry; its key files exist under the project root. */
export const ARMOR = '-----BEGIN PGP PUBLIC KEY BLOCK-----';
export const gpgKeysOf = (t: { 'gpg-key': string | string[] }) =>
  Array.isArray(t['gpg-key']) ? t['gpg-key'] : [t['gpg-key']];

/**
 * publish.trust and publish.unsigned. A stream that pushes to a registry says how sensors verify
 * its images (trust) or, visibly, that they do not (unsigned: reason). Trust needs the registry,
 * no cosign key (publish attaches no cosign signatures, so a sigstoreSigned requirement would
 * reject every image), and key files that hold usable OpenPGP public keys, checked with real gpg.
 */
export function trustChecks(raw: RawStream, source: SourceFile, paths: ProjectPaths): ConfigIssue[] {
  const trust = raw.publish?.trust;
  const unsigned = raw.publish?.unsigned;
  const issues: ConfigIssue[] = [];
  if (raw.publish?.registry && !trust && unsigned === undefined)
    issues.push(
      issueAt(
        source,
        ['publish', 'registry'],
        'publish-signed',
        "a stream that publishes images must be signed: add publish.trust (make the key with 'rock-image keys generate'), or say publish.unsigned: <reason> to publish unsigned images on purpose",
        raw.publish.registry,
      ),
    );
  if (trust && unsigned !== undefined)
    issues.push(
      issueAt(
        source,
        ['publish', 'unsigned'],
        'unsigned-with-trust',
        'publish.unsigned contradicts publish.trust: keep one',
        unsigned,
      ),
    );
  if (!trust) return issues;
  if (!raw.publish?.registry)
    issues.push(
      issueAt(
        source,
        ['publish', 'trust'],
        'trust-registry',
        'publish.trust needs publish.registry (the repository sensors trust)',
      ),
    );
  if (trust['cosign-key'] !== undefined)
    issues.push(
      issueAt(
        source,
        ['publish', 'trust', 'cosign-key'],
        'cosign-unsigned',
        'rock-image publish signs images with GPG simple signing only and never attaches cosign signatures, so a sigstoreSigned requirement would make sensors reject every image: remove cosign-key',
        trust['cosign-key'],
      ),
    );
  const files = gpgKeysOf(trust);
  const keyPath = (i: number) =>
    Array.isArray(trust['gpg-key']) ? ['publish', 'trust', 'gpg-key', i] : ['publish', 'trust', 'gpg-key'];
  const seen = new Map<string, string>();
  let armored = 0;
  files.forEach((f, i) => {
    const at = keyPath(i);
    const file = join(paths.root, f);
    if (!existsSync(file) || !statSync(file).isFile()) {
      issues.push(
        issueAt(
          source,
          at,
          'trust-key-exists',
          `${f} does not exist (the public key sensors verify with, relative to the project root)`,
          f,
        ),
      );
      return;
    }
    if (readFileSync(file).subarray(0, ARMOR.length).toString('latin1') === ARMOR) armored++;
    const shown = showKeysSync(file);
    if ('error' in shown) {
      issues.push(
        issueAt(
          source,
          at,
          'trust-key-openpgp',
          `${f} is not an OpenPGP public key (gpg: ${shown.error})`,
          f,
        ),
      );
      return;
    }
    for (const k of shown.keys) {
      const who = `${k.fingerprint}${k.uids[0] ? ` (${k.uids[0]})` : ''}`;
      const problem =
        k.type === 'sec'
          ? 'holds a private key: commit only the public half (gpg --armor --export FPR); the private half is a CI secret'
          : k.validity === 'r'
            ? `key ${who} is revoked`
            : k.validity === 'e'
              ? `key ${who} expired on ${new Date((k.expires ?? 0) * 1000).toISOString().slice(0, 10)}: extend it (gpg --quick-set-expire) and re-export, or rotate to a new key`
              : !k.capabilities.includes('S')
                ? `key ${who} cannot sign`
                : seen.has(k.fingerprint)
                  ? `key ${who} is also in ${seen.get(k.fingerprint)}`
                  : undefined;
      seen.set(k.fingerprint, f);
      if (problem)
        issues.push(
          issueAt(
            source,
            at,
            k.type === 'sec'
              ? 'trust-key-public'
              : k.validity === 'e'
                ? 'trust-key-expired'
                : 'trust-key-usable',
            `${f} ${problem}`,
            f,
          ),
        );
    }
  });
  if (files.length > 1 && armored !== files.length)
    issues.push(
      issueAt(
        source,
        ['publish', 'trust', 'gpg-key'],
        'trust-keys-armored',
        'rotation keys are joined into one keyring file: give both as ASCII-armored exports (gpg --armor --export FPR)',
      ),
    );
  return issues;
}

export function resolveTrust(raw: RawStream, root: string): TrustConfig | undefined {
  const t = raw.publish?.trust;
  if (!t || !raw.publish?.registry) return undefined;
  const files = gpgKeysOf(t).map((f) => join(root, f));
  // One key: the file as it is. Two (rotation): one keyring holding both, the armored exports
  // joined, because two signedBy requirements would both have to be satisfied.
  const gpgKey =
    files.length === 1
      ? { source: files[0]!, sha256: sha256Hex(readFileSync(files[0]!)) }
      : (() => {
          const content = files.map((f) => readFileSync(f, 'utf8').replace(/\n*$/, '\n')).join('');
          return { content, sha256: sha256Hex(content) };
        })();
  return { registry: raw.publish.registry, lookaside: t.lookaside, gpgKey, keyFiles: gpgKeysOf(t) };
}
