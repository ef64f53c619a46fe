// Signing and tagging published images: a simple-signing signature for every manifest and the
// index per tag identity (into the lookaside directory; cosign where it is set up), then each tag
// moved to the index, last. Each step checks what is already there, so a re-run converges. Also
// what a sensor does with them (verifyAsSensor). Pushing is images.ts.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARCHES, type Arch, ociArch } from '../arch.ts';
import { PipelineError, UsageError } from '../errors.ts';
import { cosignSign } from '../exec/cosign.ts';
import { fingerprint, quietRunner, readSigned } from '../exec/gpg.ts';
import type { Runner } from '../exec/run.ts';
import {
  copyExact,
  copyWithPolicy,
  inspectRaw,
  type Remote,
  sha256Digest,
  standaloneSign,
} from '../exec/skopeo.ts';
import { writeAtomic } from '../files.ts';
import {
  type Descriptor,
  type ImageTarget,
  OCI_INDEX,
  type Pushed,
  parseTarget,
  REF_NAME,
  readLayoutIndex,
  type SignOptions,
  type TagResult,
  type Target,
  withRetry,
} from './images.ts';

/** Reads a manifest the target holds by digest, checking its bytes hash to that digest. */
async function manifestBytes(t: Target, digest: string): Promise<string> {
  const bytes =
    t.kind === 'docker'
      ? await inspectRaw(t.remote, `docker://${t.repo}@${digest}`)
      : existsSync(join(t.dir, 'blobs/sha256', digest.slice(7)))
        ? readFileSync(join(t.dir, 'blobs/sha256', digest.slice(7)), 'utf8')
        : undefined;
  if (bytes === undefined)
    throw new PipelineError(`${digest} is not in the target: push it before signing or tagging`);
  if (sha256Digest(bytes) !== digest)
    throw new PipelineError(`the target's ${digest} does not hash to its digest`);
  return bytes;
}

/** Lookaside directory of one manifest: <prefix>/<repo path>@sha256=<hex> (formats.md §9). */
export function lookasidePath(lookasideDir: string, identityRepo: string, digest: string): string {
  const path = identityRepo.slice(identityRepo.indexOf('/') + 1);
  return join(lookasideDir, `${path}@${digest.replace(':', '=')}`);
}

/**
 * Signs `digest` for `identity` (host/repo:tag) unless a valid signature by the same key for that
 * identity and digest is already there; new signatures get the next free signature-N.
 */
async function signOnce(
  run: Runner,
  dir: string,
  manifest: string,
  digest: string,
  identity: string,
  fpr: string,
  sign: SignOptions,
  work: string,
): Promise<'signed' | 'already-signed'> {
  mkdirSync(dir, { recursive: true });
  let n = 1;
  for (; existsSync(join(dir, `signature-${n}`)); n++) {
    const got = await readSigned(join(dir, `signature-${n}`), sign.gpgHome, {
      run,
      passphraseFile: sign.passphraseFile,
    });
    if (!got || got.signer !== fpr) continue;
    try {
      const c = JSON.parse(got.payload).critical;
      if (c?.identity?.['docker-reference'] === identity && c?.image?.['docker-manifest-digest'] === digest)
        return 'already-signed';
    } catch {}
  }
  const mf = join(work, `manifest-${digest.slice(7)}`);
  writeFileSync(mf, manifest);
  const tmp = join(work, 'signature');
  rmSync(tmp, { force: true });
  await standaloneSign(run, mf, identity, fpr, tmp, sign.gpgHome, sign.passphraseFile);
  // Contiguous numbering is what readers expect; rename makes the new signature appear whole.
  copyFileSync(tmp, join(dir, `.signature-${n}.tmp`));
  renameSync(join(dir, `.signature-${n}.tmp`), join(dir, `signature-${n}`));
  return 'signed';
}

/** Signing and tagging of one pushed index: what signAndTag does, one signature or tag at a time. */
export interface TagSession {
  /** host/repo the signatures name (`<repo>:<tag>`); undefined for an oci: target without --identity. */
  identityRepo: string | undefined;
  /** Signs `digest` (a manifest or the index) for `identity` (<identityRepo>:<tag>). */
  sign(digest: string, identity: string): Promise<'signed' | 'already-signed'>;
  /** Points `tag` at the index. */
  tag(tag: string): Promise<TagResult>;
  close(): void;
}

