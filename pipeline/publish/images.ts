// Publishing images: per-arch manifests pushed by digest, an OCI index over them, signatures for
// every manifest and tag, and tags last. Every step checks what the target already holds first,
// so a re-run after any failure converges on the same digests without duplicates. The index is
// written here (not by buildah), so its digest is a pure function of the per-arch manifests.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { ARCHES, type Arch, ociArch } from '../arch.ts';
import { DataError, PipelineError, UsageError } from '../errors.ts';
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

export type { Arch };

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
  /** GPG key (fingerprint or email) for simple signing; without it nothing is GPG-signed. */
  gpgKey?: string;
  /** GNUPGHOME holding the secret key. Default: gpg's own. */
  gpgHome?: string;
  /** File with the key's passphrase. Default: none (unprotected key or a running agent). */
  passphraseFile?: string;
  /** Staging dir written on the site, published at the lookaside URL. Required with gpgKey. */
  lookasideDir?: string;
  /** Cosign private key; used only where cosign is installed (docker targets). */
  cosignKey?: string;
  /** Repository the signatures name (host/path). Default: the target's; required for oci: targets. */
  identity?: string;
}

export interface Pushed {
  manifests: Record<Arch, string>;
  index: string;
}

export interface PushOptions {
  /** Attempts after the first for each registry step. Default 3. */
  retries?: number;
  /** First pause between attempts, doubled each time. Default 1000 ms. */
  retryDelayMs?: number;
  /** Scratch directory for the staged layout. Default: a new one under the OS temp dir. */
  workDir?: string;
}

/** What each step found and did, for logs and re-run checks. */
export type StepResult = 'pushed' | 'already-present';
export type TagResult = 'tagged' | 'moved' | 'already-tagged';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

/** The OCI index over the per-arch manifests (pure: same manifests, same bytes, same digest). */
export function renderIndex(
  entries: { arch: Arch; mediaType: string; digest: string; size: number }[],
): string {
  const sorted = [...entries].sort((a, b) => ARCHES.indexOf(a.arch) - ARCHES.indexOf(b.arch));
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: sorted.map((e) => ({
      mediaType: e.mediaType,
      digest: e.digest,
      size: e.size,
      platform: { architecture: ociArch[e.arch], os: 'linux' },
    })),
  });
}

/** An arch's image with its manifest descriptor: what the index over it is rendered from. */
export interface PlannedImage extends ArchImage {
  /** Manifest media type and size, from the archive's index.json (archiveManifest). */
  mediaType: string;
  size: number;
}

/**
 * The manifest descriptor an .ociarchive names in its index.json, read without unpacking the
 * layers, checked against the digest the build recorded: with it the index digest is known
 * before anything is pushed (renderIndex).
 */
export async function archiveManifest(run: Runner, img: ArchImage): Promise<PlannedImage> {
  if (!existsSync(img.archive)) throw new DataError(`${img.arch} archive ${img.archive} does not exist`);
  const r = await run('tar', ['-xOf', img.archive, '--wildcards', '--no-anchored', 'index.json']);
  const idx = JSON.parse(r.stdout) as { manifests: Descriptor[] };
  const desc = idx.manifests.length === 1 ? idx.manifests[0]! : undefined;
  if (desc?.digest !== img.digest)
    throw new DataError(
      `${img.archive} holds ${desc ? `manifest ${desc.digest}` : `${idx.manifests.length} images`} but the build recorded ${img.digest} (meta.json rocknsm.image-digest)`,
    );
  return { ...img, mediaType: desc.mediaType, size: desc.size };
}

type Target = { kind: 'docker'; repo: string; remote: Remote } | { kind: 'oci'; dir: string; remote: Remote };

function parseTarget(t: ImageTarget): Target {
  const remote: Remote = { run: t.run ?? quietRunner(), authFile: t.authFile, tlsVerify: t.tlsVerify };
  if (t.repo.startsWith('docker://')) {
    const repo = t.repo.slice('docker://'.length);
    if (!/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)+$/.test(repo))
      throw new UsageError(`image target '${t.repo}' must be docker://HOST/REPO, without tag or digest`);
    return { kind: 'docker', repo, remote };
  }
  if (t.repo.startsWith('oci:')) {
    const dir = t.repo.slice('oci:'.length);
    if (!isAbsolute(dir) || dir.includes(':'))
      throw new UsageError(`image target '${t.repo}' must be oci:/absolute/layout/dir, without a tag`);
    return { kind: 'oci', dir, remote };
  }
  throw new UsageError(`image target '${t.repo}' needs docker:// or oci:`);
}

async function withRetry<T>(
  what: string,
  retries: number,
  delayMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  let last: unknown;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, delayMs * 2 ** (attempt - 1)));
    try {
      return await fn();
    } catch (err) {
      if (err instanceof UsageError) throw err;
      last = err;
    }
  }
  const msg = last instanceof Error ? last.message : String(last);
  throw new PipelineError(`${what}: failed after ${retries + 1} attempts: ${msg}`);
}

