// Composes the RockNSM base with rpm-ostree: renders the exact command lines (plan), then runs them
// on the host (rpm-ostree installed) or inside a Fedora builder container with podman (Debian and
// Ubuntu hosts, GitHub's runners). Also the compose input hash that lets unchanged inputs skip.
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
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { PipelineError, ToolMissingError } from '../errors.ts';
import { canonicalJson, writeAtomic } from '../files.ts';
import type { FlattenResult, VarValue } from '../plan/treefile.ts';
import { ensureImage, podman } from './podman.ts';
import type { Runner } from './run.ts';
import { archiveLabels } from './skopeo.ts';
import { which } from './tools.ts';

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

// --- input hash -----------------------------------------------------------------------------

export interface ComposeInputs {
  flattened: FlattenResult;
  flow: ComposeFlow;
  builderImage: string;
  /** name -> content of every lockfile, repo file and external file, relative to the config dir. */
  files: Record<string, string>;
  /** Overlay trees: ref -> entries (path, kind, exec bit, content digest or link target). */
  overlays: Record<string, string[]>;
}

/** sha256 over everything that decides the compose's result. Mode (host/container) is excluded. */
export function composeInputHash(inputs: ComposeInputs): string {
  const h = createHash('sha256');
  h.update(
    canonicalJson({
      version: 1,
      treefile: inputs.flattened.treefile,
      variables: inputs.flattened.variables,
      flow: inputs.flow,
      builderImage: inputs.builderImage,
      files: Object.fromEntries(Object.entries(inputs.files).map(([k, v]) => [k, sha256(v)])),
      overlays: inputs.overlays,
    }),
  );
  return `sha256:${h.digest('hex')}`;
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Reads the inputs of a compose request from disk. */
export function gatherComposeInputs(req: ComposeRequest): ComposeInputs {
  const configDir = dirname(req.treefile);
  const files: Record<string, string> = {};
  const add = (p: string) => {
    files[relative(configDir, p)] = readFileSync(p, 'utf8');
  };
  for (const f of req.flattened.files) add(f);
  for (const f of [...req.lockfiles, ...req.repoFiles]) add(f);
  for (const e of req.flattened.externals) add(e.path);
  const overlays: Record<string, string[]> = {};
  for (const ref of [
    ...((req.flattened.treefile['ostree-layers'] as string[] | undefined) ?? []),
    ...((req.flattened.treefile['ostree-override-layers'] as string[] | undefined) ?? []),
  ]) {
    const dir = overlayDirFor(configDir, ref);
    if (!dir || !existsSync(dir))
      throw new PipelineError(`ostree layer '${ref}': ${dir ?? ref} does not exist`);
    overlays[ref] = walkTree(dir);
  }
  return { flattened: req.flattened, flow: req.flow, builderImage: req.builderImage, files, overlays };
}

/** Lists a tree as sorted `path kind mode digest` lines (the exec bit is what ostree keeps). */
export function walkTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const rel = relative(root, p).split(sep).join('/');
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${rel} link ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${rel} dir`);
        walk(p);
      } else out.push(`${rel} file ${st.mode & 0o111 ? 'x' : '-'} ${sha256(readFileSync(p))}`);
    }
  };
  walk(root);
  return out;
}

// --- running --------------------------------------------------------------------------------

/** Which mode `auto` resolves to on this host; throws ToolMissingError (exit 69) when neither works. */
export function resolveMode(
  wanted: ComposeMode | 'auto',
  whichFn: (t: string) => string | undefined = which,
): ComposeMode {
  if (wanted === 'host') {
    if (!whichFn('rpm-ostree'))
      throw new ToolMissingError(
        'rpm-ostree',
        "install 'rpm-ostree' (Fedora only; use --mode container elsewhere)",
      );
    return 'host';
  }
  if (wanted === 'container') {
    if (!whichFn('podman'))
      throw new ToolMissingError('podman', "install 'podman' to run rpm-ostree in a builder container");
    return 'container';
  }
  if (whichFn('rpm-ostree')) return 'host';
  if (whichFn('podman')) return 'container';
  throw new ToolMissingError(
    'rpm-ostree',
    "neither rpm-ostree nor podman is installed; install 'rpm-ostree' (Fedora) or 'podman' (any host, runs a Fedora builder container)",
  );
}

export type ComposeOutcome =
  | { status: 'composed'; record: ComposeRecord }
  | { status: 'unchanged'; record: ComposeRecord };

/** Written next to the archive; the input hash of the next compose is compared against it. */
export interface ComposeRecord {
  schema: 1;
  stream: string;
  arch: string;
  inputHash: string;
  mode: ComposeMode;
  flow: ComposeFlow;
  builderImage: string;
  archive: string;
  lockfile: string;
  ref?: string;
  /** Container mode: the builder's packages as `rpm -q` printed them (they float with the repos). */
  builderPackages?: string[];
  /** From the image labels, when skopeo could read them. */
  version?: string;
  commit?: string;
  composedAt: string;
  commands: string[][];
}

/**
 * The manifest of the one image in an OCI archive, byte for byte: an oci-archive is a tar of an
 * OCI image layout (index.json, blobs/sha256/<hex>). Read with tar, which every host has (skopeo
 * is only where rpm-ostree is). `--no-anchored` accepts both `index.json` and `./index.json`.
 */
export async function ociArchiveManifest(run: Runner, archive: string, tag?: string): Promise<string> {
  const member = async (name: string) =>
    (await run('tar', ['-xOf', archive, '--no-anchored', name], { tag })).stdout;
  const index = JSON.parse(await member('index.json')) as {
    manifests?: { mediaType?: string; digest?: string }[];
  };
  const manifests = index.manifests ?? [];
  const m = /^sha256:([0-9a-f]{64})$/.exec(manifests[0]?.digest ?? '');
  if (
    manifests.length !== 1 ||
    !m ||
    manifests[0]!.mediaType !== 'application/vnd.oci.image.manifest.v1+json'
  )
    throw new PipelineError(
      `${archive}: expected one OCI image manifest in index.json, found ${JSON.stringify(manifests)}`,
    );
  return member(`blobs/sha256/${m[1]}`);
}

/** Reads a previous compose record, if any. */
export function readRecord(path: string): ComposeRecord | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ComposeRecord;
  } catch {
    return undefined;
  }
}

/**
 * Applies a plan: skips when the previous record has the same input hash and the archive exists;
 * otherwise writes the wrapper, repo copies and script, runs the steps, and writes the record.
 */
export async function runCompose(
  run: Runner,
  plan: ComposePlan,
  inputHash: string,
  now: () => number,
  opts: { force?: boolean } = {},
): Promise<ComposeOutcome> {
  const req = plan.request;
  const tag = req.arch;
  const previous = readRecord(plan.outputs.record);
  if (!opts.force && previous?.inputHash === inputHash && existsSync(plan.outputs.archive)) {
    return { status: 'unchanged', record: previous };
  }
  // Container mode needs the builder image locally or a registry to pull it from.
  if (plan.podman) await ensureImage(run, req.builderImage, tag);
  for (const d of [req.workDir, req.cacheDir, req.outputDir, dirname(plan.wrapper.path)])
    mkdirSync(d, { recursive: true });
  rmSync(plan.outputs.changed, { force: true });
  writeFileSync(plan.wrapper.path, plan.wrapper.text);
  for (const [from, to] of plan.repoCopies) writeFileSync(to, readFileSync(from));
  if (plan.previousManifest)
    writeFileSync(
      plan.previousManifest.path,
      await ociArchiveManifest(run, plan.previousManifest.archive, tag),
    );
  let builderPackages: string[] | undefined;
  if (plan.podman && plan.script) {
    const versions = join(req.workDir, BUILDER_VERSIONS_FILE);
    rmSync(versions, { force: true });
    writeFileSync(plan.script.path, plan.script.text, { mode: 0o755 });
    await podman(run, plan.podman, { stream: true, tag });
    if (existsSync(versions)) builderPackages = readFileSync(versions, 'utf8').split('\n').filter(Boolean);
  } else {
    for (const [cmd, ...args] of plan.steps) await run(cmd!, args, { stream: true, tag });
  }
  let version: string | undefined;
  let commit: string | undefined;
  if (which('skopeo')) {
    const labels = await archiveLabels(run, plan.outputs.archive, tag);
    if (labels) {
      version = labels['org.opencontainers.image.version'] ?? labels.version;
      commit = labels['ostree.commit'];
    }
  }
  const record: ComposeRecord = {
    schema: 1,
    stream: req.stream,
    arch: req.arch,
    inputHash,
    mode: req.mode,
    flow: req.flow,
    builderImage: req.builderImage,
    archive: plan.outputs.archive,
    lockfile: plan.outputs.lockfile,
    ref: typeof req.flattened.treefile.ref === 'string' ? req.flattened.treefile.ref : undefined,
    builderPackages,
    version,
    commit,
    composedAt: new Date(now()).toISOString(),
    commands: plan.podman ? [['podman', ...plan.podman]] : plan.steps,
  };
  writeAtomic(plan.outputs.record, `${JSON.stringify(record, null, 2)}\n`);
  // rpm-ostree found the packages and treefile unchanged against the previous image (the inputs
  // that changed are ours alone, e.g. a label): it kept that image as it was.
  if (!existsSync(plan.outputs.changed)) return { status: 'unchanged', record };
  return { status: 'composed', record };
}
