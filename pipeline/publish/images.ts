// Publishing images: per-arch manifests pushed by digest, an OCI index over them, signatures for
// every manifest and tag, and tags last. Every step checks what the target already holds first,
// so a re-run after any failure converges on the same digests without duplicates. The index is
// written here (not by buildah), so its digest is a pure function of the per-arch manifests.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ARCHES, type Arch, ociArch } from '../arch.ts';
import { DataError, PipelineError, UsageError } from '../errors.ts';
import { quietRunner } from '../exec/gpg.ts';
import type { Runner } from '../exec/run.ts';
import { copyExact, inspectRaw, type Remote, sha256Digest } from '../exec/skopeo.ts';
import { copyHashed, removeStaleTemps, sha256File, writeAtomic } from '../files.ts';
import { readArchive } from '../oci-archive.ts';

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
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Descriptor {
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
export function archiveManifest(img: ArchImage): PlannedImage {
  if (!existsSync(img.archive)) throw new DataError(`${img.arch} archive ${img.archive} does not exist`);
  const manifests = readArchive(img.archive, (a) => a.index());
  const desc = manifests.length === 1 ? manifests[0]! : undefined;
  if (desc?.digest !== img.digest)
    throw new DataError(
      `${img.archive} holds ${desc ? `manifest ${desc.digest}` : `${manifests.length} images`} but the build recorded ${img.digest} (meta.json rocknsm.image-digest)`,
    );
  // An OCI descriptor must carry both (image-spec descriptor.md, "properties").
  if (!desc.mediaType || desc.size === undefined)
    throw new DataError(`${img.archive}: index.json's descriptor of ${desc.digest} lacks mediaType or size`);
  return { ...img, mediaType: desc.mediaType, size: desc.size };
}

export type Target =
  | { kind: 'docker'; repo: string; remote: Remote }
  | { kind: 'oci'; dir: string; remote: Remote };

export function parseTarget(t: ImageTarget): Target {
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

export async function withRetry<T>(
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
  manifests: { arch: Arch; mediaType: string; digest: string; size: number }[];
  index: { digest: string; bytes: string };
}

/**
 * Each archive's manifest (read in place, checked against the digest the build recorded; the
 * index names its exact size), and in `dir` an OCI layout of the index alone. Each arch is
 * pushed from its archive (pushArch) before the index; to a registry, skopeo writes the index
 * without reading any image it lists (pushIndex, index-only).
 */
function stageIndex(images: ArchImage[], dir: string): Staged {
  const seen = new Set<Arch>();
  const manifests: Staged['manifests'] = [];
  const blobs = join(dir, 'blobs/sha256');
  mkdirSync(blobs, { recursive: true });
  for (const img of images) {
    if (seen.has(img.arch)) throw new UsageError(`two images for ${img.arch}`);
    seen.add(img.arch);
    const desc = archiveManifest(img);
    const bytes = readArchive(img.archive, (a) => a.blob(desc.digest));
    manifests.push({
      arch: img.arch,
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: bytes.length,
    });
  }
  if (manifests.length === 0) throw new UsageError('no images to publish');
  const indexBytes = renderIndex(manifests);
  const indexDigest = sha256Digest(indexBytes);
  writeFileSync(join(blobs, indexDigest.slice(7)), indexBytes);
  const name: Descriptor = {
    mediaType: OCI_INDEX,
    digest: indexDigest,
    size: Buffer.byteLength(indexBytes),
    annotations: { [REF_NAME]: 'index' },
  };
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [name] }));
  return { layout: dir, manifests, index: { digest: indexDigest, bytes: indexBytes } };
}

/** One push in progress: the archives' manifests read and checked, then each arch and the index pushed by digest. */
export interface PushSession {
  /** The index digest the archives' manifests make (renderIndex). */
  index: string;
  manifests: Record<Arch, string>;
  pushArch(arch: Arch): Promise<StepResult>;
  pushIndex(): Promise<StepResult>;
  /** Removes the scratch files. */
  close(): void;
}

