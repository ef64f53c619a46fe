// cosign: sigstore signatures of pushed manifests, attached in the registry. Signed in the legacy
// bundle format, which bootc, rpm-ostree and containers/image verify (formats.md §9); cosign v3's
// new bundle format is not readable by them. Runs only where cosign is installed (not on Debian).
import type { Runner } from './run.ts';
import { which } from './tools.ts';

export interface CosignSignInput {
  /** Private key file (cosign.key) or a KMS URI. */
  key: string;
  /** Repository without tag, e.g. ghcr.io/rocknsm/rocknsm-coreos or 127.0.0.1:5000/rock/os. */
  repo: string;
  /** Manifest digest (sha256:...) being signed. */
  digest: string;
  /** Plain-HTTP / self-signed registry (tests). Default false. */
  insecure?: boolean;
}

/** The exact cosign command line for one manifest (pure; signs by digest, never by tag). */
export function cosignSignArgv(input: CosignSignInput): string[] {
  return [
    'sign',
    '--new-bundle-format=false',
    '--use-signing-config=false',
    '--yes',
    ...(input.insecure ? ['--allow-insecure-registry', '--allow-http-registry'] : []),
    '--key',
    input.key,
    `${input.repo}@${input.digest}`,
  ];
}

export type CosignResult = 'signed' | 'no-cosign';

/**
 * Signs one manifest with cosign when it is installed; reports 'no-cosign' otherwise (the
 * GPG simple signature still covers the image). The key's passphrase comes from COSIGN_PASSWORD.
 */
export async function cosignSign(
  run: Runner,
  input: CosignSignInput,
  env: { authFile?: string; path?: string } = {},
): Promise<CosignResult> {
  if (!which('cosign', env.path ?? process.env.PATH ?? '')) return 'no-cosign';
  await run('cosign', cosignSignArgv(input), {
    env: env.authFile ? { REGISTRY_AUTH_FILE: env.authFile } : undefined,
  });
  return 'signed';
}
