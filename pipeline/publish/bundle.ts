// An offline bundle of one published release, planned without I/O: which images (by digest),
// which image signatures (lookaside files), which site files (artifacts, their .sig, the stream,
// release and update metadata) go in, and where. The glue (commands/bundle.ts) reads the site,
// the registry's index and the build records; bundle-apply.ts copies, checks and signs.
import { ARCHES, type Arch, ociArch } from '../arch.ts';
import { PipelineError } from '../errors.ts';
import type { BuildMeta } from '../records.ts';
import { staticGraphPath } from './graph.ts';
import { lookasidePath } from './image-tags.ts';
import { buildDir, type ReleasesDoc } from './site.ts';

export const BUNDLE_SCHEMA = 'rock-image/bundle/1';
/** The bundle's own checksum list and its detached signature, at the bundle's root. */
export const SUMS = 'SHA256SUMS';
export const SUMS_SIG = 'SHA256SUMS.sig';
/** The plan as written into the bundle, so the site side knows what it holds. */
export const BUNDLE_JSON = 'bundle.json';
/** OCI layouts in the bundle: the OS image (ref names: arch, and the version for the index). */
export const OS_LAYOUT = 'images/os';
export const SERVICES_LAYOUT = 'images/services';

/** The release.json fields a bundle reads (publish/site.ts renderRelease). */
export interface ReleaseDoc {
  release: string;
  stream: string;
  architectures: Record<string, { 'oci-image': { image: string; 'digest-ref': string } }>;
}

/** An OCI image index as the registry returns it. */
export interface IndexDoc {
  mediaType?: string;
  manifests: { digest: string; platform?: { architecture: string; os: string } }[];
}

export interface BundleInput {
  stream: string;
  version: string;
  /** The stream's releases.json on the site, if any. */
  releases?: ReleasesDoc;
  /** The version's release.json on the site, if any. */
  release?: ReleaseDoc;
  /** Arches the stream needs (its config); the release must have each. */
  streamArches?: Arch[];
  /** Arches asked for (--arch); default: every arch of the release. */
  arches?: Arch[];
  /** Registry repository to read from (host/path); default: the release's own. */
  source?: string;
  /** The index tag <version> points at in the source, and its digest. */
  index: { digest: string; doc: IndexDoc };
  /** Per arch: the build record (its image digest and service images), when the build is here. */
  metas: Partial<Record<Arch, BuildMeta>>;
  /** Site files under the version's build dir (relative to the site root), with their sha256 when listed. */
  siteFiles: string[];
  /** Lookaside files present under the site's signatures/ (relative to it). */
  signatureFiles: string[];
  /**
   * An incremental bundle: the release the site already holds (its release.json) and the layer
   * digests of every per-arch manifest involved (of `version` and of `since`), read from the
   * registry. Layers both have are left out of the bundle.
   */
  since?: { version: string; release?: ReleaseDoc; layers: Record<string, string[]> };
}

export interface BundleImage {
  /** Source reference (docker://host/path@digest). */
  src: string;
  /** Destination in the bundle: an oci: layout and ref name, relative to the bundle root. */
  layout: string;
  ref: string;
  digest: string;
  /** Repository the image is published as (host/path): what the sensor pulls and signatures name. */
  repository: string;
  /** Index with every image it lists (skopeo --multi-arch all). */
  all: boolean;
}