/**
 * Checks the target's index lists exactly the pushed manifests, then signs and tags on request.
 * GPG simple signing only: cosign is signAndTag's.
 */
export async function openTagging(
  target: ImageTarget,
  pushed: Pushed,
  sign: SignOptions,
  opts: { retries?: number; retryDelayMs?: number } = {},
): Promise<TagSession> {
  const t = parseTarget(target);
  const run = t.remote.run;
  const retries = opts.retries ?? 3;
  const delay = opts.retryDelayMs ?? 1000;
  const identityRepo = sign.identity ?? (t.kind === 'docker' ? t.repo : undefined);

  // The index must list exactly the manifests we were given.
  const indexBytes = await withRetry('read index', retries, delay, () => manifestBytes(t, pushed.index));
  const listed = (JSON.parse(indexBytes).manifests as Descriptor[]).map((d) => d.digest).sort();
  const expected = Object.values(pushed.manifests).sort();
  if (JSON.stringify(listed) !== JSON.stringify(expected))
    throw new PipelineError(
      `index ${pushed.index} lists ${listed.join(', ')}, expected ${expected.join(', ')}`,
    );

  let signer: { fpr: string; work: string } | undefined;
  const manifests = new Map<string, string>();
  // Each image the index lists is in the target too (read here, kept for its signature): a tag
  // is written as the index alone (tag(), index-only), so nothing else would find one missing.
  for (const digest of expected)
    manifests.set(digest, await withRetry(`read ${digest}`, retries, delay, () => manifestBytes(t, digest)));
  return {
    identityRepo,
    async sign(digest, identity) {
      if (!sign.gpgKey) throw new UsageError('signing needs a GPG key');
      if (!sign.lookasideDir) throw new UsageError('GPG signing needs a lookaside directory');
      if (!identityRepo)
        throw new UsageError(`signing ${target.repo} needs the identity (registry/repo) it is published as`);
      if (!identity.startsWith(`${identityRepo}:`))
        throw new UsageError(`identity ${identity} is not a tag of ${identityRepo}`);
      signer ??= {
        fpr: await fingerprint(sign.gpgKey, sign.gpgHome, { run, passphraseFile: sign.passphraseFile }),
        work: mkdtempSync(join(tmpdir(), 'rock-sign-')),
      };
      let manifest = manifests.get(digest);
      if (manifest === undefined) {
        manifest = await withRetry(`read ${digest}`, retries, delay, () => manifestBytes(t, digest));
        manifests.set(digest, manifest);
      }
      return signOnce(
        run,
        lookasidePath(sign.lookasideDir, identityRepo, digest),
        manifest,
        digest,
        identity,
        signer.fpr,
        sign,
        signer.work,
      );
    },
    tag(tag) {
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag))
        throw new UsageError(`'${tag}' is not a valid tag`);
      return withRetry(`tag ${tag}`, retries, delay, async () => {
        if (t.kind === 'oci') return tagLayout(t.dir, tag, pushed.index, Buffer.byteLength(indexBytes));
        const ref = `docker://${t.repo}:${tag}`;
        const before = await inspectRaw(t.remote, ref);
        if (before !== undefined && sha256Digest(before) === pushed.index) return 'already-tagged';
        // The index alone: openTagging found it in the repository, listing exactly the pushed
        // manifests (index-only: exec/skopeo.ts copyExact).
        await copyExact(t.remote, `docker://${t.repo}@${pushed.index}`, ref, { indexOnly: true });
        const after = await inspectRaw(t.remote, ref);
        if (after === undefined || sha256Digest(after) !== pushed.index)
          throw new PipelineError(`${ref} does not point at ${pushed.index} after tagging`);
        return before === undefined ? 'tagged' : 'moved';
      });
    },
    close() {
      if (signer) rmSync(signer.work, { recursive: true, force: true });
    },
  };
}

/** The manifests then the index, in canonical arch order: the order every signature is made in. */
export const signedDigests = (pushed: Pushed) => [
  ...ARCHES.filter((a) => pushed.manifests[a]).map((a) => pushed.manifests[a]),
  pushed.index,
];

