// Publishing images: per-arch manifests pushed by digest, an OCI index over them, signatures for
// every manifest and tag, and tags last. Every step checks what the target already holds first,
// so a re-run after any failure converges on the same digests without duplicates.
import type { Runner } from '../exec/run.ts';

export type Arch = 'x86_64' | 'aarch64';

export interface ArchImage {
  arch: Arch;
  /** Path to the build's .ociarchive. */
  archive: string;
  /** Manifest digest the build recorded (meta.json rocknsm.image-digest). */
  digest: string;
}

export interface ImageTarget {
  /** 'docker://HOST/REPO' or 'oci:/abs/layout/dir' (default under the site dir). */
  repo: string;
  /** containers-auth.json (REGISTRY_AUTH_FILE); never logged. */
  authFile?: string;
  /** Default true; tests use a local http registry. */
  tlsVerify?: boolean;
  /** Process runner; default: a quiet runner of its own. */
  run?: Runner;
}

export interface SignOptions {
  /** GPG key (fingerprint or email) for simple signing. */
  gpgKey?: string;
  gpgHome?: string;
  /** Staging dir written on the site, published at the lookaside URL. */
  lookasideDir?: string;
  cosignKey?: string;
}

export interface Pushed {
  manifests: Record<Arch, string>;
  index: string;
}

/** Pushes each arch by digest (no tags), then an OCI index (linux/amd64, linux/arm64) by digest. */
export async function pushImages(
  _target: ImageTarget,
  _images: ArchImage[],
  _opts?: { retries?: number },
): Promise<Pushed> {
  throw new Error('pushImages: not implemented yet');
}

/** Signs manifests + index for each tag, then points each tag at the index (tags last). */
export async function signAndTag(
  _target: ImageTarget,
  _pushed: Pushed,
  _tags: string[],
  _sign: SignOptions,
): Promise<void> {
  throw new Error('signAndTag: not implemented yet');
}

/** What a sensor does: verify with the image's own policy.json + registries.d. */
export async function verifyAsSensor(
  _ref: string,
  _policyDir: string,
): Promise<{ accepted: boolean; reason: string }> {
  throw new Error('verifyAsSensor: not implemented yet');
}
