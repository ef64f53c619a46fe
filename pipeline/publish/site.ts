// Pure planning of a stream's site (formats.md §4–§6): which build file goes where and under which
// URL, and the metadata documents (release.json, releases.json, streams/<s>.json, updates/<s>.json,
// and the static update graph per arch) rendered from the build metadata and what the site
// already holds. No I/O and no clock: the caller passes the time and the current documents;
// apply.ts writes the result. Also the checks of site documents read from text (file:line errors).
import type { Arch } from '../config/index.ts';
import { parseYaml } from '../config/yaml.ts';
import {
  ConfigError,
  type ConfigIssue,
  DataError,
  formatIssue,
  formatLocation,
  type Location,
  PipelineError,
  UsageError,
} from '../errors.ts';
import { canonicalJson } from '../files.ts';
import { compareVersions } from '../plan/version.ts';
import type { BuildMeta, ImageEntry } from '../records.ts';
import { staticGraph, staticGraphPath } from './graph.ts';
import { type DocKind, problems } from './validate.ts';

export const PLAN_SCHEMA = 'rock-image/publish-plan/1';

/** One meta.json `images.<key>` entry (formats.md §4; records/schema/meta.schema.json). */
export type MetaImage = ImageEntry;

/** `builds/<version>/<arch>/meta.json` as publishing reads it (records.ts). */
export type PublishMeta = BuildMeta;

export interface ArchBuild {
  arch: Arch;
  meta: PublishMeta;
  /** Directory holding meta.json and the files it lists. */
  dir: string;
}

/** Where one artifact appears in stream metadata (formats.md §5), if it does. */
export interface Media {
  platform: string;
  format: string;
  artifact: string;
}

export interface PlannedFile {
  arch: Arch;
  /** meta.json images key. */
  key: string;
  name: string;
  /** Source path (build dir, or another stream's site dir when promoting). */
  src: string;
  /** Path relative to the site root. */
  dest: string;
  url: string;
  sha256: string;
  size: number;
  uncompressedSha256?: string;
  media?: Media;
  /** Where the file is served: the site (url), the version's GitHub release, or the object store. */
  served: 'site' | ArtifactHost['kind'];
  /** The URL metadata documents name: url on the site, else the download URL where it is served. */
  location: string;
  /** What the site holds at dest now. */
  state: 'missing' | 'present' | 'differs';
}

export interface Document {
  /** Path relative to the site root. */
  path: string;
  kind: 'release' | 'releases' | 'stream' | 'updates' | 'graph';
  json: unknown;
}

/**
 * One release's entry in updates/<stream>.json, as Fedora CoreOS writes it (formats.md §5;
 * coreos/fedora-coreos-cincinnati commons/src/metadata.rs:68-90 @95388bdf). start_percentage is a
 * fraction, 0..1; duration_minutes absent means the rollout stays at start_percentage
 * (commons/src/policy.rs:49-50 @95388bdf). Our schema also requires start_epoch.
 */
export interface RolloutControls {
  barrier?: { reason: string };
  deadend?: { reason: string };
  rollout?: { start_epoch: number; start_percentage: number; duration_minutes?: number };
}

/**
 * Controls as asked for (command line): the rollout's start may be left open, and is then
 * decided when the entry is written (upsertUpdates).
 */
export interface ControlsRequest {
  barrier?: { reason: string };
  deadend?: { reason: string };
  rollout?: { start_epoch?: number; start_percentage: number; duration_minutes?: number };
}

export interface Existing {
  /** Files at their dest paths: size and sha256. */
  files: Record<string, { size: number; sha256: string }>;
  releases?: ReleasesDoc;
  updates?: UpdatesDoc;
}

export interface ReleaseEntry {
  version: string;
  metadata: string;
  commits: { architecture: string; checksum: string }[];
  'oci-images'?: { architecture: string; image: string; 'digest-ref': string }[];
}

export interface ReleasesDoc {
  note: string;
  stream: string;
  metadata: { 'last-modified': string };
  releases: ReleaseEntry[];
}

export interface UpdatesDoc {
  stream: string;
  metadata: { 'last-modified': string };
  releases: { version: string; metadata: RolloutControls }[];
}

export interface SiteInput {
  stream: string;
  version: string;
  /** Arches the stream must have; a build lacking one is refused. */
  requireArches: Arch[];
  builds: ArchBuild[];
  /** URL the site directory is served at (no trailing slash). */
  baseUrl: string;
  /** Image repository named in release.json (host/repo, or the oci: layout). */
  imageRepo: string;
  /**
   * Rollout controls for this release's updates entry: absent, the entry is kept as it is (an
   * immediate rollout is added when it has none; upsertUpdates).
   */
  controls?: ControlsRequest;
  existing: Existing;
  /** Epoch milliseconds: the only time the documents carry. */
  now: number;
  /**
   * The stream's `allow-native-disks` and where a refusal points (file:line:col); absent when
   * the project does not define the stream, and then native artifacts are refused.
   */
  nativeDisks?: { allowed: boolean; at: Location };
  /**
   * Whether every file gets a detached signature (`--sign-by`): only then do documents carry
   * `signature` URLs, so that none names a .sig that does not exist.
   */
  signed: boolean;
  /** Where offSite files are served; absent, every file is named at its site URL. */
  artifactHost?: ArtifactHost;
}

