// The build context of one arch: every file the Containerfile copies into the image (path, type,
// mode, content or overlay source, sha256), under one directory per part: `initramfs/` (early-boot
// files: prepare-root.conf, kargs, the Ignition base config and its dracut module), `overlays/<name>/`
// (overlay trees, templates rendered), `generated/` (from the manifests: tmpfiles, data paths, the
// services drop-in, agent quadlets, logically bound image links, trust files, Zincati's graph) and
// `stamp/` (os-release, added by plan/build-plan.ts once the input hash is known). Pure.
import type { Arch, ResolvedConfig } from '../config/index.ts';
import type { ConfigIssue, Location } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import type { PlanInput } from './build-plan.ts';
import {
  BOUND_IMAGES_DIR,
  type ImagePin,
  imageNote,
  isDigestRef,
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
  renderPrepareRoot,
  renderServicesDropin,
  renderTemplate,
  renderTmpfiles,
} from './render.ts';
import { trustFiles } from './trust.ts';
import { CINCINNATI_DROPIN, renderCincinnatiDropin, updateServer } from './zincati.ts';

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

/** An image and the manifest line that names it. */
export type PlacedPin = { pin: ImagePin; at: Location };

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

const sha256 = sha256Hex;

/** Adds the directories above `path` that the context does not hold yet (not the top one, e.g. `generated`). */
export function addParents(files: ContextFile[], path: string): void {
  const parts = path.split('/');
  for (let i = 2; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (!files.some((f) => f.path === dir)) files.push({ path: dir, type: 'dir', mode: 0o755 });
  }
}

/** Adds a generated file (its content and sha256) with the directories above it. */
export function addGenerated(files: ContextFile[], path: string, content: string, mode = 0o644): void {
  addParents(files, path);
  files.push({ path, type: 'file', mode, content, sha256: sha256(content) });
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

/** The context files of one arch but the stamp; problems found (templates) are added to `issues`. */
export function planContext(
  input: PlanInput,
  arch: Arch,
  images: Record<string, PlacedPin>,
  issues: ConfigIssue[],
): ContextFile[] {
  const { config } = input;
  const files: ContextFile[] = [];
  const addFile = (path: string, content: string, mode = 0o644) =>
    files.push({ path, type: 'file', mode, content, sha256: sha256(content) });
  const addDirs = (path: string) => addParents(files, path);
  const add = (path: string, content: string, mode = 0o644) => addGenerated(files, path, content, mode);

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
  return files;
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
