// Pure: renders the exact command lines of a compose (planCompose) without running anything;
// exec/rpm-ostree.ts runs them.
//
// Two flows, as the stream config chooses:
//   image: `rpm-ostree compose image --format=ociarchive --initialize-mode=if-not-exists ...` (one
//          step, chunked OCI; the previous archive at the output path gives the layer plan)
//   tree:  `rpm-ostree compose tree --unified-core` into an ostree repo, then
//          `rpm-ostree compose container-encapsulate <ref> oci-archive:...` (the previous
//          archive's manifest, copied out first, gives the layer plan)
//
// The stream is injected with a generated wrapper treefile that includes the config's manifest and
// sets `variables` (a including file's variables win, so the stream's values override defaults).
// rpm-ostree looks for `.repo` files next to the root treefile, so the wrapper directory gets
// copies of the config's repo files.

import { basename, dirname, join, relative, sep } from 'node:path';
import { PipelineError } from '../errors.ts';
import type { FlattenResult, VarValue } from './treefile.ts';

/** File name of a composed base archive; `rock-image build` looks for it when base.source is compose. */
export function composedArchiveName(stream: string, arch: string): string {
  return `rocknsm-base-${stream}.${arch}.ociarchive`;
}

export type ComposeMode = 'host' | 'container';
export type ComposeFlow = 'image' | 'tree';

/** Builder image used in container mode. Any Fedora image works: rpm-ostree is installed if missing. */
export const DEFAULT_BUILDER_IMAGE = 'quay.io/fedora/fedora:41';

/** Where the four host directories appear inside the builder container. */
export const CONTAINER_PATHS = {
  config: '/srv/config',
  work: '/srv/work',
  cache: '/srv/cache',
  output: '/srv/output',
} as const;

export interface ComposeRequest {
  stream: string;
  arch: string;
  /** Root treefile (absolute); its directory is the config directory (repo files, lockfiles, overlay.d). */
  treefile: string;
  /** Variables the wrapper treefile sets (stream, prod, ...). */
  variables: Record<string, VarValue>;
  /** The flattened treefile for this arch, with the same variables (from flattenTreefile). */
  flattened: FlattenResult;
  /** Per-arch output directory (absolute): the OCI archive, generated lockfile and compose record. */
  outputDir: string;
  /** Scratch directory (absolute): wrapper treefile, repo copies, ostree repos, container script. */
  workDir: string;
  /** rpm-ostree package cache (absolute), kept between composes. */
  cacheDir: string;
  /** Lockfiles in precedence order (later wins): base lockfile or autolock, then overrides. Absolute. */
  lockfiles: string[];
  /** `.repo` files of the config directory (absolute). */
  repoFiles: string[];
  mode: ComposeMode;
  flow: ComposeFlow;
  builderImage: string;
  /** Only allow locked packages (`--lockfile-strict`). Default false. */
  strict?: boolean;
  /** Labels put on the OCI image. */
  labels: Record<string, string>;
  /** Extra arguments after `podman run` (e.g. `--runtime runc` on hosts where crun fails). */
  podmanArgs?: string[];
  /** Compose even when rpm-ostree finds the inputs unchanged (`--force-nocache`). */
  force?: boolean;
  /**
   * Tree flow: the archive at the output path is a previous build; container-encapsulate takes
   * its manifest to keep the layer plan. Default false (the image flow reads it itself).
   */
  previousBuild?: boolean;
}

export interface ComposePlan {
  request: ComposeRequest;
  /** Wrapper treefile written to the work directory: host path and content. */
  wrapper: { path: string; text: string };
  /** `.repo` files copied next to the wrapper: [source, destination] (host paths). */
  repoCopies: [string, string][];
  /** ostree-layers refs and the overlay directories committed for them (host paths). */
  layers: { ref: string; dir: string }[];
  /** The commands, as run where rpm-ostree runs (container paths in container mode). */
  steps: string[][];
  /** Container mode: the script run in the builder (`/srv/work/compose.sh`) and the podman argv. */
  script?: { path: string; text: string };
  podman?: string[];
  /** Tree flow with a previous build: runCompose copies the archive's manifest to `path` first (host paths). */
  previousManifest?: { archive: string; path: string };
  /** `changed`: the file rpm-ostree touches when it wrote a new image (`--touch-if-changed`). */
  outputs: { archive: string; lockfile: string; record: string; changed: string };
}

