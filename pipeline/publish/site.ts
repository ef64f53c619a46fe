// Pure planning of a stream's site (formats.md §4–§6): which build file goes where and under which
// URL, and the metadata documents (release.json, releases.json, streams/<s>.json, updates/<s>.json,
// and the static update graph per arch) rendered from the build metadata and what the site
// already holds. No I/O and no clock: the caller passes the time and the current documents;
// apply.ts writes the result. The shapes are in site-types.ts, releases/updates over time in
// site-updates.ts, the checks of site documents read from text in site-check.ts; all re-exported here.
import type { Arch } from '../config/index.ts';
import { ConfigError, formatLocation, PipelineError, UsageError } from '../errors.ts';
import { refuseIssues, updatesIssues } from './site-check.ts';
import {
  type ArchBuild,
  archOrder,
  buildDir,
  type Media,
  offSite,
  PLAN_SCHEMA,
  type PlannedFile,
  type ReleaseEntry,
  rfc3339,
  type SiteInput,
  type SitePlan,
} from './site-types.ts';
import { appendRelease, staticGraphs, upsertUpdates } from './site-updates.ts';

export { checkSiteDocText, jsonErrorAt, refuseIssues, updatesIssues } from './site-check.ts';
export {
  type ArchBuild,
  type ArtifactHost,
  buildDir,
  type ControlsRequest,
  type Document,
  type Existing,
  githubDownloadBase,
  type Media,
  type MetaImage,
  offSite,
  PLAN_SCHEMA,
  type PlannedFile,
  type PublishMeta,
  type ReleaseEntry,
  type ReleasesDoc,
  type RolloutControls,
  rfc3339,
  SITE_FILE_LIMIT,
  type SiteInput,
  type SitePlan,
  type UpdatesDoc,
} from './site-types.ts';
export {
  appendRelease,
  cleanUpdates,
  immediateRollout,
  parseControls,
  resolveControls,
  staticGraphs,
  upsertUpdates,
} from './site-updates.ts';

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
  const release = keepModified(
    renderRelease(stream, version, when, builds, files, input.imageRepo, input.signed),
    input.existing.documents?.[`${dir}/release.json`],
  );
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
  const streamDoc = keepModified(
    renderStream(stream, when, version, files, input.signed),
    input.existing.documents?.[`streams/${stream}.json`],
  );
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

/** `doc` with the last-modified of `have` when that is all they differ in (a re-run changes nothing). */
function keepModified<T extends { metadata: { 'last-modified': string } }>(doc: T, have: unknown): T {
  const time = (have as T | undefined)?.metadata?.['last-modified'];
  if (typeof time !== 'string') return doc;
  const same = { ...doc, metadata: { ...doc.metadata, 'last-modified': time } };
  return JSON.stringify(same) === JSON.stringify(have) ? same : doc;
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
