// The build plan: config, overlays and each arch's base facts in, per arch the Containerfile, its
// labels, the build context (plan/build-context.ts), the packages to layer and the input hash that
// decides whether a build is needed; plus the stream's Ignition configs, signing and service
// images, with `require-pins` checked. Pure: `rock-image build` and `plan` run or print it.
import { ociArch } from '../arch.ts';
import type { Arch, ResolvedConfig } from '../config/index.ts';
import type { OverlayIndex } from '../config/overlay-index.ts';
import { ConfigError, type ConfigIssue } from '../errors.ts';
import { canonicalJson, sha256Hex } from '../files.ts';
import { addGenerated, type ContextFile, type PlacedPin, planContext } from './build-context.ts';
import type { ImageLock } from './image-lock.ts';
import { IMAGE_PINS_FILE, type ImagePin, pinImage } from './image-pins.ts';
import { renderOsRelease } from './render.ts';
import { fillTemplate } from './template.ts';
import { type Signing, signingOf } from './trust.ts';

/** Version of the planning rules; bump when a change must invalidate every input hash. */
export const PLAN_FORMAT = 1;

/** What the glue learned about one arch's base image (pulled and inspected). */
export interface BaseFacts {
  /** The reference the user gave (transport:ref). */
  ref: string;
  /** Repository name the pulled image carries locally; FROM uses <name>@<digest>. */
  name: string;
  /** Manifest digest of this arch's image. */
  digest: string;
  /** Digest of the index it was selected from, when there was one. */
  indexDigest?: string;
  /** Config creation time (RFC 3339). */
  created: string;
  labels: Record<string, string>;
  osRelease: string;
  /** True when /etc/os-release is a regular file rather than a link to /usr/lib/os-release. */
  etcOsReleaseIsFile: boolean;
  /** Kernel versions found under /usr/lib/modules (with a vmlinuz). */
  kernels: string[];
  has: { dracut: boolean; bootc: boolean; dnf: boolean; rpmOstree: boolean };
  /** Paths under /var present in the base (the lint allows nothing else there). */
  varEntries: string[];
}

export interface ArchPlan {
  arch: Arch;
  /** OCI platform, linux/amd64 or linux/arm64. */
  platform: string;
  base: BaseFacts;
  inputHash: string;
  version: string;
  /** Local tag of the built image. */
  tag: string;
  containerfile: string;
  context: ContextFile[];
  labels: Record<string, string>;
  /** Paths (absolute, in the image) that this build adds: what the image lint checks. */
  addedPaths: string[];
  /** The build runs the base's dracut (the base has dracut and one kernel). */
  regeneratesInitramfs: boolean;
}

export interface BuildPlan {
  format: number;
  name: string;
  stream: string;
  version: string;
  /** Epoch seconds stamped on every layer file and the image config (reproducible builds). */
  timestamp: number;
  arches: ArchPlan[];
  /** Ignition configs published with the build, profile -> JSON text (file <name>-<version>-<profile>.ign). */
  ignition: Record<string, string>;
  /** How the stream's published images are signed (plan/trust.ts), for plan output and meta.json. */
  signing: Signing;
  /**
   * Every service and container agent image the image's quadlets run, keyed `service/<name>` or
   * `agent/<name>`: the manifests' reference and what the quadlet says (by digest when pinned).
   */
  images: Record<string, ImagePin>;
}

export interface PlanInput {
  config: ResolvedConfig;
  arches: Arch[];
  overlays: OverlayIndex[];
  /** Contents of overlay templates (`*.in`), keyed by `<overlay>/<path>`. */
  templates: Record<string, string>;
  containerfileTemplate: string;
  bases: Partial<Record<Arch, BaseFacts>>;
  version: string;
  /** Source revision (git commit) for the revision label; not part of the input hash. */
  revision: string;
  timestamp: number;
  /** Ignition base config baked at /usr/lib/ignition/base.d/ (the image's base profile), if any. */
  ignitionBase?: { profile: string; text: string };
  /** Per-profile Ignition configs published beside the image, keyed by profile name. */
  ignitionConfigs?: Record<string, string>;
  /** manifests/image-pins.json: service and agent tag references -> digests. Default none. */
  pins?: ImageLock;
}