/**
 * Where files the site does not serve are downloaded from:
 * - `github`: the version's GitHub release, `downloadBase` being
 *   `<server>/<owner>/<repo>/releases/download/<tag>/` (githubDownloadBase); every artifact is an
 *   asset of it (apply.ts releaseAssets), and apply.ts checks GitHub's browser_download_url of
 *   each asset against the location before any document is written;
 * - `object-store`: the stream's `publish.artifact-url` (ends with `/`), under which the site's
 *   own paths (prod/streams/<s>/builds/<v>/<arch>/<file>, with .sig) are uploaded.
 */
export type ArtifactHost =
  | { kind: 'github'; downloadBase: string }
  | { kind: 'object-store'; baseUrl: string };

/**
 * The largest file the gh-pages site holds: .github/scripts/site-branch.sh leaves out files
 * over 95 MiB (GitHub refuses pushes of files over 100 MB).
 */
export const SITE_FILE_LIMIT = 95 * 1024 * 1024;

/** The release download URL prefix of a GitHub release (what browser_download_url starts with). */
export const githubDownloadBase = (server: string, repo: string, tag: string) =>
  `${server.replace(/\/+$/, '')}/${repo}/releases/download/${encodeURIComponent(tag)}/`;

/**
 * Files the site does not serve when another host is there: disk images (metal, metal4k, qemu,
 * live ISO), which grow past what gh-pages holds, and anything over SITE_FILE_LIMIT (the live
 * rootfs). The PXE kernel and initramfs, SHA256SUMS and small files stay on the site.
 */
export const offSite = (f: { media?: Media; size: number }) =>
  f.media?.artifact === 'disk' || f.size > SITE_FILE_LIMIT;

export interface SitePlan {
  schema: typeof PLAN_SCHEMA;
  stream: string;
  version: string;
  baseUrl: string;
  arches: Arch[];
  files: PlannedFile[];
  /** Per-arch SHA256SUMS (bare names) at builds/<version>/<arch>/SHA256SUMS. */
  sums: { arch: Arch; dest: string; text: string }[];
  /** Metadata, in the order it must be written: each only refers to what precedes it. */
  documents: Document[];
  /** Versions in releases.json after this publish, oldest first. */
  releaseOrder: string[];
}

const archOrder: Arch[] = ['x86_64', 'aarch64'];

export const rfc3339 = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

export const buildDir = (stream: string, version: string) => `prod/streams/${stream}/builds/${version}`;

/**
 * Where an images entry appears in stream metadata: metal raw/4k/iso/pxe and qemu qcow2, with the
 * format taken from the file name (`-metal.x86_64.raw.xz` -> raw.xz). Other files (the OCI archive,
 * Ignition configs, PXE snippets) are published and signed but are not stream artifacts.
 */
export function mediaOf(key: string, path: string, arch: string): Media | undefined {
  const marker = `-${key}.${arch}`;
  const at = path.lastIndexOf(marker);
  const ext = at < 0 ? '' : path.slice(at + marker.length).replace(/^\./, '');
  switch (key) {
    case 'metal':
      return ext ? { platform: 'metal', format: ext, artifact: 'disk' } : undefined;
    case 'metal4k':
      return ext ? { platform: 'metal', format: `4k.${ext}`, artifact: 'disk' } : undefined;
    case 'live-iso':
      return { platform: 'metal', format: 'iso', artifact: 'disk' };
    case 'live-kernel':
      return { platform: 'metal', format: 'pxe', artifact: 'kernel' };
    case 'live-initramfs':
      return { platform: 'metal', format: 'pxe', artifact: 'initramfs' };
    case 'live-rootfs':
      return { platform: 'metal', format: 'pxe', artifact: 'rootfs' };
    case 'qemu':
      return ext ? { platform: 'qemu', format: ext, artifact: 'disk' } : undefined;
    default:
      return undefined;
  }
}

/** meta.json images keys a backend makes (the OCI archive and Ignition configs come from the build). */
const backendKeys = /^(metal|metal4k|qemu|live-.*|pxe-.*)$/;

/**
 * Images keys of coreos-installer's and Fedora CoreOS's disk formats: `metal` as `raw.xz`,
 * `metal4k` as `metal` `4k.raw.xz` (coreos-installer src/install.rs:165-180, src/source.rs:267-300
 * @bee45001: the stream path asks for nothing else), `qemu` as `qcow2.xz`.
 */
const xzKeys = ['metal', 'metal4k', 'qemu'];

