import { ociArch } from '../arch.ts';
import type { Arch, ResolvedConfig } from '../config/index.ts';
import type { OverlayIndex } from '../config/overlay-index.ts';
import { ConfigError, type ConfigIssue, type Location } from '../errors.ts';
import { canonicalJson, sha256Hex } from '../files.ts';
import type { ImageLock } from './image-lock.ts';
import {
  BOUND_IMAGES_DIR,
  IMAGE_PINS_FILE,
  type ImagePin,
  imageNote,
  isDigestRef,
  pinImage,
  QUADLET_DIR,
  quadletImage,
} from './image-pins.ts';
import {
  legacyLinks,
  renderAgentPreset,
  renderAgentQuadlet,
  renderDataPathList,
  renderIgnitionBaseModule,
  renderKargs,
  renderOsRelease,
  renderPrepareRoot,
  renderServicesDropin,
  renderTemplate,
  renderTmpfiles,
} from './render.ts';
import { fillTemplate } from './template.ts';
import { type Signing, signingOf, trustFiles } from './trust.ts';
import { CINCINNATI_DROPIN, renderCincinnatiDropin, updateServer } from './zincati.ts';

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

export interface ContextFile {
  /** Path inside the build context, '/'-separated. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  /** Content for generated files; `source` for files copied from an overlay. */
  content?: string;
  source?: string;
  sha256?: string;
  target?: string;
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

/**
 * Where Ignition reads the base profile's storage config: inside the initramfs only. Ignition
 * merges every file of /usr/lib/ignition/base.d, then base.platform.d/<platform>, then the
 * user config (coreos/ignition v2.14.0 internal/distro/distro.go:32 systemConfigDir,
 * internal/providers/system/system.go:40-50, internal/exec/engine.go:129), and it runs in the
 * initramfs; Fedora CoreOS puts its own base config there with a dracut module
 * (fedora-coreos-config overlay.d/05core/usr/lib/dracut/modules.d/40ignition-conf/module-setup.sh).
 */
export const IGNITION_BASE_PATH = '/usr/lib/ignition/base.d/30-rocknsm-storage.ign';
/** The image's dracut module that installs that file into every initramfs the image builds. */
export const IGNITION_DRACUT_MODULE = '/usr/lib/dracut/modules.d/50rocknsm-ignition-base';

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

/** An image and the manifest line that names it. */
type PlacedPin = { pin: ImagePin; at: Location };

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

function templateVars(config: ResolvedConfig, images: Record<string, PlacedPin>): Record<string, string> {
  const vars: Record<string, string> = {
    name: config.image.name,
    osname: config.image.osname,
    stream: config.stream.stream,
  };
  for (const s of config.services) {
    const { pin } = images[`service/${s.name}`]!;
    vars[`services.${s.name}.image`] = pin.image;
    vars[`services.${s.name}.image-note`] = imageNote(pin);
  }
  return vars;
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
  const files: ContextFile[] = [];
  const addFile = (path: string, content: string, mode = 0o644) =>
    files.push({ path, type: 'file', mode, content, sha256: sha256(content) });
  const addDirs = (path: string) => {
    const parts = path.split('/');
    for (let i = 2; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!files.some((f) => f.path === dir)) files.push({ path: dir, type: 'dir', mode: 0o755 });
    }
  };
  const add = (path: string, content: string, mode = 0o644) => {
    addDirs(path);
    addFile(path, content, mode);
  };

  // Early-boot files (initramfs layer).
  add(
    'initramfs/usr/lib/ostree/prepare-root.conf',
    renderPrepareRoot(config.stream.composefs, config.stream.composefsKeypath),
  );
  const kargs = renderKargs(config.stream.kargs, arch);
  if (kargs) add('initramfs/usr/lib/bootc/kargs.d/10-rocknsm.toml', kargs);
  if (input.ignitionBase) {
    const file = IGNITION_BASE_PATH.split('/').pop()!;
    add(`initramfs${IGNITION_DRACUT_MODULE}/${file}`, input.ignitionBase.text);
    add(`initramfs${IGNITION_DRACUT_MODULE}/module-setup.sh`, renderIgnitionBaseModule(file), 0o755);
  }