export interface BundlePlan {
  schema: typeof BUNDLE_SCHEMA;
  stream: string;
  version: string;
  arches: Arch[];
  /** The OS image's repository as published (signatures name it). */
  repository: string;
  /** The index tag <version> points at; carried when every arch it lists is bundled. */
  index: { digest: string; carried: boolean };
  manifests: { arch: Arch; digest: string }[];
  images: BundleImage[];
  /** Service and agent images the build names without a digest: not carried (no digest to keep). */
  unpinned: string[];
  /** Files copied as they are: `src` relative to the site root, `dest` relative to the bundle. */
  files: { src: string; dest: string }[];
  /**
   * Incremental: the version the site must hold already (its OS images, by digest, in the
   * registry the bundle is loaded into) and the OS image layers left out, as it has them.
   */
  since?: { version: string; manifests: { arch: Arch; digest: string }[]; omitted: string[] };
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** `host/path@sha256:..` split; undefined when it is not that shape. */
export function splitDigestRef(ref: string): { repository: string; digest: string } | undefined {
  const at = ref.lastIndexOf('@');
  if (at < 0 || !DIGEST.test(ref.slice(at + 1))) return undefined;
  return { repository: ref.slice(0, at), digest: ref.slice(at + 1) };
}

/** A ref name for an OCI layout from a service key (service/zeek -> service-zeek). */
const refName = (key: string) => key.replace(/[^A-Za-z0-9._-]+/g, '-');

/**
 * What goes into the bundle of `version`, or a PipelineError naming why nothing can be bundled:
 * a version the site does not list, an arch the stream needs that the release lacks, an arch
 * asked for that it lacks, an index whose images are not the release's digests, a build record
 * naming another image, or an image without its signatures.
 */
export function planBundle(input: BundleInput): BundlePlan {
  const { stream, version } = input;
  const where = `prod/streams/${stream}/releases.json`;
  if (!input.releases?.releases.some((r) => r.version === version) || !input.release)
    throw new PipelineError(
      `${version} is not published in ${stream} (the site's ${where} does not list it)`,
    );
  const have = ARCHES.filter((a) => input.release!.architectures[a]);
  const missing = (input.streamArches ?? []).filter((a) => !have.includes(a));
  if (missing.length)
    throw new PipelineError(
      `${version} of ${stream} has no ${missing.join(', ')} image, which the stream needs; not bundled`,
    );
  const arches = input.arches ?? have;
  const absent = arches.filter((a) => !have.includes(a));
  if (absent.length)
    throw new PipelineError(
      `${version} of ${stream} has no ${absent.join(', ')} (it has ${have.join(', ')})`,
    );
  const problems: string[] = [];
  const manifests: BundlePlan['manifests'] = [];
  let repository = '';
  for (const a of ARCHES.filter((x) => arches.includes(x))) {
    const ref = splitDigestRef(input.release.architectures[a]!['oci-image']['digest-ref']);
    if (!ref) {
      problems.push(`release.json: ${a} oci-image digest-ref is not host/path@sha256:...`);
      continue;
    }
    if (repository && repository !== ref.repository)
      problems.push(`release.json names two repositories: ${repository}, ${ref.repository}`);
    repository = ref.repository;
    const listed = input.index.doc.manifests.find(
      (m) => m.platform?.architecture === ociArch[a] && m.platform.os === 'linux',
    );
    if (!listed) problems.push(`the index tagged ${version} has no linux/${ociArch[a]} image`);
    else if (listed.digest !== ref.digest)
      problems.push(
        `digest mismatch for ${a}: the registry's index lists ${listed.digest}, release.json ${ref.digest}`,
      );
    const meta = input.metas[a];
    if (meta && meta['rocknsm.image-digest'] !== ref.digest)
      problems.push(
        `digest mismatch for ${a}: meta.json rocknsm.image-digest is ${meta['rocknsm.image-digest']}, release.json ${ref.digest}`,
      );
    manifests.push({ arch: a, digest: ref.digest });
  }
  if (problems.length) throw new PipelineError(`refusing to bundle ${version}:\n  ${problems.join('\n  ')}`);
  const source = input.source ?? repository;
  const carried = input.index.doc.manifests.every((m) => manifests.some((x) => x.digest === m.digest));

  const images: BundleImage[] = manifests.map((m) => ({
    src: `docker://${source}@${m.digest}`,
    layout: OS_LAYOUT,
    ref: m.arch,
    digest: m.digest,
    repository,
    all: false,
  }));
  if (carried)
    images.push({
      src: `docker://${source}@${input.index.digest}`,
      layout: OS_LAYOUT,
      ref: version,
      digest: input.index.digest,
      repository,
      all: true,
    });

  // Service and agent images: one entry per digest, whatever arch's build names it.
  const unpinned = new Set<string>();
  const services = new Map<string, BundleImage>();
  for (const a of arches)
    for (const [key, img] of Object.entries(input.metas[a]?.['rocknsm.images'] ?? {}).sort(([x], [y]) =>
      x < y ? -1 : 1,
    )) {
      const ref = splitDigestRef(img.image);
      if (!ref) {
        unpinned.add(img.image);
        continue;
      }
      if (!services.has(ref.digest))
        services.set(ref.digest, {
          src: `docker://${img.image}`,
          layout: SERVICES_LAYOUT,
          ref: refName(key),
          digest: ref.digest,
          repository: ref.repository,
          // A pin names the multi-arch index when the tag is one (plan/image-pins.ts).
          all: true,
        });
    }
  images.push(...services.values());

  // The OS image's signatures: every file of each carried digest's lookaside directory.
  const files: BundlePlan['files'] = [];
  const sigDigests = [...manifests.map((m) => m.digest), ...(carried ? [input.index.digest] : [])];
  for (const d of sigDigests) {
    const dir = lookasidePath('', repository, d).replace(/^\/+/, '');
    const mine = input.signatureFiles.filter((f) => f.startsWith(`${dir}/`));
    if (!mine.length)
      throw new PipelineError(
        `${repository}@${d} has no signature in the site's signatures/${dir}/ (sensors would reject it); not bundled`,
      );
    for (const f of mine.sort()) files.push({ src: `signatures/${f}`, dest: `signatures/${f}` });
  }

  // Site files: the version's artifacts of the bundled arches (and the version-wide files:
  // SHA256SUMS, its .sig), without the OS image's .ociarchive, which images/os carries already.
  const dir = buildDir(stream, version);
  for (const f of [...input.siteFiles].sort()) {
    const rest = f.slice(dir.length + 1);
    const arch = rest.includes('/') ? rest.slice(0, rest.indexOf('/')) : undefined;
    if (arch && !arches.includes(arch as Arch)) continue;
    if (/\.ociarchive(\.sig)?$/.test(f)) continue;
    files.push({ src: f, dest: `site/${f}` });
  }
  for (const doc of [
    `streams/${stream}.json`,
    `prod/streams/${stream}/releases.json`,
    `updates/${stream}.json`,
    ...arches.map((a) => staticGraphPath(stream, a)),
  ])
    if (!files.some((f) => f.src === doc)) files.push({ src: doc, dest: `site/${doc}` });

  let since: BundlePlan['since'];
  if (input.since) {
    const base = input.since;
    if (base.version === version) throw new PipelineError(`--since ${base.version} is the version bundled`);
    if (!input.releases.releases.some((r) => r.version === base.version) || !base.release)
      throw new PipelineError(`--since ${base.version} is not published in ${stream}`);
    const old = manifests.map((m) => {
      const ref = splitDigestRef(base.release!.architectures[m.arch]?.['oci-image']['digest-ref'] ?? '');
      if (!ref) throw new PipelineError(`--since ${base.version} has no ${m.arch} image`);
      return { arch: m.arch, digest: ref.digest };
    });
    const layersOf = (digest: string) => {
      const l = base.layers[digest];
      if (!l) throw new PipelineError(`internal: no layer list for ${digest}`);
      return l;
    };
    const had = new Set(old.flatMap((m) => layersOf(m.digest)));
    const omitted = [...new Set(manifests.flatMap((m) => layersOf(m.digest)))]
      .filter((l) => had.has(l))
      .sort();
    since = { version: base.version, manifests: old, omitted };
  }

  return {
    schema: BUNDLE_SCHEMA,
    stream,
    version,
    arches: ARCHES.filter((a) => arches.includes(a)),
    repository,
    index: { digest: input.index.digest, carried },
    manifests,
    images,
    unpinned: [...unpinned].sort(),
    files,
    ...(since && { since }),
  };
}

/** SHA256SUMS text: `<hex>  <path>` per file, sorted by path (sha256sum -c reads it). */
export function renderSums(entries: { path: string; sha256: string }[]): string {
  return [...entries]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((e) => `${e.sha256}  ${e.path}\n`)
    .join('');
}

/**
 * SHA256SUMS parsed; every problem names its line. A path must be relative and stay inside the
 * bundle (no `..`), so a crafted list cannot make a reader open files elsewhere.
 */
export function parseSums(text: string): { sums: Map<string, string>; problems: string[] } {
  const sums = new Map<string, string>();
  const problems: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line) return;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) problems.push(`${SUMS}:${i + 1}: not '<sha256>  <path>'`);
    else if (m[2]!.startsWith('/') || m[2]!.split('/').includes('..'))
      problems.push(`${SUMS}:${i + 1}: path ${m[2]} leaves the bundle`);
    else sums.set(m[2]!, m[1]!);
  });
  return { sums, problems };
}