/**
 * Artifacts of each arch that the native backend made, or whose backend is not recorded: disks
 * with no SELinux labels and no container origin (artifacts/native.ts, top comment).
 */
export function nativeArtifacts(builds: ArchBuild[]): { arch: Arch; keys: string[] }[] {
  return builds
    .map((b) => {
      const made = b.meta['rocknsm.artifact-backends'] ?? {};
      const fallback = b.meta['rocknsm.artifacts']?.backend;
      const keys = Object.keys(b.meta.images ?? {})
        .filter((k) => backendKeys.test(k) && (made[k] ?? fallback ?? 'native') === 'native')
        .sort();
      return { arch: b.arch, keys };
    })
    .filter((n) => n.keys.length > 0);
}

/**
 * Publishing native artifacts needs the stream's `allow-native-disks: true`: one line naming
 * the stream file (file:line:col) and the setting; exit 65 (the fix is in an input file).
 */
export function checkNativeDisks(
  input: Pick<SiteInput, 'stream' | 'version' | 'builds' | 'nativeDisks'>,
): void {
  const found = nativeArtifacts(input.builds);
  if (found.length === 0 || input.nativeDisks?.allowed) return;
  const what = found.map((n) => `${n.arch} ${n.keys.join(', ')}`).join('; ');
  const where = input.nativeDisks
    ? `${formatLocation(input.nativeDisks.at)}: `
    : `manifests/streams/${input.stream}.yaml (not in this project): `;
  throw new ConfigError(
    `${where}refusing to publish ${input.version} to ${input.stream}: the native backend (or an unrecorded one) made ${what}; such disks have no SELinux labels and no container origin to update from. Make them with artifact-backend: coreos (or bootc, disks only), or set allow-native-disks: true in ${input.nativeDisks?.at.file ?? `manifests/streams/${input.stream}.yaml`} for a test or preview stream`,
  );
}

/** Refusals that apply to publish and promote alike: missing arches, failed boot tests, bad names. */
export function checkBuilds(version: string, requireArches: Arch[], builds: ArchBuild[]): string[] {
  const errs: string[] = [];
  const have = new Set(builds.map((b) => b.arch));
  for (const a of requireArches)
    if (!have.has(a)) errs.push(`${version}: no ${a} build (the stream needs ${requireArches.join(', ')})`);
  for (const b of builds) {
    if (b.meta.buildid !== version)
      errs.push(`${b.dir}/meta.json: buildid ${b.meta.buildid}, expected ${version}`);
    if (b.meta['coreos-assembler.basearch'] !== b.arch)
      errs.push(`${b.dir}/meta.json: basearch ${b.meta['coreos-assembler.basearch']}, expected ${b.arch}`);
    if (!/^sha256:[0-9a-f]{64}$/.test(b.meta['rocknsm.image-digest'] ?? ''))
      errs.push(`${b.dir}/meta.json: rocknsm.image-digest missing or not a sha256 digest`);
    for (const [c, r] of Object.entries(b.meta['rocknsm.boot-tests'] ?? {}))
      if (r.result !== 'pass') errs.push(`${b.dir}/meta.json: boot test '${c}' ${r.result} for ${b.arch}`);
    for (const [k, img] of Object.entries(b.meta.images ?? {})) {
      if (!img.path || img.path.includes('/') || img.path.startsWith('.'))
        errs.push(`${b.dir}/meta.json: images.${k}.path '${img.path}' is not a plain file name`);
      if (!/^[0-9a-f]{64}$/.test(img.sha256 ?? ''))
        errs.push(`${b.dir}/meta.json: images.${k}.sha256 is not a sha256`);
      if (xzKeys.includes(k) && !img.path?.endsWith('.xz'))
        errs.push(
          `${b.dir}/meta.json: images.${k} is ${img.path}, not xz: coreos-installer reads only raw.xz and 4k.raw.xz; make it again with 'rock-image artifacts' (xz is the default)`,
        );
    }
  }
  return errs;
}