/**
 * Packages the builder container needs besides a plain Fedora image:
 * - rpm-ostree itself;
 * - distribution-gpg-keys: Fedora's repo files name their keys under it
 *   (fedora-coreos-config fedora.repo:14 `gpgkey=file:///usr/share/distribution-gpg-keys/...`
 *   @2d0fce6d) and rpm-ostree does not pull it in; coreos-assembler's image installs it
 *   explicitly (coreos-assembler rpms.in.yaml:61 @05db482e).
 */
export const BUILDER_PACKAGES = ['rpm-ostree', 'distribution-gpg-keys'];
// They float: installed from the day's Fedora repos when the image lacks them, so the builder's
// digest does not fix their versions. The script records what it ran with (BUILDER_VERSIONS_FILE,
// copied into the compose record). coreos-assembler installs them once, into its own image
// (Dockerfile:3, :15 @05db482e), locked only for hermetic builds (rpms.lock.yaml); see
// manifests/compose/README.md.

/** Where the builder script writes `rpm -q` of BUILDER_PACKAGES (in the work directory). */
export const BUILDER_VERSIONS_FILE = 'builder-packages.txt';

/** `ostree-layers: [overlay/NAME]` maps to `<config>/overlay.d/NAME`, as in fedora-coreos-config. */
export function overlayDirFor(configDir: string, ref: string): string | undefined {
  const m = /^overlay\/(.+)$/.exec(ref);
  return m ? join(configDir, 'overlay.d', m[1]!) : undefined;
}

