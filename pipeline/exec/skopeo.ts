// skopeo: read image manifests without pulling, to resolve a base reference to a digest.
import { createHash } from 'node:crypto';
import { UsageError } from '../errors.ts';
import type { Runner } from './run.ts';
import { type Storage, storageRef } from './storage.ts';
import { requireTool } from './tools.ts';

export interface ResolvedRef {
  /** Manifest digest of the image for the requested arch. */
  digest: string;
  /** Digest of the index the image was chosen from, if the reference named an index. */
  indexDigest?: string;
}

const indexTypes = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

/** Accepts containers-image references: docker://, oci:, oci-archive:, containers-storage:, dir:. */
export function checkTransport(ref: string): void {
  if (!/^(docker:\/\/|oci:|oci-archive:|containers-storage:|dir:|docker-archive:)/.test(ref)) {
    throw new UsageError(
      `base '${ref}' needs a transport: docker://, oci:, oci-archive:, containers-storage:, dir: or docker-archive:`,
    );
  }
}

/** Resolves `ref` to the manifest digest of its `ociArch` image (and its index digest). */
export async function resolveDigest(
  run: Runner,
  ref: string,
  ociArch: string,
  storage: Storage,
): Promise<ResolvedRef> {
  requireTool('skopeo');
  const arg = ref.startsWith('containers-storage:')
    ? storageRef(storage, ref.slice('containers-storage:'.length))
    : ref;
  const { raw, digest } = await rawManifest(run, arg);
  const manifest = JSON.parse(raw) as {
    mediaType?: string;
    manifests?: { digest: string; platform?: { architecture: string; os: string } }[];
  };
  if (manifest.manifests && (indexTypes.includes(manifest.mediaType ?? '') || !manifest.mediaType)) {
    const entry = manifest.manifests.find(
      (m) => m.platform?.architecture === ociArch && m.platform.os === 'linux',
    );
    if (!entry) {
      const have = manifest.manifests.map((m) => m.platform?.architecture ?? '?').join(', ');
      throw new UsageError(`base '${ref}' has no linux/${ociArch} image (it has: ${have})`);
    }
    return { digest: entry.digest, indexDigest: digest };
  }
  return { digest };
}

/** The manifest (or index) bytes `ref` names, read without pulling, and their digest. */
async function rawManifest(
  run: Runner,
  ref: string,
  tlsVerify = true,
): Promise<{ raw: string; digest: string }> {
  const { stdout } = await run('skopeo', [
    'inspect',
    '--raw',
    '--retry-times',
    '3',
    ...(tlsVerify ? [] : ['--tls-verify=false']),
    ref,
  ]);
  const raw = stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout;
  return { raw, digest: `sha256:${createHash('sha256').update(raw).digest('hex')}` };
}

/**
 * The digest a registry tag points at now: of its index when it is multi-arch, so the lock holds
 * for every arch (podman picks the host's image from it).
 */
export async function tagDigest(
  run: Runner,
  ref: string,
  opts: { tlsVerify?: boolean } = {},
): Promise<string> {
  requireTool('skopeo');
  return (await rawManifest(run, `docker://${ref}`, opts.tlsVerify ?? true)).digest;
}
