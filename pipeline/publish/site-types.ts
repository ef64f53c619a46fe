// The shapes of a site plan and of the documents it renders (formats.md §4–§6), and the few
// constants and URL/path helpers every site module shares. Pure.
import type { Arch } from '../config/index.ts';
import type { Location } from '../errors.ts';
import type { BuildMeta, ImageEntry } from '../records.ts';

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
  /**
   * Documents the site holds, by path (the version's release.json, streams/<s>.json): a document
   * rendered again with the same content keeps its last-modified, so a re-run writes nothing.
   */
  documents?: Record<string, unknown>;
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
 *   asset of it (actions.ts planActions), and apply.ts checks GitHub's browser_download_url of
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

export { ARCHES as archOrder } from '../arch.ts';

export const rfc3339 = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

export const buildDir = (stream: string, version: string) => `prod/streams/${stream}/builds/${version}`;