/**
 * Signs manifests + index for each tag (simple signing into the lookaside dir; cosign where it
 * exists), THEN points each tag at the index (tags last). Used by publish (tags <stream>,
 * <version>) and promote (retag by digest).
 */
export async function signAndTag(
  target: ImageTarget,
  pushed: Pushed,
  tags: string[],
  sign: SignOptions,
  opts: { retries?: number; retryDelayMs?: number } = {},
): Promise<{ signatures: Record<string, 'signed' | 'already-signed'>; tags: Record<string, TagResult> }> {
  for (const tag of tags)
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new UsageError(`'${tag}' is not a valid tag`);
  const t = parseTarget(target);
  const s = await openTagging(target, pushed, sign, opts);
  try {
    const signatures: Record<string, 'signed' | 'already-signed'> = {};
    if (sign.gpgKey) {
      if (!sign.lookasideDir) throw new UsageError('GPG signing needs a lookaside directory');
      if (!s.identityRepo)
        throw new UsageError(`signing ${target.repo} needs the identity (registry/repo) it is published as`);
      for (const digest of signedDigests(pushed))
        for (const tag of tags) {
          const identity = `${s.identityRepo}:${tag}`;
          signatures[`${identity}@${digest}`] = await s.sign(digest, identity);
        }
    }
    if (sign.cosignKey && t.kind === 'docker') {
      for (const digest of signedDigests(pushed))
        await cosignSign(
          t.remote.run,
          { key: sign.cosignKey, repo: t.repo, digest, insecure: t.remote.tlsVerify === false },
          { authFile: t.remote.authFile },
        );
    }
    const tagResults: Record<string, TagResult> = {};
    for (const tag of tags) tagResults[tag] = await s.tag(tag);
    return { signatures, tags: tagResults };
  } finally {
    s.close();
  }
}

function tagLayout(dir: string, tag: string, digest: string, size: number): TagResult {
  const index = readLayoutIndex(dir);
  const current = index.manifests.find((d) => d.annotations?.[REF_NAME] === tag);
  if (current?.digest === digest) return 'already-tagged';
  index.manifests = index.manifests.filter((d) => d.annotations?.[REF_NAME] !== tag);
  index.manifests.push({ mediaType: OCI_INDEX, digest, size, annotations: { [REF_NAME]: tag } });
  writeAtomic(join(dir, 'index.json'), `${JSON.stringify(index)}\n`);
  return current ? 'moved' : 'tagged';
}

/**
 * What a sensor does: copies `ref` with the image's own policy.json and registries.d. `policyDir`
 * is the image's root (etc/containers/...) or a directory holding policy.json and registries.d;
 * absolute key paths in the policy are read under it, as they would be on the sensor.
 */
export async function verifyAsSensor(
  ref: string,
  policyDir: string,
  opts: { authFile?: string; tlsVerify?: boolean; run?: Runner; arch?: Arch } = {},
): Promise<{ accepted: boolean; reason: string }> {
  const asRoot = existsSync(join(policyDir, 'etc/containers/policy.json'));
  const policyFile = asRoot ? join(policyDir, 'etc/containers/policy.json') : join(policyDir, 'policy.json');
  const registriesD = asRoot
    ? join(policyDir, 'etc/containers/registries.d')
    : join(policyDir, 'registries.d');
  if (!existsSync(policyFile)) throw new UsageError(`no policy.json in ${policyDir}`);
  const work = mkdtempSync(join(tmpdir(), 'rock-verify-'));
  try {
    const policy = JSON.parse(readFileSync(policyFile, 'utf8'), (k, v) =>
      asRoot && (k === 'keyPath' || k === 'keyPaths')
        ? Array.isArray(v)
          ? v.map((p: string) => join(policyDir, p))
          : join(policyDir, v)
        : v,
    );
    writeFileSync(join(work, 'policy.json'), JSON.stringify(policy));
    const remote: Remote = {
      run: opts.run ?? quietRunner(),
      authFile: opts.authFile,
      tlsVerify: opts.tlsVerify,
    };
    return await copyWithPolicy(
      remote,
      ref,
      join(work, 'policy.json'),
      registriesD,
      `dir:${join(work, 'image')}`,
      {
        all: !opts.arch,
        arch: opts.arch ? ociArch[opts.arch] : undefined,
      },
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