  // Overlays: static files copied, templates rendered.
  const vars = templateVars(config, images);
  for (const overlay of input.overlays) {
    for (const e of overlay.entries) {
      const path = `overlays/${overlay.name}/${e.path}`;
      if (e.type === 'dir') files.push({ path, type: 'dir', mode: e.mode });
      else if (e.type === 'symlink') files.push({ path, type: 'symlink', mode: 0o777, target: e.target });
      else if (e.path.endsWith('.in')) {
        const key = `${overlay.name}/${e.path}`;
        const text = input.templates[key];
        if (text === undefined) throw new Error(`template ${key} not read`);
        const rendered = renderTemplate(text, vars, `overlays/${key}`);
        issues.push(...rendered.issues);
        addFile(path.slice(0, -3), rendered.text, e.mode);
      } else
        files.push({
          path,
          type: 'file',
          mode: e.mode,
          source: `${overlay.dir}/${e.path}`,
          sha256: e.sha256,
        });
    }
  }

  // Generated from manifests.
  const dataPaths = config.image.dataPaths;
  add('generated/usr/lib/tmpfiles.d/rocknsm-data.conf', renderTmpfiles(dataPaths));
  add('generated/usr/lib/rocknsm/data-paths', renderDataPathList(dataPaths));
  for (const [link, target] of legacyLinks(dataPaths)) {
    const path = `generated${link}`;
    addDirs(path);
    files.push({ path, type: 'symlink', mode: 0o777, target });
  }
  add(
    'generated/usr/lib/systemd/system/rocknsm.target.d/10-services.conf',
    renderServicesDropin(config.services),
  );
  for (const agent of config.agents.filter((a) => a.mode === 'container')) {
    add(
      `generated/usr/share/containers/systemd/rocknsm-agent-${agent.name}.container`,
      renderAgentQuadlet(agent, images[`agent/${agent.name}`]!.pin),
    );
  }
  // Logically bound images: a link per quadlet whose Image= is a digest. bootc resolves the links
  // inside the deployment root, so an absolute target names the image's own file, as in bootc's
  // own docs and tests (boundimage.rs:78-80 open_dir_rooted_ext, :271-273; docs/src/
  // logically-bound-images.md:37-38 @534c76ea474a356aa288f6767635e579ea2614d5). A tag is not
  // bound: bootc skips an image already in its storage (boundimage.rs:186-189), so a tag would
  // never move on sensors.
  for (const f of boundQuadlets(files)) {
    const path = `generated${BOUND_IMAGES_DIR}/${f}`;
    addDirs(path);
    files.push({ path, type: 'symlink', mode: 0o777, target: `${QUADLET_DIR}/${f}` });
  }
  const preset = renderAgentPreset(config.agents);
  if (preset) add('generated/usr/lib/systemd/system-preset/40-rocknsm-agents.preset', preset);
  // publish.trust (plan/trust.ts): policy.json, registries.d, our public keys.
  for (const f of trustFiles(config)) {
    addDirs(`generated${f.path}`);
    files.push({ type: 'file', ...f, path: `generated${f.path}` });
  }
  // Zincati asks our update graph, not Fedora's (plan/zincati.ts). Without publish.update-url or
  // publish.site-url there is no graph to name, and Zincati keeps Fedora CoreOS's server, whose
  // graph holds none of our images: it then finds no update.
  const updates = updateServer(config.stream.publish);
  if (updates) add(`generated${CINCINNATI_DROPIN}`, renderCincinnatiDropin(updates, config.stream.stream));

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
  for (const p of stampPaths) add(p, stamp(input.version));

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

/** File names of the rendered quadlets (`*.container` in the quadlet directory) that run an image by digest. */
function boundQuadlets(files: ContextFile[]): string[] {
  const dir = new RegExp(`^(generated|overlays/[^/]+)${QUADLET_DIR}/([^/]+\\.container)$`);
  return files
    .map((f) => ({ f, m: dir.exec(f.path) }))
    .filter(({ f, m }) => m && f.type === 'file' && f.content !== undefined)
    .filter(({ f }) => {
      const image = quadletImage(f.content!);
      return image !== undefined && isDigestRef(image);
    })
    .map(({ m }) => m![2]!)
    .sort();
}

function renderLabels(labels: Record<string, string>): string {
  const lines = Object.keys(labels)
    .sort()
    .map((k) => `    ${k}=${JSON.stringify(labels[k])}`);
  return `LABEL \\\n${lines.join(' \\\n')}`;
}