/** Plans a publish (or the target side of a promote): files, SHA256SUMS and documents. */
export function planSite(input: SiteInput): SitePlan {
  const { stream, version, baseUrl } = input;
  if (!/^[a-z][a-z0-9-]*$/.test(stream)) throw new UsageError(`'${stream}' is not a stream name`);
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(version)) throw new UsageError(`'${version}' is not a version`);
  const errs = checkBuilds(version, input.requireArches, input.builds);
  if (errs.length) throw new PipelineError(`refusing to publish ${version}:\n  ${errs.join('\n  ')}`);
  checkNativeDisks(input);
  refuseIssues(`updates/${stream}.json`, updatesIssues(input.existing.updates, `updates/${stream}.json`));
  const builds = [...input.builds].sort((a, b) => archOrder.indexOf(a.arch) - archOrder.indexOf(b.arch));
  const base = baseUrl.replace(/\/+$/, '');
  const dir = buildDir(stream, version);

  const files: PlannedFile[] = [];
  for (const b of builds) {
    for (const [key, img] of Object.entries(b.meta.images).sort(([x], [y]) => x.localeCompare(y))) {
      const dest = `${dir}/${b.arch}/${img.path}`;
      const have = input.existing.files[dest];
      const media = mediaOf(key, img.path, b.arch);
      const host = input.artifactHost && offSite({ media, size: img.size }) ? input.artifactHost : undefined;
      files.push({
        arch: b.arch,
        key,
        name: img.path,
        src: `${b.dir}/${img.path}`,
        dest,
        url: `${base}/${dest}`,
        sha256: img.sha256,
        size: img.size,
        uncompressedSha256: img['uncompressed-sha256'],
        media,
        served: host?.kind ?? 'site',
        location: !host
          ? `${base}/${dest}`
          : host.kind === 'github'
            ? `${host.downloadBase}${encodeURIComponent(img.path)}`
            : new URL(dest, host.baseUrl).href,
        state: !have
          ? 'missing'
          : have.sha256 === img.sha256 && have.size === img.size
            ? 'present'
            : 'differs',
      });
    }
  }
  const published = input.existing.releases?.releases.some((r) => r.version === version);
  const changed = files.filter((f) => f.state === 'differs');
  if (published && changed.length)
    throw new PipelineError(
      `${version} is already published in ${stream}, but the site holds other bytes for: ${changed.map((f) => f.dest).join(', ')}; a published release is never changed`,
    );
  // Arch-independent files (the Ignition configs) carry one name in every arch: fine when equal,
  // since GitHub's asset list is flat.
  const names = new Map<string, string>();
  for (const f of files) {
    const seen = names.get(f.name);
    if (seen !== undefined && seen !== f.sha256)
      throw new PipelineError(`two builds publish different files named ${f.name}`);
    names.set(f.name, f.sha256);
  }
  const sums = builds.map((b) => ({
    arch: b.arch,
    dest: `${dir}/${b.arch}/SHA256SUMS`,
    text: files
      .filter((f) => f.arch === b.arch)
      .map((f) => `${f.sha256}  ${f.name}\n`)
      .join(''),
  }));

  const when = rfc3339(input.now);
  const release = renderRelease(stream, version, when, builds, files, input.imageRepo, input.signed);
  const entry: ReleaseEntry = {
    version,
    metadata: `${base}/${dir}/release.json`,
    commits: builds
      .filter((b) => b.meta['ostree-commit'])
      .map((b) => ({ architecture: b.arch, checksum: b.meta['ostree-commit']! })),
    'oci-images': builds.map((b) => ({
      architecture: b.arch,
      image: input.imageRepo,
      'digest-ref': `${input.imageRepo}@${b.meta['rocknsm.image-digest']}`,
    })),
  };
  const releases = appendRelease(input.existing.releases, stream, entry, when);
  const updates = upsertUpdates(
    input.existing.updates,
    stream,
    version,
    input.controls,
    input.now,
    releases.releases.map((r) => r.version),
  );
  const streamDoc = renderStream(stream, when, version, files, input.signed);
  const graphs = staticGraphs(stream, releases, updates, input.now);
  return {
    schema: PLAN_SCHEMA,
    stream,
    version,
    baseUrl: base,
    arches: builds.map((b) => b.arch),
    files,
    sums,
    documents: [
      { path: `${dir}/release.json`, kind: 'release', json: release },
      { path: `prod/streams/${stream}/releases.json`, kind: 'releases', json: releases },
      { path: `streams/${stream}.json`, kind: 'stream', json: streamDoc },
      { path: `updates/${stream}.json`, kind: 'updates', json: updates },
      ...graphs,
    ],
    releaseOrder: releases.releases.map((r) => r.version),
  };
}

type Formats = Record<string, Record<string, Record<string, string>>>;

/**
 * The formats of one platform. `signature` only when the files are signed. coreos-installer
 * declares it a required string (`struct Artifact { location: String, signature: String }`,
 * coreos/coreos-installer src/source.rs:527-531 @bee45001), so it cannot decode an unsigned
 * stream at all; a signed one it cannot use either, as it trusts only its built-in keys
 * (README, "Installing a sensor").
 */
function formatsOf(files: PlannedFile[], platform: string, signed: boolean): Formats {
  const out: Formats = {};
  for (const f of files) {
    if (f.media?.platform !== platform) continue;
    out[f.media.format] ??= {};
    out[f.media.format]![f.media.artifact] = {
      location: f.location,
      ...(signed ? { signature: `${f.location}.sig` } : {}),
      sha256: f.sha256,
      ...(f.uncompressedSha256 ? { 'uncompressed-sha256': f.uncompressedSha256 } : {}),
    };
  }
  return out;
}

const platformsOf = (files: PlannedFile[]) =>
  [...new Set(files.flatMap((f) => (f.media ? [f.media.platform] : [])))].sort();

