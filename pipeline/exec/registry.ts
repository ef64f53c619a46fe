// Registry side of publishing, through skopeo: read a manifest by digest or tag (absent vs.
// unreachable told apart, so retries only retry what can recover), copy images and indexes with
// their digests preserved, and make simple-signing signatures of manifests (standalone-sign).
import { createHash } from 'node:crypto';
import { PipelineError } from '../errors.ts';
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

/** Where and how to reach a registry: credentials stay in the auth file, never on the command line. */
export interface Remote {
  run: Runner;
  /** containers-auth.json; passed as --authfile. */
  authFile?: string;
  /** Default true. */
  tlsVerify?: boolean;
}

export const sha256Digest = (bytes: string | Buffer) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

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
 * Copies `src` to `dest` byte for byte (--preserve-digests: skopeo refuses rather than
 * converting); `all` copies an index with every image it lists.
 */
export async function copyExact(r: Remote, src: string, dest: string, opts: { all?: boolean } = {}) {
  requireTool('skopeo');
  const srcSide = src.startsWith('docker://') ? authArgs(r, 'src') : [];
  const destSide = dest.startsWith('docker://') ? authArgs(r, 'dest') : [];
  await r.run('skopeo', [
    'copy',
    '--preserve-digests',
    '--remove-signatures',
    ...(opts.all ? ['--multi-arch', 'all'] : []),
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