/**
 * Reads and checks every archive's manifest for pushes by digest; close() when done. Into an
 * oci: layout each blob is copied straight out of its archive (putImage); nothing is unpacked.
 *
 * To a registry, each arch goes straight from its archive, `skopeo copy --preserve-digests
 * oci-archive:ARCHIVE docker://REPO@DIGEST`, as the bare tool would: no second unpacked copy of
 * the image of our own. What skopeo 1.9.3 (Debian 12's; containers/image v5.22.1 vendored) does
 * with that, in containers/skopeo vendor/github.com/containers/image/v5 @89966c513 (v1.9.3):
 * - it untars the whole archive into a temp directory under /var/tmp first
 *   (oci/archive/oci_src.go:31, oci/archive/oci_transport.go:173-192, internal/tmpdir/tmpdir.go:18);
 * - with no image name it takes the archive's one manifest (oci/layout/oci_transport.go:183-186);
 *   the path ends at the first ':' (oci/internal/oci_util.go:60-62), so it is given a link to the
 *   archive from the scratch directory, whose path has none;
 * - a digested destination refuses a source manifest of another digest (copy/copy.go:618-631,
 *   416-426 for the index), and --preserve-digests forbids any manifest change (copy/copy.go:663-665),
 *   so no blob is recompressed: the layers go as the archive holds them (copy/blob.go:67-69,
 *   copy/compression.go:73).
 * The index is then pushed alone (`--multi-arch index-only`, exec/skopeo.ts copyExact) from a
 * layout holding only the index, only once every arch's manifest is
 * in the repository, pushed or found there by this session (pushIndex refuses before that): with
 * `all`, skopeo would copy each image again, looking up every layer at the destination
 * (copy/copy.go:1150-1175), about 0.9 s for one FCOS-sized arch against a local registry.
 */