export function renderRelease(
  stream: string,
  version: string,
  when: string,
  builds: ArchBuild[],
  files: PlannedFile[],
  imageRepo: string,
  signed: boolean,
) {
  const architectures: Record<string, unknown> = {};
  for (const b of builds) {
    const mine = files.filter((f) => f.arch === b.arch);
    architectures[b.arch] = {
      ...(b.meta['ostree-commit'] ? { commit: b.meta['ostree-commit'] } : {}),
      'oci-image': { image: imageRepo, 'digest-ref': `${imageRepo}@${b.meta['rocknsm.image-digest']}` },
      media: Object.fromEntries(platformsOf(mine).map((p) => [p, { artifacts: formatsOf(mine, p, signed) }])),
    };
  }
  return { release: version, stream, metadata: { 'last-modified': when }, architectures };
}

export function renderStream(
  stream: string,
  when: string,
  version: string,
  files: PlannedFile[],
  signed: boolean,
) {
  const architectures: Record<string, unknown> = {};
  for (const arch of archOrder) {
    const mine = files.filter((f) => f.arch === arch);
    if (!mine.length) continue;
    architectures[arch] = {
      artifacts: Object.fromEntries(
        platformsOf(mine).map((p) => [p, { release: version, formats: formatsOf(mine, p, signed) }]),
      ),
    };
  }
  return { stream, metadata: { 'last-modified': when }, architectures };
}

/**
 * releases.json gains `entry` at the end; existing entries are never changed. A re-run with the
 * same entry leaves the document as it was; a different entry for a published version, or a
 * version older than the newest, is refused.
 */
export function appendRelease(
  doc: ReleasesDoc | undefined,
  stream: string,
  entry: ReleaseEntry,
  when: string,
): ReleasesDoc {
  const current: ReleasesDoc = doc ?? {
    note: 'For use only by Fedora CoreOS-style tooling (coreos-installer, release browsers). Append-only.',
    stream,
    metadata: { 'last-modified': when },
    releases: [],
  };
  if (current.stream !== stream)
    throw new PipelineError(`releases.json is for stream ${current.stream}, not ${stream}`);
  const same = current.releases.find((r) => r.version === entry.version);
  if (same) {
    if (JSON.stringify(same) !== JSON.stringify(entry))
      throw new PipelineError(
        `${entry.version} is already in releases.json of ${stream} with other content; published releases are never rewritten`,
      );
    return current;
  }
  const newest = current.releases.at(-1);
  if (newest && compareVersions(entry.version, newest.version) <= 0)
    throw new PipelineError(
      `${entry.version} is older than ${newest.version}, the newest release of ${stream}; releases.json is append-only in age order`,
    );
  return { ...current, metadata: { 'last-modified': when }, releases: [...current.releases, entry] };
}

/** The static update graph of every arch the stream's releases have (graph.ts staticGraph). */
export function staticGraphs(
  stream: string,
  releases: ReleasesDoc,
  updates: UpdatesDoc,
  now: number,
): Document[] {
  return archOrder
    .filter((a) => releases.releases.some((r) => r['oci-images']?.some((o) => o.architecture === a)))
    .map((a) => ({
      path: staticGraphPath(stream, a),
      kind: 'graph' as const,
      json: staticGraph(releases, updates, a, Math.floor(now / 1000)),
    }));
}

/**
 * The rollout every published release gets unless asked otherwise: to every machine from the
 * publish time on. Fedora CoreOS marks a finished rollout `{"start_percentage": 1.0}`
 * (coreos/fedora-coreos-streams rollout.py:116 @23ca7362, and updates/stable.json there); our
 * schema wants a start_epoch too, and a start of now changes nothing (throttling is
 * start_percentage from the start on, commons/src/policy.rs:68-74 @95388bdf).
 */
export const immediateRollout = (nowSeconds: number) => ({ start_epoch: nowSeconds, start_percentage: 1 });

/**
 * A release's updates entry after a publish, promote or `rollout`:
 * - nothing asked: the entry as it is, with an immediate rollout added when it has none, so that
 *   every published release is an update target (compute_edges makes edges only into rollout and
 *   barrier nodes, commons/src/graph.rs:127-158 @95388bdf);
 * - controls asked: barrier and dead-end as given (absent ones go); the rollout as given, else
 *   the entry's own, else an immediate one. A rollout whose start was not given keeps the
 *   entry's start when nothing else of it changes (a re-run converges), else starts now.
 */
export function resolveControls(
  prev: RolloutControls | undefined,
  request: ControlsRequest | undefined,
  nowSeconds: number,
): RolloutControls {
  const barrier = request ? request.barrier : prev?.barrier;
  const deadend = request ? request.deadend : prev?.deadend;
  let rollout = prev?.rollout;
  const want = request?.rollout;
  if (want) {
    const same =
      rollout !== undefined &&
      rollout.start_percentage === want.start_percentage &&
      rollout.duration_minutes === want.duration_minutes;
    rollout = {
      start_epoch: want.start_epoch ?? (same ? rollout!.start_epoch : nowSeconds),
      start_percentage: want.start_percentage,
      ...(want.duration_minutes !== undefined && { duration_minutes: want.duration_minutes }),
    };
  }
  return {
    ...(barrier && { barrier }),
    ...(deadend && { deadend }),
    rollout: rollout ?? immediateRollout(nowSeconds),
  };
}