export { ociArch };

const sha256 = sha256Hex;

export function planBuild(input: PlanInput): BuildPlan {
  const { config } = input;
  const issues: ConfigIssue[] = [];
  const images = serviceImages(config, input.pins ?? { images: {} });
  issues.push(...pinIssues(config, images));
  const arches = issues.length ? [] : input.arches.map((arch) => planArch(input, arch, images, issues));
  if (issues.length) throw new ConfigError(issues);
  return {
    format: PLAN_FORMAT,
    name: config.image.name,
    stream: config.stream.stream,
    version: input.version,
    timestamp: input.timestamp,
    arches,
    ignition: input.ignitionConfigs ?? {},
    signing: signingOf(config.stream.publish),
    images: Object.fromEntries(Object.entries(images).map(([k, v]) => [k, v.pin])),
  };
}

/** The image of every service and of every agent shipped as a container, as the quadlets run it. */
function serviceImages(config: ResolvedConfig, pins: ImageLock): Record<string, PlacedPin> {
  const out: Record<string, PlacedPin> = {};
  for (const s of config.services) out[`service/${s.name}`] = { pin: pinImage(s.image, pins), at: s.at };
  for (const a of config.agents.filter((x) => x.mode === 'container'))
    out[`agent/${a.name}`] = { pin: pinImage(a.image, pins), at: a.at };
  return out;
}

/** `require-pins`: an image by tag that the pins do not cover is refused at the line naming it. */
function pinIssues(config: ResolvedConfig, images: Record<string, PlacedPin>): ConfigIssue[] {
  const req = config.stream.requirePins;
  if (!req.required) return [];
  return Object.values(images)
    .filter((i) => !i.pin.digest)
    .map(({ pin, at }) => ({
      ...at,
      path: '',
      rule: 'image-pinned',
      message: `${pin.ref} is a tag that ${IMAGE_PINS_FILE} does not pin, and stream ${config.stream.stream} requires pins (${req.at.file}:${req.at.line ?? 1} require-pins); run 'rock-image pin' (registry access) and commit ${IMAGE_PINS_FILE}, or name the image by @sha256: digest`,
      value: pin.ref,
    }));
}