interface Staged {
  layout: string;
  manifests: { arch: Arch; mediaType: string; digest: string; size: number; bytes: Buffer }[];
  index: { digest: string; bytes: string };
}

/** Unpacks the archives into one OCI layout with names x86_64/aarch64/index; checks every digest. */
async function stage(run: Runner, images: ArchImage[], layout: string): Promise<Staged> {
  const seen = new Set<Arch>();
  const manifests: Staged['manifests'] = [];
  mkdirSync(layout, { recursive: true });
  const names: Descriptor[] = [];
  for (const img of images) {
    if (seen.has(img.arch)) throw new UsageError(`two images for ${img.arch}`);
    seen.add(img.arch);
    if (!existsSync(img.archive)) throw new DataError(`${img.arch} archive ${img.archive} does not exist`);
    // The archive is an OCI layout in a tar; blobs are content-addressed, so both arches share one dir.
    const tarOut = join(layout, '.extract');
    rmSync(tarOut, { recursive: true, force: true });
    mkdirSync(tarOut);
    await run('tar', ['-xf', img.archive, '-C', tarOut, '--no-same-owner', '--no-same-permissions']);
    const idx = JSON.parse(readFileSync(join(tarOut, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    if (idx.manifests.length !== 1)
      throw new DataError(`${img.archive}: expected one image, found ${idx.manifests.length}`);
    const desc = idx.manifests[0]!;
    if (desc.digest !== img.digest)
      throw new DataError(
        `${img.archive} holds manifest ${desc.digest} but the build recorded ${img.digest} (meta.json rocknsm.image-digest)`,
      );
    for (const blob of readdirSync(join(tarOut, 'blobs/sha256'))) {
      mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
      renameSync(join(tarOut, 'blobs/sha256', blob), join(layout, 'blobs/sha256', blob));
    }
    rmSync(tarOut, { recursive: true, force: true });
    const bytes = readFileSync(join(layout, 'blobs/sha256', desc.digest.slice(7)));
    if (sha256Digest(bytes) !== desc.digest) throw new DataError(`${img.archive}: manifest blob is corrupt`);
    manifests.push({
      arch: img.arch,
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: bytes.length,
      bytes,
    });
    names.push({ ...desc, annotations: { [REF_NAME]: img.arch } });
  }
  if (manifests.length === 0) throw new UsageError('no images to publish');
  const indexBytes = renderIndex(manifests);
  const indexDigest = sha256Digest(indexBytes);
  writeFileSync(join(layout, 'blobs/sha256', indexDigest.slice(7)), indexBytes);
  names.push({
    mediaType: OCI_INDEX,
    digest: indexDigest,
    size: Buffer.byteLength(indexBytes),
    annotations: { [REF_NAME]: 'index' },
  });
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: names }));
  return { layout, manifests, index: { digest: indexDigest, bytes: indexBytes } };
}

/** One push in progress: the archives staged once, then each arch and the index pushed by digest. */
export interface PushSession {
  /** The index digest the staged manifests make (renderIndex). */
  index: string;
  manifests: Record<Arch, string>;
  pushArch(arch: Arch): Promise<StepResult>;
  pushIndex(): Promise<StepResult>;
  /** Removes the staged layout. */
  close(): void;
}

/** Stages the archives (every digest checked) for pushes by digest; close() when done. */
export async function openPush(
  target: ImageTarget,
  images: ArchImage[],
  opts: PushOptions = {},
): Promise<PushSession> {
  const t = parseTarget(target);
  const retries = opts.retries ?? 3;
  const delay = opts.retryDelayMs ?? 1000;
  const work = opts.workDir ?? mkdtempSync(join(tmpdir(), 'rock-push-'));
  const layout = join(work, 'layout');
  const close = () => {
    if (opts.workDir) rmSync(layout, { recursive: true, force: true });
    else rmSync(work, { recursive: true, force: true });
  };
  rmSync(layout, { recursive: true, force: true });
  let staged: Staged;
  try {
    staged = await stage(t.remote.run, images, layout);
  } catch (err) {
    close();
    throw err;
  }
  const manifests = Object.fromEntries(staged.manifests.map((m) => [m.arch, m.digest])) as Record<
    Arch,
    string
  >;
  return {
    index: staged.index.digest,
    manifests,
    async pushArch(arch) {
      const m = staged.manifests.find((x) => x.arch === arch);
      if (!m) throw new UsageError(`no ${arch} image staged`);
      if (t.kind === 'oci') return putManifest(t.dir, layout, m.digest);
      return withRetry(`push ${m.arch} ${m.digest}`, retries, delay, () =>
        pushOne(t, `oci:${layout}:${m.arch}`, m.digest, m.bytes, false),
      );
    },
    async pushIndex() {
      if (t.kind === 'oci') return putIndex(t.dir, layout, staged);
      return withRetry(`push index ${staged.index.digest}`, retries, delay, () =>
        pushOne(t, `oci:${layout}:index`, staged.index.digest, Buffer.from(staged.index.bytes), true),
      );
    },
    close,
  };
}