/**
 * updates/<stream>.json with `version`'s entry resolved (resolveControls) and the entries cleaned
 * (cleanUpdates; `order` is releases.json's versions). Entries that come out the same (keys in any
 * order) leave the document, last-modified included, as it was.
 */
export function upsertUpdates(
  doc: UpdatesDoc | undefined,
  stream: string,
  version: string,
  request: ControlsRequest | undefined,
  now: number,
  order: readonly string[],
): UpdatesDoc {
  const when = rfc3339(now);
  const current: UpdatesDoc = doc ?? { stream, metadata: { 'last-modified': when }, releases: [] };
  if (current.stream !== stream)
    throw new DataError(`updates/${stream}.json is for stream ${current.stream}, not ${stream}`);
  const at = current.releases.findIndex((r) => r.version === version);
  const prev = at >= 0 ? current.releases[at]!.metadata : undefined;
  const next = resolveControls(prev, request, Math.floor(now / 1000));
  const releases = [...current.releases];
  if (at >= 0) releases[at] = { version, metadata: next };
  else releases.push({ version, metadata: next });
  const cleaned = cleanUpdates(releases, Math.floor(now / 1000), order);
  if (canonicalJson(cleaned) === canonicalJson(current.releases)) return current;
  return { stream, metadata: { 'last-modified': when }, releases: cleaned };
}

/** A rollout every machine takes from its start on, with no duration left to run. */
const isCompleted = (r: UpdatesDoc['releases'][number]['metadata']['rollout']) =>
  r !== undefined && r.start_percentage === 1 && r.duration_minutes === undefined;

/**
 * The updates entries normalised as Fedora CoreOS's releng normalises its own on every rollout
 * (`clean`, coreos/fedora-coreos-streams rollout.py:114-138 @23ca7362), where that changes no
 * machine's next update:
 * - a rollout whose duration has run out is completed (start_percentage 1, no duration; unlike
 *   rollout.py it keeps its start_epoch, which our schema requires);
 * - a completed rollout in force goes when a later release, before any barrier, is a completed
 *   rollout in force, or when the first barrier after it hides nothing (no rollout, or a
 *   completed one in force). rollout.py drops every completed rollout but the last; a barrier
 *   whose own rollout is still in progress between the two would then leave the releases before
 *   it with no update at all, so that one is kept;
 * - an entry left with no rollout, barrier or dead-end goes.
 * Why no next update changes: Zincati takes the target with the highest age_index (coreos/zincati
 * src/cincinnati/mod.rs:302-306 @be76c4aa), and every release with an edge into the dropped
 * rollout, back to the barrier before it, also has one into that later target, which no wariness
 * hides (commons/src/graph.rs:127-158, policy.rs:26-89 @95388bdf). Only a sensor that rolled back
 * from the later target (Zincati's denylist, mod.rs:287-289) is offered nothing older, as on
 * Fedora CoreOS. What it saves: with a rollout per release, edges grow with the square of the
 * releases between barriers (47,680 per arch for 1,000 releases); kept this way, linearly
 * (npm run bench -- graph). `order`: releases.json's versions, the graph's age order; entries of
 * other versions are left as they are.
 */
export function cleanUpdates(
  releases: UpdatesDoc['releases'],
  nowSeconds: number,
  order: readonly string[],
): UpdatesDoc['releases'] {
  const out = releases.map((rel) => {
    const r = rel.metadata.rollout;
    if (r?.duration_minutes === undefined || r.start_epoch + 60 * r.duration_minutes >= nowSeconds)
      return rel;
    return {
      version: rel.version,
      metadata: { ...rel.metadata, rollout: { start_epoch: r.start_epoch, start_percentage: 1 } },
    };
  });
  const age = new Map(order.map((v, i) => [v, i]));
  const byAge = out
    .map((rel, at) => ({ rel, at, age: age.get(rel.version) }))
    .filter((x): x is { rel: (typeof out)[number]; at: number; age: number } => x.age !== undefined)
    .sort((a, b) => a.age - b.age);
  const inForce = (m: RolloutControls) => isCompleted(m.rollout) && m.rollout!.start_epoch <= nowSeconds;
  byAge.forEach(({ rel, at }, k) => {
    if (!inForce(rel.metadata)) return;
    const next = byAge.slice(k + 1).find(({ rel: r }) => r.metadata.barrier || inForce(r.metadata));
    if (!next) return;
    const m = next.rel.metadata;
    if (m.barrier && m.rollout && !inForce(m)) return;
    const { rollout: _dropped, ...rest } = rel.metadata;
    out[at] = { version: rel.version, metadata: rest };
  });
  return out.filter((rel) => rel.metadata.rollout || rel.metadata.barrier || rel.metadata.deadend);
}

