// Pure planning of a stream's site (formats.md §4–§6): which build file goes where and under which
// URL, and the metadata documents (release.json, releases.json, streams/<s>.json, updates/<s>.json)
// rendered from the build metadata and what the site already holds. No I/O and no clock: the
// caller passes the time and the current documents; apply.ts writes the result.
import type { Arch } from '../config/index.ts';
import { ExitCode, formatLocation, type Location, PipelineError } from '../errors.ts';
import { compareVersions } from '../plan/version.ts';
import { graphPath, renderGraph } from './graph.ts';

export const PLAN_SCHEMA = 'rock-image/publish-plan/1';

/** One meta.json `images.<key>` entry (formats.md §4). */
export interface MetaImage {
  path: string;
  sha256: string;
  size: number;
  'uncompressed-sha256'?: string;
  'uncompressed-size'?: number;
}

/** The parts of `builds/<version>/<arch>/meta.json` publishing reads. */
export interface PublishMeta {
  buildid: string;
  name?: string;
  'coreos-assembler.basearch': string;
  'ostree-commit'?: string;
  images: Record<string, MetaImage>;
  'rocknsm.image-digest'?: string;
  'rocknsm.boot-tests'?: Record<string, { result: 'pass' | 'fail'; seconds?: number }>;
  /** images key -> the artifact backend that made it (artifacts/index.ts). */
  'rocknsm.artifact-backends'?: Record<string, string>;
  /** The last `rock-image artifacts` run; its backend stands for builds made before the above. */
  'rocknsm.artifacts'?: { backend?: string };
}

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
  /** What the site holds at dest now. */
  state: 'missing' | 'present' | 'differs';
}

export interface Document {
  /** Path relative to the site root. */
  path: string;
  kind: 'release' | 'releases' | 'stream' | 'updates' | 'graph';
  json: unknown;
}