/** Renders every command of a compose without running anything. */
export function planCompose(req: ComposeRequest): ComposePlan {
  const configDir = dirname(req.treefile);
  const inContainer = req.mode === 'container';
  const mounts: [string, string][] = [
    [configDir, CONTAINER_PATHS.config],
    [req.workDir, CONTAINER_PATHS.work],
    [req.cacheDir, CONTAINER_PATHS.cache],
    [req.outputDir, CONTAINER_PATHS.output],
  ];
  // Host path -> the path the builder sees.
  const at = (p: string): string => {
    if (!inContainer) return p;
    for (const [host, inside] of mounts) {
      if (p === host) return inside;
      if (p.startsWith(host + sep)) return `${inside}/${relative(host, p).split(sep).join('/')}`;
    }
    throw new PipelineError(`${p} is outside the directories mounted into the builder container`);
  };
  const treefileDir = join(req.workDir, 'treefile');
  const wrapperPath = join(treefileDir, `rocknsm-${req.stream}.json`);
  const wrapper = `${JSON.stringify({ include: at(req.treefile), variables: req.variables }, null, 2)}\n`;
  const repoCopies = req.repoFiles.map((f) => [f, join(treefileDir, basename(f))] as [string, string]);

  const ostreeLayers = [
    ...((req.flattened.treefile['ostree-layers'] as string[] | undefined) ?? []),
    ...((req.flattened.treefile['ostree-override-layers'] as string[] | undefined) ?? []),
  ];
  const layers = ostreeLayers.map((ref) => {
    const dir = overlayDirFor(configDir, ref);
    if (!dir)
      throw new PipelineError(`ostree layer '${ref}' is not of the form overlay/NAME (overlay.d/NAME)`);
    return { ref, dir };
  });

  const name = composedArchiveName(req.stream, req.arch);
  const archive = join(req.outputDir, name);
  const lockOut = join(req.outputDir, `manifest-lock.generated.${req.arch}.json`);
  const labels = Object.entries(req.labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `--label=${k}=${v}`);
  const repo = join(req.workDir, req.flow === 'image' ? 'layers' : 'repo');
  const steps: string[][] = [];
  if (layers.length || req.flow === 'tree')
    steps.push(['ostree', 'init', `--repo=${at(repo)}`, '--mode=archive']);
  for (const l of layers) {
    // The same normalisation coreos-assembler applies when committing overlay.d directories.
    steps.push([
      'ostree',
      'commit',
      `--repo=${at(repo)}`,
      `--branch=${l.ref}`,
      `--tree=dir=${at(l.dir)}`,
      '--owner-uid=0',
      '--owner-gid=0',
      '--no-xattrs',
      '--no-bindings',
      '--parent=none',
      '--mode-ro-executables',
      `--add-metadata-string=ostree.source-title=${l.ref}`,
    ]);
  }
  const layerRepo = layers.length ? [`--layer-repo=${at(repo)}`] : [];
  const changed = join(req.workDir, 'changed');
  const previousManifest =
    req.flow === 'tree' && req.previousBuild ? join(req.workDir, 'previous-manifest.json') : undefined;
  if (req.flow === 'image') {
    // --initialize-mode=if-not-exists: create the image the first time, else read the previous one
    // at the output path, keep its layer packing (--previous-build-manifest) and write nothing when
    // its input hash is unchanged (rpm-ostree rust/src/compose.rs:69-79, :1254-1281, :1352-1363
    // @d5ef5f0c; "what you almost always want", docs/container.md:149-155). --initialize would
    // repack from scratch every time and grow every update download.
    // --touch-if-changed (:164, :1336-1338) says whether it wrote; --force-nocache (:135) forces.
    steps.push([
      'rpm-ostree',
      'compose',
      'image',
      '--format=ociarchive',
      '--initialize-mode=if-not-exists',
      ...(req.force ? ['--force-nocache'] : []),
      `--touch-if-changed=${at(changed)}`,
      `--cachedir=${at(req.cacheDir)}`,
      ...layerRepo,
      ...req.lockfiles.map((l) => `--lockfile=${at(l)}`),
      ...(req.strict && req.lockfiles.length ? ['--lockfile-strict'] : []),
      `--write-lockfile-to=${at(lockOut)}`,
      ...labels,
      at(wrapperPath),
      at(archive),
    ]);
  } else {
    const ref = req.flattened.treefile.ref;
    if (typeof ref !== 'string') throw new PipelineError('the tree flow needs a `ref` in the treefile');
    steps.push([
      'rpm-ostree',
      'compose',
      'tree',
      '--unified-core',
      `--repo=${at(repo)}`,
      `--cachedir=${at(req.cacheDir)}`,
      ...layerRepo,
      ...req.lockfiles.map((l) => `--ex-lockfile=${at(l)}`),
      ...(req.strict && req.lockfiles.length ? ['--ex-lockfile-strict'] : []),
      `--ex-write-lockfile-to=${at(lockOut)}`,
      ...(req.force ? ['--force-nocache'] : []),
      `--touch-if-changed=${at(changed)}`,
      `--write-commitid-to=${at(join(req.workDir, 'commitid'))}`,
      `--write-composejson-to=${at(join(req.outputDir, 'compose-tree.json'))}`,
      at(wrapperPath),
    ]);
    // --previous-build-manifest: the OCI manifest of the previous build, whose packing
    // container-encapsulate keeps (rust/src/container.rs:95-98, read as an ImageManifest :590-597,
    // ostree-ext's prior_build :614 @d5ef5f0c), as compose image does with the image at its output
    // path (compose.rs:1354-1369). Without it every compose repacks and every update grows.
    // Positionals: ostree_ref, then imgref (container.rs:47-52; compose.rs:1372-1377 calls it so).
    steps.push([
      'rpm-ostree',
      'compose',
      'container-encapsulate',
      `--repo=${at(repo)}`,
      ...labels,
      ...(previousManifest ? [`--previous-build-manifest=${at(previousManifest)}`] : []),
      ref,
      `oci-archive:${at(archive)}`,
    ]);
  }
  const plan: ComposePlan = {
    request: req,
    wrapper: { path: wrapperPath, text: wrapper },
    repoCopies,
    layers,
    steps,
    ...(previousManifest ? { previousManifest: { archive, path: previousManifest } } : {}),
    outputs: { archive, lockfile: lockOut, record: join(req.outputDir, 'compose.json'), changed },
  };
  if (inContainer) {
    const scriptPath = join(req.workDir, 'compose.sh');
    plan.script = {
      path: scriptPath,
      text: [
        '#!/bin/bash',
        `# Generated by rock-image compose (${req.stream}/${req.arch}); runs inside ${req.builderImage}.`,
        'set -euo pipefail',
        // Plain Fedora images lack these; images that have them skip the install.
        `rpm -q ${BUILDER_PACKAGES.join(' ')} >/dev/null || dnf -y install --setopt=install_weak_deps=False ${BUILDER_PACKAGES.join(' ')}`,
        `rpm -q ${BUILDER_PACKAGES.join(' ')} >${CONTAINER_PATHS.work}/${BUILDER_VERSIONS_FILE}`,
        ...steps.map((s) => s.map(shellQuote).join(' ')),
        '',
      ].join('\n'),
    };
    // How coreos-assembler runs its builder (docs/building-fcos.md:99-104, :118-120 @05db482e):
    //   `podman run --rm`; `--privileged` (cosa runs rpm-ostree in the container itself only with
    //   CAP_SYS_ADMIN, else in a VM: src/cmdlib.sh:45-58); `--security-opt=label=disable`,
    //   "Disable SELinux isolation so we don't need to relabel the build directory"; the host's
    //   directories mounted under /srv (`-v=${PWD}:/srv/`), the config read-only
    //   (`-v=$COREOS_ASSEMBLER_CONFIG_GIT:/srv/src/config/:ro`). Here: config read-only; work,
    //   cache (rpm-ostree pkgcache, kept between runs) and output read-write.
    // Not taken from cosa: -ti (no terminal in CI); --userns=keep-id (cosa runs rootless, we run as
    //   root); --device=/dev/kvm and /dev/fuse (for its VM; a privileged container has the host's
    //   devices anyway, podman docs/source/markdown/options/privileged.md:11-14 @c6580b4a).
    // podman's own, cmd/podman/common/create.go @c6580b4a: --pull (:294-299; `missing` pulls
    //   only what local storage lacks, options/pull.md:14), --workdir (:459-464), -v/--volume
    //   (:880-885; `ro`, options/volume.md:31), --security-opt (:739-744; `label=disable` turns
    //   off label separation, options/security-opt.md:17), --privileged (:283-287), --rm (:340-344).
    plan.podman = [
      'run',
      '--rm',
      ...(req.podmanArgs ?? []),
      '--privileged',
      '--security-opt=label=disable',
      '--pull=missing',
      '-v',
      `${configDir}:${CONTAINER_PATHS.config}:ro`,
      '-v',
      `${req.workDir}:${CONTAINER_PATHS.work}`,
      '-v',
      `${req.cacheDir}:${CONTAINER_PATHS.cache}`,
      '-v',
      `${req.outputDir}:${CONTAINER_PATHS.output}`,
      '--workdir',
      CONTAINER_PATHS.work,
      req.builderImage,
      'bash',
      `${CONTAINER_PATHS.work}/compose.sh`,
    ];
  }
  return plan;
}

/** Quotes one argument for bash (single quotes unless plainly safe). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command lines of a plan, one per line, as `plan --compose` prints them. */
export function formatPlanCommands(plan: ComposePlan): string {
  const lines: string[] = [];
  if (plan.previousManifest)
    lines.push(
      `# first, on this host: the manifest of ${plan.previousManifest.archive} -> ${plan.previousManifest.path}`,
    );
  if (plan.podman) {
    lines.push(['podman', ...plan.podman].map(shellQuote).join(' '));
    lines.push(`# ${plan.script!.path}:`);
    lines.push(
      ...plan
        .script!.text.trimEnd()
        .split('\n')
        .map((l) => `#   ${l}`),
    );
  } else for (const s of plan.steps) lines.push(s.map(shellQuote).join(' '));
  return `${lines.join('\n')}\n`;
}