/** Whole seconds since the epoch, or an ISO 8601 date or date-time with a zone. */
function parseStart(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number.isSafeInteger(Number(s)) ? Number(s) : undefined;
  const iso = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$/;
  if (!iso.test(s) || (s.includes('T') && !/(Z|[+-]\d{2}:\d{2})$/.test(s))) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) && ms >= 0 ? Math.floor(ms / 1000) : undefined;
}

/**
 * Rollout controls from command-line values; every problem listed in one UsageError (exit 64).
 * - `--rollout-hours N` (> 0): from P (default 0) to every machine over N hours from T (default:
 *   when the entry is written), as Fedora CoreOS's rollout.py writes them (start_percentage 0.0,
 *   duration_minutes = hours * 60: coreos/fedora-coreos-streams rollout.py:93-102 @23ca7362);
 * - without it, `--rollout-start T` and/or `--rollout-start-percentage P`: P (default 1, everyone)
 *   from T on, held there (no duration: commons/src/policy.rs:68-74 @95388bdf);
 * - P is a fraction 0..1, as start_percentage in updates.json (0.5 is half the machines).
 * `now` is not read: an open start is decided when the entry is written (resolveControls).
 */
export function parseControls(v: {
  barrier?: string;
  deadend?: string;
  rolloutHours?: string;
  rolloutStart?: string;
  rolloutStartPercentage?: string;
  now?: number;
}): ControlsRequest | undefined {
  const out: ControlsRequest = {};
  const errs: string[] = [];
  if (v.barrier !== undefined) {
    if (!v.barrier.trim()) errs.push('--barrier needs a reason');
    out.barrier = { reason: v.barrier };
  }
  if (v.deadend !== undefined) {
    if (!v.deadend.trim()) errs.push('--deadend needs a reason');
    out.deadend = { reason: v.deadend };
  }
  const { rolloutHours: hours, rolloutStart: start, rolloutStartPercentage: pct } = v;
  if (hours !== undefined || start !== undefined || pct !== undefined) {
    let minutes: number | undefined;
    if (hours !== undefined) {
      const h = /^(\d+\.?\d*|\.\d+)$/.test(hours) ? Number(hours) : Number.NaN;
      minutes = Math.round(h * 60);
      if (!(h > 0) || !(minutes >= 1) || !Number.isSafeInteger(minutes))
        errs.push(
          `--rollout-hours must be a number of hours > 0, at least one minute (got ${hours}); leave it out for a rollout to every machine at once`,
        );
    }
    let startEpoch: number | undefined;
    if (start !== undefined) {
      startEpoch = parseStart(start);
      if (startEpoch === undefined)
        errs.push(
          `--rollout-start is not a time: give seconds since 1970-01-01T00:00:00Z or an ISO 8601 time with a zone, such as 2026-11-22T12:00:00Z (got ${start})`,
        );
    }
    let fraction = minutes !== undefined ? 0 : 1;
    if (pct !== undefined) {
      fraction = /^(\d+\.?\d*|\.\d+)$/.test(pct) ? Number(pct) : Number.NaN;
      if (!(fraction >= 0 && fraction <= 1))
        errs.push(
          `--rollout-start-percentage is a fraction of machines, 0..1, as start_percentage in updates.json (got ${pct}${Number(pct) > 1 && Number(pct) <= 100 ? `; for ${pct}% give ${Number(pct) / 100}` : ''})`,
        );
    }
    out.rollout = {
      ...(startEpoch !== undefined && { start_epoch: startEpoch }),
      start_percentage: fraction,
      ...(minutes !== undefined && { duration_minutes: minutes }),
    };
  }
  if (errs.length) throw new UsageError(errs.join('; '));
  return Object.keys(out).length ? out : undefined;
}

// --- site documents read from text -----------------------------------------------------------------

/** Where a value is: line and column in the file's text, when there is one. */
type Locate = (path: (string | number)[]) => { line: number; col: number } | undefined;

/**
 * What the update graph would misread in updates/<stream>.json, beyond its schema: a rollout
 * start that is not a time, a start percentage outside 0..1, a duration under one minute, and a
 * version listed twice (upstream applies every entry of a version in turn,
 * commons/src/graph.rs:164-167 @95388bdf, so one silently overrides the other).
 */