export interface RolloutControls {
  barrier?: { reason: string };
  deadend?: { reason: string };
  rollout?: { start_epoch: number; start_percentage: number; duration_minutes?: number };
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
  /** Rollout controls for this release's updates entry (kept as they are when absent). */
  controls?: RolloutControls;
  existing: Existing;
  /** Epoch milliseconds: the only time the documents carry. */
  now: number;
  /**
   * The stream's `allow-native-disks` and where a refusal points (file:line:col); absent when
   * the project does not define the stream, and then native artifacts are refused.
   */
  nativeDisks?: { allowed: boolean; at: Location };
}

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
  throw new PipelineError(
    `${where}refusing to publish ${input.version} to ${input.stream}: the native backend (or an unrecorded one) made ${what}; such disks have no SELinux labels and no container origin to update from. Make them with artifact-backend: coreos (or bootc, disks only), or set allow-native-disks: true in ${input.nativeDisks?.at.file ?? `manifests/streams/${input.stream}.yaml`} for a test or preview stream`,
    ExitCode.config,
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
  if (!/^[a-z][a-z0-9-]*$/.test(stream)) throw new PipelineError(`'${stream}' is not a stream name`, 64);
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(version))
    throw new PipelineError(`'${version}' is not a version`, 64);
  const errs = checkBuilds(version, input.requireArches, input.builds);
  if (errs.length) throw new PipelineError(`refusing to publish ${version}:\n  ${errs.join('\n  ')}`);
  checkNativeDisks(input);
  const builds = [...input.builds].sort((a, b) => archOrder.indexOf(a.arch) - archOrder.indexOf(b.arch));
  const base = baseUrl.replace(/\/+$/, '');
  const dir = buildDir(stream, version);

  const files: PlannedFile[] = [];
  for (const b of builds) {
    for (const [key, img] of Object.entries(b.meta.images).sort(([x], [y]) => x.localeCompare(y))) {
      const dest = `${dir}/${b.arch}/${img.path}`;
      const have = input.existing.files[dest];
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
        media: mediaOf(key, img.path, b.arch),
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
  const release = renderRelease(stream, version, when, builds, files, input.imageRepo);
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
  const updates = upsertUpdates(input.existing.updates, stream, version, input.controls, when);
  const streamDoc = renderStream(stream, when, version, files);
  const graphs = archOrder
    .filter((a) => releases.releases.some((r) => r['oci-images']?.some((o) => o.architecture === a)))
    .map((a) => ({
      path: graphPath(stream, a),
      kind: 'graph' as const,
      json: renderGraph(releases, updates, a),
    }));
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

function formatsOf(files: PlannedFile[], platform: string): Formats {
  const out: Formats = {};
  for (const f of files) {
    if (f.media?.platform !== platform) continue;
    out[f.media.format] ??= {};
    out[f.media.format]![f.media.artifact] = {
      location: f.url,
      signature: `${f.url}.sig`,
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
) {
  const architectures: Record<string, unknown> = {};
  for (const b of builds) {
    const mine = files.filter((f) => f.arch === b.arch);
    architectures[b.arch] = {
      ...(b.meta['ostree-commit'] ? { commit: b.meta['ostree-commit'] } : {}),
      'oci-image': { image: imageRepo, 'digest-ref': `${imageRepo}@${b.meta['rocknsm.image-digest']}` },
      media: Object.fromEntries(platformsOf(mine).map((p) => [p, { artifacts: formatsOf(mine, p) }])),
    };
  }
  return { release: version, stream, metadata: { 'last-modified': when }, architectures };
}

export function renderStream(stream: string, when: string, version: string, files: PlannedFile[]) {
  const architectures: Record<string, unknown> = {};
  for (const arch of archOrder) {
    const mine = files.filter((f) => f.arch === arch);
    if (!mine.length) continue;
    architectures[arch] = {
      artifacts: Object.fromEntries(
        platformsOf(mine).map((p) => [p, { release: version, formats: formatsOf(mine, p) }]),
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

/** updates/<stream>.json with `version` present; `controls`, when given, replace its metadata. */
export function upsertUpdates(
  doc: UpdatesDoc | undefined,
  stream: string,
  version: string,
  controls: RolloutControls | undefined,
  when: string,
): UpdatesDoc {
  const current: UpdatesDoc = doc ?? { stream, metadata: { 'last-modified': when }, releases: [] };
  const at = current.releases.findIndex((r) => r.version === version);
  if (
    at >= 0 &&
    (controls === undefined || JSON.stringify(current.releases[at]!.metadata) === JSON.stringify(controls))
  )
    return current;
  const releases = [...current.releases];
  if (at >= 0) releases[at] = { version, metadata: controls! };
  else releases.push({ version, metadata: controls ?? {} });
  return { stream, metadata: { 'last-modified': when }, releases };
}

/** Rollout controls from command-line values; every problem listed. */
export function parseControls(v: {
  barrier?: string;
  deadend?: string;
  rolloutHours?: string;
  rolloutStart?: string;
  rolloutStartPercentage?: string;
  now: number;
}): RolloutControls | undefined {
  const out: RolloutControls = {};
  const errs: string[] = [];
  if (v.barrier !== undefined) {
    if (!v.barrier.trim()) errs.push('--barrier needs a reason');
    out.barrier = { reason: v.barrier };
  }
  if (v.deadend !== undefined) {
    if (!v.deadend.trim()) errs.push('--deadend needs a reason');
    out.deadend = { reason: v.deadend };
  }
  if (
    v.rolloutHours !== undefined ||
    v.rolloutStart !== undefined ||
    v.rolloutStartPercentage !== undefined
  ) {
    const hours = Number(v.rolloutHours ?? '0');
    if (!Number.isFinite(hours) || hours < 0)
      errs.push(`--rollout-hours must be a number >= 0 (got ${v.rolloutHours})`);
    let start = Math.floor(v.now / 1000);
    if (v.rolloutStart !== undefined) {
      const ms = /^\d+$/.test(v.rolloutStart) ? Number(v.rolloutStart) * 1000 : Date.parse(v.rolloutStart);
      if (!Number.isFinite(ms))
        errs.push(`--rollout-start must be epoch seconds or an ISO time (got ${v.rolloutStart})`);
      else start = Math.floor(ms / 1000);
    }
    const pct = Number(v.rolloutStartPercentage ?? '0');
    if (!Number.isFinite(pct) || pct < 0 || pct > 100)
      errs.push(`--rollout-start-percentage must be 0..100 (got ${v.rolloutStartPercentage})`);
    out.rollout = {
      start_epoch: start,
      start_percentage: pct / 100,
      duration_minutes: Math.round(hours * 60),
    };
  }
  if (errs.length) throw new PipelineError(errs.join('; '), 64);
  return Object.keys(out).length ? out : undefined;
}
