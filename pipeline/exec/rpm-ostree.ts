// Runs a compose that plan/compose-plan.ts rendered: on the host (rpm-ostree installed) or inside
// a Fedora builder container with podman (Debian and Ubuntu hosts, GitHub's runners). Also the
// compose input hash that lets unchanged inputs skip, and the record written beside the archive.
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
import { dirname, join, relative, sep } from 'node:path';
import { PipelineError, ToolMissingError } from '../errors.ts';
import { canonicalJson, sha256Hex, writeAtomic } from '../files.ts';
import { archiveLabelsInPlace, archiveRawManifest } from '../oci-archive.ts';
import {
  BUILDER_VERSIONS_FILE,
  type ComposeFlow,
  type ComposeMode,
  type ComposePlan,
  type ComposeRequest,
  overlayDirFor,
} from '../plan/compose-plan.ts';
import type { FlattenResult } from '../plan/treefile.ts';
import { ensureImage, podman } from './podman.ts';
import type { Runner } from './run.ts';
import { which } from './tools.ts';

// The plan half: plan/compose-plan.ts (pure). Its names are re-exported for the commands.
export {
  BUILDER_PACKAGES,
  BUILDER_VERSIONS_FILE,
  CONTAINER_PATHS,
  type ComposeFlow,
  type ComposeMode,
  type ComposePlan,
  type ComposeRequest,
  composedArchiveName,
  DEFAULT_BUILDER_IMAGE,
  formatPlanCommands,
  overlayDirFor,
  planCompose,
  shellQuote,
} from '../plan/compose-plan.ts';

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
      files: Object.fromEntries(Object.entries(inputs.files).map(([k, v]) => [k, sha256Hex(v)])),
      overlays: inputs.overlays,
    }),
  );
  return `sha256:${h.digest('hex')}`;
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
      } else out.push(`${rel} file ${st.mode & 0o111 ? 'x' : '-'} ${sha256Hex(readFileSync(p))}`);
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
 * The manifest of the one image in an OCI archive, byte for byte, read in place
 * (pipeline/oci-archive.ts; skopeo is only where rpm-ostree is, and would untar it all).
 */
export function ociArchiveManifest(archive: string): string {
  let r: ReturnType<typeof archiveRawManifest>;
  try {
    r = archiveRawManifest(archive);
  } catch (e) {
    if (!(e instanceof PipelineError)) throw e;
    throw new PipelineError(`${archive}: expected one OCI image manifest in index.json: ${e.message}`);
  }
  if (r.mediaType !== 'application/vnd.oci.image.manifest.v1+json')
    throw new PipelineError(
      `${archive}: expected one OCI image manifest in index.json, found ${r.mediaType}`,
    );
  return r.raw;
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
    writeFileSync(plan.previousManifest.path, ociArchiveManifest(plan.previousManifest.archive));
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
  // The version and commit the composed image carries (its config's labels), when it was written.
  const labels = existsSync(plan.outputs.archive) ? archiveLabelsInPlace(plan.outputs.archive) : {};
  const version = labels['org.opencontainers.image.version'] ?? labels.version;
  const commit = labels['ostree.commit'];
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