export function updatesIssues(doc: unknown, file: string, locate: Locate = () => undefined): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const releases = (doc as { releases?: unknown })?.releases;
  if (!Array.isArray(releases)) return issues;
  const add = (path: (string | number)[], message: string, value?: unknown) =>
    issues.push({
      file,
      ...locate(path),
      path: `/${path.join('/')}`,
      rule: 'rollout',
      message,
      ...(value !== undefined && { value }),
    });
  const seen = new Map<string, number>();
  releases.forEach((entry: { version?: unknown; metadata?: { rollout?: Record<string, unknown> } }, i) => {
    const version = typeof entry?.version === 'string' ? entry.version : '?';
    const first = seen.get(version);
    if (first !== undefined)
      add(
        ['releases', i, 'version'],
        `${version} is listed again (first at /releases/${first}); give one entry per version`,
      );
    else seen.set(version, i);
    const r = entry?.metadata?.rollout;
    if (!r || typeof r !== 'object') return;
    const at = (k: string) => ['releases', i, 'metadata', 'rollout', k];
    if ('start_epoch' in r && !(Number.isSafeInteger(r.start_epoch) && (r.start_epoch as number) >= 0))
      add(
        at('start_epoch'),
        `${version}: start_epoch is not a time: it is whole seconds since 1970-01-01T00:00:00Z`,
        r.start_epoch,
      );
    const p = r.start_percentage;
    if ('start_percentage' in r && !(typeof p === 'number' && p >= 0 && p <= 1))
      add(
        at('start_percentage'),
        `${version}: start_percentage is the fraction of machines at the start, 0..1${typeof p === 'number' && p > 1 && p <= 100 ? ` (for ${p}% write ${p / 100})` : ''}`,
        p,
      );
    const d = r.duration_minutes;
    if ('duration_minutes' in r && !(Number.isSafeInteger(d) && (d as number) >= 1))
      add(
        at('duration_minutes'),
        `${version}: a rollout lasts at least one minute (duration_minutes, whole minutes); leave it out to hold the rollout at start_percentage`,
        d,
      );
  });
  return issues;
}

/** Offset of the first JSON syntax error in `text` (RFC 8259), or -1 when there is none. */
export function jsonErrorAt(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const literal = (word: string) => {
    for (const c of word) {
      if (text[i] !== c) fail();
      i++;
    }
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) fail();
      if (c === 0x5c) {
        i++;
        if (text[i] === 'u') {
          for (let k = 1; k <= 4; k++)
            if (!/[0-9a-fA-F]/.test(text[i + k] ?? '')) {
              i += k;
              fail();
            }
          i += 5;
        } else if ('"\\/bfnrt'.includes(text[i] ?? 'x')) i++;
        else fail();
      } else i++;
    }
    fail();
  };
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) return void i++;
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          string();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === close) return void i++;
        else fail();
      }
    }
    if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else {
      number.lastIndex = i;
      const m = number.exec(text);
      if (!m) fail();
      i += m![0].length;
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (at) {
    return at as number;
  }
}

/** Throws (exit 65) naming the file and each issue, when there are any: nothing gets written. */
export function refuseIssues(file: string, issues: ConfigIssue[]): void {
  if (issues.length)
    throw new DataError(
      `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing written:\n  ${issues.map(formatIssue).join('\n  ')}`,
    );
}

/**
 * A site document (releases.json or updates/<stream>.json) read from its text: JSON, its schema
 * (validate.ts) and for updates the checks above, each problem at its line and column; the
 * document's `stream` must be `stream` when given. Throws (exit 65) listing every problem.
 */
export function checkSiteDocText<K extends 'releases' | 'updates'>(
  kind: K,
  text: string,
  file: string,
  stream?: string,
): K extends 'releases' ? ReleasesDoc : UpdatesDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The engine's message differs between Node versions and may carry no position: find it.
    const at = jsonErrorAt(text);
    const before = text.slice(0, at).split('\n');
    const what = at >= text.length ? 'end of file' : JSON.stringify(text[at]);
    throw new DataError(
      `${file}:${before.length}:${before.at(-1)!.length + 1}: not JSON: unexpected ${what}`,
    );
  }
  let source: { locate(p: (string | number)[]): { line: number; col: number } } | undefined;
  const locate: Locate = (path) => {
    source ??= parseYaml(text, file).source;
    return source?.locate(path.map(String));
  };
  const issues = kind === 'updates' ? updatesIssues(doc, file, locate) : [];
  const covered = new Set(issues.map((i) => i.path));
  for (const line of problems(kind as DocKind, doc)) {
    const sep = line.indexOf(': ');
    const pointer = line.slice(0, sep);
    if ([...covered].some((c) => pointer === c || pointer.startsWith(`${c}/`))) continue;
    const path =
      pointer === '/'
        ? []
        : pointer
            .slice(1)
            .split('/')
            .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const [rule, ...rest] = line.slice(sep + 2).split(': ');
    issues.push({ file, ...locate(path), path: pointer, rule: rule!, message: rest.join(': ') });
  }
  const got = (doc as { stream?: unknown })?.stream;
  if (stream !== undefined && issues.length === 0 && got !== stream)
    issues.push({
      file,
      ...locate(['stream']),
      path: '/stream',
      rule: 'stream',
      message: `is for stream ${String(got)}, not ${stream}`,
    });
  refuseIssues(file, issues);
  return doc as K extends 'releases' ? ReleasesDoc : UpdatesDoc;
}