function planArch(
  input: PlanInput,
  arch: Arch,
  images: Record<string, PlacedPin>,
  issues: ConfigIssue[],
): ArchPlan {
  const { config } = input;
  const base = input.bases[arch];
  if (!base) throw new Error(`no base facts for ${arch}`);
  const files = planContext(input, arch, images, issues);

  // The stamp: the only version-dependent files.
  const stamp = (version: string) =>
    renderOsRelease({
      baseOsRelease: base.osRelease,
      variant: config.image.variant,
      imageName: config.image.name,
      version,
      stream: config.stream.stream,
      source: config.image.source,
    });
  const stampPaths = [
    'stamp/usr/lib/os-release',
    ...(base.etcOsReleaseIsFile ? ['stamp/etc/os-release'] : []),
  ];

  // Packages to layer: stream packages plus agents shipped as packages.
  const packages = [
    ...config.stream.packages,
    ...config.agents.filter((a) => a.mode === 'package').map((a) => a.package),
  ];
  if (packages.length && !base.has.dnf && !base.has.rpmOstree) {
    issues.push({
      file: `manifests/streams/${config.stream.stream}.yaml`,
      path: '/packages',
      rule: 'packages-installable',
      message: `the ${arch} base has neither dnf nor rpm-ostree to layer ${packages.join(', ')}`,
    });
  }
  const install = base.has.dnf
    ? `dnf install -y --setopt=install_weak_deps=False ${packages.join(' ')} && dnf clean all && rm -rf /var/cache/* /var/lib/dnf /var/log/dnf*`
    : `rpm-ostree install ${packages.join(' ')} && rm -rf /var/cache/* /var/lib/rpm-state && ostree container commit`;
  const kver = base.kernels.length === 1 ? base.kernels[0]! : '';
  if (base.has.dracut && base.kernels.length !== 1) {
    issues.push({
      file: base.ref,
      path: '/usr/lib/modules',
      rule: 'one-kernel',
      message: `the ${arch} base has dracut but ${base.kernels.length} kernels (${base.kernels.join(', ')}); expected exactly one`,
      value: base.kernels,
    });
  }

  const staticLabels: Record<string, string> = {
    'containers.bootc': '1',
    'ostree.bootable': '1',
    'com.coreos.stream': config.stream.stream,
    'com.coreos.osname': config.image.osname,
    'org.opencontainers.image.title': config.image.title,
    'org.opencontainers.image.description': config.image.description,
    'org.opencontainers.image.source': config.image.source,
    // A registry name says where the base came from; a local path would only leak the builder's
    // file layout into the image (and the input hash), so it is left out.
    ...(base.ref.startsWith('docker://') ? { 'org.opencontainers.image.base.name': base.ref.slice(9) } : {}),
    'org.opencontainers.image.base.digest': base.digest,
    ...(config.image.vendor ? { 'org.opencontainers.image.vendor': config.image.vendor } : {}),
    ...(config.image.licenses ? { 'org.opencontainers.image.licenses': config.image.licenses } : {}),
  };
  const overlayCopies = input.overlays.map((o) => `COPY overlays/${o.name}/ /`).join('\n');
  const render = (
    labels: Record<string, string>,
    baseName = base.ref.startsWith('docker://')
      ? base.ref.slice(9)
      : `a local ${base.ref.split(':')[0]} base`,
  ) =>
    fillTemplate(
      input.containerfileTemplate,
      {
        stream: config.stream.stream,
        arch,
        base_name: baseName,
        base_ref: `${base.name}@${base.digest}`,
        install,
        kver,
        overlays: overlayCopies,
        labels: renderLabels(labels),
      },
      { packages: packages.length > 0, dracut: base.has.dracut && kver !== '', bootc: base.has.bootc },
    );

  // Input hash: everything that decides the image's content except the version stamp values.
  const hashView = {
    format: PLAN_FORMAT,
    arch,
    base: base.digest,
    containerfile: render(staticLabels),
    context: files.map((f) => ({
      path: f.path,
      type: f.type,
      mode: f.mode,
      sha256: f.sha256,
      target: f.target,
    })),
    stamp: stamp('@VERSION@'),
    // Published with the image, so a profile change is a new build even when the image is not.
    ignition: Object.fromEntries(
      Object.entries(input.ignitionConfigs ?? {}).map(([name, text]) => [name, sha256(text)]),
    ),
  };
  const inputHash = sha256(canonicalJson(hashView));

  const created = new Date(input.timestamp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const labels: Record<string, string> = {
    ...staticLabels,
    'com.coreos.inputhash': inputHash,
    'org.opencontainers.image.version': input.version,
    'org.opencontainers.image.revision': input.revision,
    'org.opencontainers.image.created': created,
    version: input.version,
  };
  for (const p of stampPaths) addGenerated(files, p, stamp(input.version));

  const addedPaths = [
    ...new Set(
      files
        .filter((f) => f.type !== 'dir')
        .map((f) => f.path.replace(/^(initramfs|generated|stamp)\//, '/').replace(/^overlays\/[^/]+\//, '/')),
    ),
  ].sort();
  return {
    arch,
    platform: `linux/${ociArch[arch]}`,
    base,
    inputHash,
    version: input.version,
    tag: `localhost/${config.image.name}:${input.version}-${arch}`,
    containerfile: render(labels),
    context: files,
    labels,
    addedPaths,
    regeneratesInitramfs: base.has.dracut && kver !== '',
  };
}

function renderLabels(labels: Record<string, string>): string {
  const lines = Object.keys(labels)
    .sort()
    .map((k) => `    ${k}=${JSON.stringify(labels[k])}`);
  return `LABEL \\\n${lines.join(' \\\n')}`;
}