export async function openPush(
  target: ImageTarget,
  images: ArchImage[],
  opts: PushOptions = {},
): Promise<PushSession> {
  const t = parseTarget(target);
  const retries = opts.retries ?? 3;
  const delay = opts.retryDelayMs ?? 1000;
  const work = opts.workDir ?? mkdtempSync(join(tmpdir(), 'rock-push-'));
  const scratch = join(work, 'layout');
  const close = () => {
    if (opts.workDir) rmSync(scratch, { recursive: true, force: true });
    else rmSync(work, { recursive: true, force: true });
  };
  rmSync(scratch, { recursive: true, force: true });
  let staged: Staged;
  try {
    staged = stageIndex(images, join(scratch, 'index'));
  } catch (err) {
    close();
    throw err;
  }
  const archiveRef = (arch: Arch) => {
    const link = join(scratch, `${arch}.ociarchive`);
    if (!existsSync(link)) symlinkSync(resolve(images.find((i) => i.arch === arch)!.archive), link);
    return `oci-archive:${link}`;
  };
  const manifests = Object.fromEntries(staged.manifests.map((m) => [m.arch, m.digest])) as Record<
    Arch,
    string
  >;
  // The arches whose manifest the target holds: the index goes out only over these.
  const present = new Set<Arch>();
  return {
    index: staged.index.digest,
    manifests,
    async pushArch(arch) {
      const m = staged.manifests.find((x) => x.arch === arch);
      if (!m) throw new UsageError(`no ${arch} image staged`);
      const r =
        t.kind === 'oci'
          ? await putImage(t.dir, images.find((i) => i.arch === arch)!.archive, m.digest)
          : await withRetry(`push ${m.arch} ${m.digest}`, retries, delay, () =>
              pushOne(t, archiveRef(arch), m.digest, {}),
            );
      present.add(arch);
      return r;
    },
    async pushIndex() {
      const missing = staged.manifests.filter((m) => !present.has(m.arch)).map((m) => m.arch);
      if (missing.length)
        throw new PipelineError(
          `index ${staged.index.digest}: not pushed before its images (${missing.join(', ')} not pushed yet)`,
        );
      if (t.kind === 'oci') return putIndex(t.dir, staged);
      return withRetry(`push index ${staged.index.digest}`, retries, delay, () =>
        pushOne(t, `oci:${staged.layout}:index`, staged.index.digest, { indexOnly: true }),
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
  opts: { indexOnly?: boolean },
): Promise<StepResult> {
  const ref = `docker://${t.repo}@${digest}`;
  const before = await inspectRaw(t.remote, ref);
  if (before !== undefined && sha256Digest(before) === digest) return 'already-present';
  await copyExact(t.remote, src, ref, opts);
  const after = await inspectRaw(t.remote, ref);
  if (after === undefined) throw new PipelineError(`${ref}: pushed, but the registry does not have it`);
  if (sha256Digest(after) !== digest)
    throw new PipelineError(`${ref}: the registry holds ${sha256Digest(after)}, built ${digest}`);
  return 'pushed';
}

// --- OCI layout targets: blobs copied in (temp + rename), index.json rewritten atomically. ---

export function readLayoutIndex(dir: string): { schemaVersion: number; manifests: Descriptor[] } {
  const f = join(dir, 'index.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : { schemaVersion: 2, manifests: [] };
}

/**
 * Puts one blob into the layout unless it holds it already (same size and digest, read in 1 MiB
 * chunks): `from` is its bytes, or where it lies in an archive file, streamed into a temporary
 * file and hashed as written (a layer is never held in memory), renamed in only if it hashes to
 * `digest`. Whether it wrote.
 */
async function putBlob(
  dir: string,
  digest: string,
  from: Buffer | { archive: string; offset: number; size: number },
): Promise<boolean> {
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  if (!existsSync(join(dir, 'oci-layout')))
    writeAtomic(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const dest = join(dir, 'blobs/sha256', digest.slice(7));
  const size = Buffer.isBuffer(from) ? from.length : from.size;
  if (existsSync(dest) && statSync(dest).size === size && `sha256:${await sha256File(dest)}` === digest)
    return false;
  if (Buffer.isBuffer(from)) {
    if (sha256Digest(from) !== digest) throw new PipelineError(`blob ${digest} does not match its digest`);
    writeAtomic(dest, from);
    return true;
  }
  removeStaleTemps(dest);
  const tmp = join(dir, 'blobs/sha256', `.${digest.slice(7)}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  try {
    const got = await copyHashed(from.archive, tmp, { start: from.offset, length: from.size });
    if (`sha256:${got}` !== digest)
      throw new DataError(`${from.archive}: blob ${digest} does not match its digest (sha256:${got})`);
    renameSync(tmp, dest);
  } finally {
    rmSync(tmp, { force: true });
  }
  return true;
}

/**
 * One image into the layout from its archive: its config and layers, then its manifest (last,
 * so a manifest in the layout means its blobs are there).
 */
async function putImage(dir: string, archive: string, digest: string): Promise<StepResult> {
  const { manifest, blobs } = readArchive(archive, (a) => {
    const manifest = a.blob(digest);
    const m = JSON.parse(manifest.toString('utf8')) as {
      config?: { digest: string };
      layers?: { digest: string }[];
    };
    const digests = [...(m.config ? [m.config.digest] : []), ...(m.layers ?? []).map((l) => l.digest)];
    return { manifest, blobs: digests.map((d) => ({ digest: d, archive, ...a.locate(d) })) };
  });
  let copied = false;
  for (const { digest: d, ...from } of blobs) copied = (await putBlob(dir, d, from)) || copied;
  copied = (await putBlob(dir, digest, manifest)) || copied;
  return copied ? 'pushed' : 'already-present';
}

/** The index blob, kept reachable by an untagged entry in index.json until tags point at it. */
async function putIndex(dir: string, s: Staged): Promise<StepResult> {
  await putBlob(dir, s.index.digest, Buffer.from(s.index.bytes));
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