/** Pushes each arch by digest (no tags), then the OCI index by digest; verifies what the target holds. */
export async function pushImages(
  target: ImageTarget,
  images: ArchImage[],
  opts: PushOptions = {},
): Promise<Pushed & { steps: Record<string, StepResult> }> {
  const s = await openPush(target, images, opts);
  try {
    const steps: Record<string, StepResult> = {};
    for (const a of ARCHES.filter((x) => s.manifests[x])) steps[a] = await s.pushArch(a);
    steps.index = await s.pushIndex();
    return { manifests: s.manifests, index: s.index, steps };
  } finally {
    s.close();
  }
}

async function pushOne(
  t: Extract<Target, { kind: 'docker' }>,
  src: string,
  digest: string,
  bytes: Buffer,
  all: boolean,
): Promise<StepResult> {
  const ref = `docker://${t.repo}@${digest}`;
  const before = await inspectRaw(t.remote, ref);
  if (before !== undefined && sha256Digest(before) === digest) return 'already-present';
  await copyExact(t.remote, src, ref, { all });
  const after = await inspectRaw(t.remote, ref);
  if (after === undefined) throw new PipelineError(`${ref}: pushed, but the registry does not have it`);
  if (!Buffer.from(after).equals(bytes))
    throw new PipelineError(`${ref}: the registry holds ${sha256Digest(after)}, built ${digest}`);
  return 'pushed';
}

// --- OCI layout targets: blobs copied in (temp + rename), index.json rewritten atomically. ---

function readLayoutIndex(dir: string): { schemaVersion: number; manifests: Descriptor[] } {
  const f = join(dir, 'index.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : { schemaVersion: 2, manifests: [] };
}

/** Copies one blob from the staged layout unless the layout holds it already; whether it copied. */
function putBlob(dir: string, staged: string, digest: string): boolean {
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  if (!existsSync(join(dir, 'oci-layout')))
    writeAtomic(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const dest = join(dir, 'blobs/sha256', digest.slice(7));
  if (existsSync(dest) && sha256Digest(readFileSync(dest)) === digest) return false;
  const tmp = `${dest}.tmp-${process.pid}`;
  copyFileSync(join(staged, 'blobs/sha256', digest.slice(7)), tmp);
  renameSync(tmp, dest);
  if (sha256Digest(readFileSync(dest)) !== digest)
    throw new PipelineError(`${dir}: blob ${digest} does not match its digest`);
  return true;
}

/** One image into the layout: its config and layers, then its manifest. */
function putManifest(dir: string, staged: string, digest: string): StepResult {
  const m = JSON.parse(readFileSync(join(staged, 'blobs/sha256', digest.slice(7)), 'utf8')) as {
    config?: { digest: string };
    layers?: { digest: string }[];
  };
  const blobs = [...(m.config ? [m.config.digest] : []), ...(m.layers ?? []).map((l) => l.digest), digest];
  const copied = blobs.map((b) => putBlob(dir, staged, b));
  return copied.some(Boolean) ? 'pushed' : 'already-present';
}

/** The index blob, kept reachable by an untagged entry in index.json until tags point at it. */
function putIndex(dir: string, staged: string, s: Staged): StepResult {
  putBlob(dir, staged, s.index.digest);
  const index = readLayoutIndex(dir);
  if (index.manifests.some((d) => d.digest === s.index.digest && !d.annotations?.[REF_NAME]))
    return 'already-present';
  index.manifests.push({
    mediaType: OCI_INDEX,
    digest: s.index.digest,
    size: Buffer.byteLength(s.index.bytes),
  });
  writeAtomic(join(dir, 'index.json'), `${JSON.stringify(index)}\n`);
  return 'pushed';
}

// --- Signing and tagging. ---

/** Reads a manifest the target holds by digest, checking its bytes hash to that digest. */
async function manifestBytes(t: Target, digest: string): Promise<string> {
  const bytes =
    t.kind === 'docker'
      ? await inspectRaw(t.remote, `docker://${t.repo}@${digest}`)
      : existsSync(join(t.dir, 'blobs/sha256', digest.slice(7)))
        ? readFileSync(join(t.dir, 'blobs/sha256', digest.slice(7)), 'utf8')
        : undefined;
  if (bytes === undefined) throw new PipelineError(`${digest} is not in the target: push before signing`);
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
        await copyExact(t.remote, `docker://${t.repo}@${pushed.index}`, ref, { all: true });
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
