import { PipelineError, UsageError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import { archiveRawManifest, parseArchiveRef } from '../oci-archive.ts';
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
  // An OCI archive is read in place (pipeline/oci-archive.ts): skopeo would untar all of it first.
  if (ref.startsWith('oci-archive:')) {
    const { archive, image } = parseArchiveRef(ref);
    return archiveRawManifest(archive, image);
  }
  const { stdout } = await run('skopeo', [
    'inspect',
    '--raw',
    '--retry-times',
    '3',
    ...(tlsVerify ? [] : ['--tls-verify=false']),
    ref,
  ]);
  // --raw writes the registry's bytes as they are, no newline added (containers/skopeo
  // cmd/skopeo/inspect.go:120-121 @b71619af, the same lines at v1.9.3, Debian 12's): the digest is
  // of exactly these bytes.
  return { raw: stdout, digest: sha256Digest(stdout) };
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

/**
 * skopeo's arguments that copy an OCI archive to `dest` (an `oci:DIR:TAG` layout, archives need
 * not carry a tag, or `containers-storage:NAME`): what the native and bootc backends print and run.
 */
export const archiveCopyArgs = (archive: string, dest: string) => [
  'copy',
  '--quiet',
  `oci-archive:${archive}`,
  dest,
];

/** The labels of an OCI archive's image config (skopeo inspect), or undefined when skopeo cannot read it. */
export async function archiveLabels(
  run: Runner,
  archive: string,
  tag?: string,
): Promise<Record<string, string> | undefined> {
  const r = await run('skopeo', ['inspect', `oci-archive:${archive}`], { allowFailure: true, tag });
  if (r.exitCode !== 0) return undefined;
  return (JSON.parse(r.stdout) as { Labels?: Record<string, string> }).Labels ?? {};
}

/** Where and how to reach a registry: credentials stay in the auth file, never on the command line. */
export interface Remote {
  run: Runner;
  /** containers-auth.json; passed as --authfile. */
  authFile?: string;
  /** Default true. */
  tlsVerify?: boolean;
}

export const sha256Digest = (bytes: string | Buffer) => `sha256:${sha256Hex(bytes)}`;

/** The registry answered that the manifest does not exist (as opposed to not answering). */
function isAbsent(stderr: string): boolean {
  return /manifest unknown|not found|name unknown|NAME_UNKNOWN|MANIFEST_UNKNOWN|404/i.test(stderr);
}

function authArgs(r: Remote, side: 'src' | 'dest' | 'plain'): string[] {
  const tls = r.tlsVerify === false ? 'false' : 'true';
  const tlsFlag = side === 'plain' ? '--tls-verify' : `--${side}-tls-verify`;
  const authFlag = side === 'plain' ? '--authfile' : `--${side}-authfile`;
  return [`${tlsFlag}=${tls}`, ...(r.authFile ? [authFlag, r.authFile] : [])];
}

/**
 * The raw manifest bytes of `ref` (docker://host/repo@sha256:.. or :tag), or undefined when the
 * registry says it has no such manifest. Throws when the registry cannot be reached.
 */
export async function inspectRaw(r: Remote, ref: string): Promise<string | undefined> {
  requireTool('skopeo');
  const res = await r.run('skopeo', ['inspect', '--raw', ...authArgs(r, 'plain'), ref], {
    allowFailure: true,
  });
  if (res.exitCode === 0) return res.stdout;
  if (isAbsent(res.stderr)) return undefined;
  throw new PipelineError(`cannot read ${ref}: ${res.stderr.trim().split('\n').pop()}`);
}

/**
 * The image config of `ref` as the registry stores it (skopeo inspect --config --raw writes the
 * config blob as is: cmd/skopeo/inspect.go:134-142 @b71619af), or undefined when there is no
 * such manifest. `ref` names one image: skopeo resolves an index to the host's platform.
 */
export async function inspectConfig(r: Remote, ref: string): Promise<unknown> {
  requireTool('skopeo');
  const res = await r.run('skopeo', ['inspect', '--config', '--raw', ...authArgs(r, 'plain'), ref], {
    allowFailure: true,
  });
  if (res.exitCode === 0) return JSON.parse(res.stdout);
  if (isAbsent(res.stderr)) return undefined;
  throw new PipelineError(`cannot read the config of ${ref}: ${res.stderr.trim().split('\n').pop()}`);
}

/**
 * Copies `src` to `dest` byte for byte (--preserve-digests: skopeo refuses rather than
 * converting); `all` copies an index with every image it lists, `indexOnly` the index alone, for
 * a destination that holds its images already. skopeo 1.9.3 (Debian 12's) maps
 * `--multi-arch index-only` to CopySpecificImages with no instances (containers/skopeo
 * cmd/skopeo/copy.go:99-110 @89966c513, v1.9.3), so every instance is skipped and the index is
 * written as it is (vendor/github.com/containers/image/v5/copy/copy.go:472-488, 546-552): no
 * image, manifest or layer is read or checked.
 */
export async function copyExact(
  r: Remote,
  src: string,
  dest: string,
  opts: { all?: boolean; indexOnly?: boolean } = {},
) {
  requireTool('skopeo');
  const srcSide = src.startsWith('docker://') ? authArgs(r, 'src') : [];
  const destSide = dest.startsWith('docker://') ? authArgs(r, 'dest') : [];
  await r.run('skopeo', [
    'copy',
    '--preserve-digests',
    '--remove-signatures',
    ...(opts.indexOnly ? ['--multi-arch', 'index-only'] : opts.all ? ['--multi-arch', 'all'] : []),
    ...srcSide,
    ...destSide,
    src,
    dest,
  ]);
}

/**
 * Writes a simple-signing signature of `manifestFile` for `identity` (host/repo:tag) by the key
 * `fingerprint` to `out` (skopeo standalone-sign: the payload formats.md §9 describes).
 */
export async function standaloneSign(
  run: Runner,
  manifestFile: string,
  identity: string,
  fingerprint: string,
  out: string,
  gpgHome?: string,
  passphraseFile?: string,
): Promise<void> {
  requireTool('skopeo');
  await run(
    'skopeo',
    [
      'standalone-sign',
      ...(passphraseFile ? ['--passphrase-file', passphraseFile] : []),
      manifestFile,
      identity,
      fingerprint,
      '--output',
      out,
    ],
    { env: gpgHome ? { GNUPGHOME: gpgHome } : undefined },
  );
}

/**
 * Copies `ref` with the verification a sensor runs: skopeo with the given policy.json and
 * registries.d. Returns whether the policy accepted the image, and skopeo's reason when not.
 */
export async function copyWithPolicy(
  r: Remote,
  ref: string,
  policy: string,
  registriesD: string,
  dest: string,
  opts: { all?: boolean; arch?: string } = {},
): Promise<{ accepted: boolean; reason: string }> {
  requireTool('skopeo');
  const res = await r.run(
    'skopeo',
    [
      '--policy',
      policy,
      '--registries.d',
      registriesD,
      ...(opts.arch ? ['--override-arch', opts.arch, '--override-os', 'linux'] : []),
      'copy',
      ...(opts.all ? ['--multi-arch', 'all'] : []),
      ...authArgs(r, 'src'),
      ref,
      dest,
    ],
    { allowFailure: true },
  );
  if (res.exitCode === 0) return { accepted: true, reason: 'accepted by policy' };
  const line =
    res.stderr
      .split('\n')
      .reverse()
      .find((l) => l.trim()) ?? `skopeo exit ${res.exitCode}`;
  const msg = /msg="(.*)"/.exec(line)?.[1] ?? line;
  return { accepted: false, reason: msg.replace(/\\"/g, '"') };
}
