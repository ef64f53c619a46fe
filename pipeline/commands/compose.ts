// `rock-image compose`: composes the RockNSM base OCI archive from manifests/compose with
// rpm-ostree (host or builder container), with lockfiles, autolock and change detection;
// `--print-only` shows the flattened treefile and exact command lines (`--json`: wrapper and treefile),
// `--check-print-only` compares it with rpm-ostree's own; `--diff` compares lockfiles.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { loadProject, projectPaths } from '../config/index.ts';
import { ExitCode, UsageError } from '../errors.ts';
import {
  type ComposeFlow,
  type ComposeMode,
  type ComposePlan,
  composedArchiveName,
  composeInputHash,
  DEFAULT_BUILDER_IMAGE,
  formatPlanCommands,
  gatherComposeInputs,
  planCompose,
  resolveMode,
  runCompose,
} from '../exec/rpm-ostree.ts';
import { tagDigest } from '../exec/skopeo.ts';
import { hostArch } from '../exec/tools.ts';
import { writeAtomic } from '../files.ts';
import {
  IMAGE_LOCK_FILE,
  type ImageLock,
  isPinned,
  parseImageLock,
  pinnedRef,
  serializeImageLock,
} from '../plan/image-lock.ts';
import {
  autolock,
  diffLockfiles,
  formatDiff,
  type Lockfile,
  parseLockfile,
  parseOverrides,
  serializeLockfile,
} from '../plan/lockfile.ts';
import { compareTreefiles, formatDifferences } from '../plan/print-only-compare.ts';
import { type FlattenResult, flattenTreefile, type VarValue } from '../plan/treefile.ts';
import { composeOutputDir } from './compose-paths.ts';
import { archesOption, type Command, type Context } from './types.ts';

/** What a stream says about composing its base (the `compose:` block once the stream schema has it). */
export interface StreamComposeSettings {
  /** Root treefile, relative to the project root. Default manifests/compose/manifest.yaml. */
  treefile: string;
  /** `image` (rpm-ostree compose image) or `tree` (compose tree + container-encapsulate). Default image. */
  flow: ComposeFlow;
  /** Variables set by the wrapper treefile. Default {stream: <name>, prod: true}. */
  variables: Record<string, VarValue>;
  /** Builder image for container mode. Default quay.io/fedora/fedora:41. */
  builderImage: string;
  /** Arch whose lockfile --autolock copies. Default: the stream's first arch. */
  primaryArch: string;
  arches: string[];
  /** Only locked packages may be installed. Default false. */
  strict: boolean;
}

export const DEFAULT_TREEFILE = 'manifests/compose/manifest.yaml';

/** Reads a stream's compose settings; the optional `compose:` mapping overrides the defaults. */
export function streamComposeSettings(root: string, stream: string): StreamComposeSettings {
  const project = loadProject(projectPaths(root));
  const entry = project.streams.get(stream);
  if (!entry) throw new UsageError(`no stream '${stream}'; known: ${[...project.streams.keys()].join(', ')}`);
  const raw = entry.raw as unknown as { arches: string[]; compose?: Record<string, unknown> };
  const c = raw.compose ?? {};
  return {
    treefile: (c.treefile as string | undefined) ?? DEFAULT_TREEFILE,
    flow: (c.flow as ComposeFlow | undefined) ?? 'image',
    variables: { stream, prod: true, ...((c.variables as Record<string, VarValue> | undefined) ?? {}) },
    builderImage: (c['builder-image'] as string | undefined) ?? DEFAULT_BUILDER_IMAGE,
    primaryArch: (c['primary-arch'] as string | undefined) ?? raw.arches[0]!,
    arches: raw.arches,
    strict: (c.strict as boolean | undefined) ?? false,
  };
}

export interface ComposeOptions {
  stream: string;
  arches: string[];
  settings: StreamComposeSettings;
  /** Root treefile, absolute. */
  treefile: string;
  /** Base output directory (absolute); per arch: <output>/<arch>, work: <output>/work/<arch>. */
  output: string;
  cacheDir: string;
  mode: ComposeMode;
  autolock: boolean;
  podmanArgs?: string[];
  /** Compose even when nothing changed (rpm-ostree --force-nocache). */
  force?: boolean;
  /** Digests of the builder images (manifests/image-locks.json). */
  imageLock: ImageLock;
}

export interface ArchPlan {
  arch: string;
  flattened: FlattenResult;
  plan: ComposePlan;
  inputHash: string;
  /** Generated autolock lockfile to write before running, if any. */
  autolock?: { path: string; lockfile: Lockfile };
  /** Container mode with a builder tag the image lock does not pin: printed, never run. */
  unlockedBuilder?: string;
}

const readIfExists = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

/** Flattens and plans the compose of every requested arch (reads files, runs nothing). */
export function planStreamCompose(o: ComposeOptions): ArchPlan[] {
  const configDir = dirname(o.treefile);
  // The builder runs by digest (and the digest is hashed): a tag moves with every Fedora update.
  const pinned = pinnedRef(o.imageLock, o.settings.builderImage);
  const builderImage = pinned ?? o.settings.builderImage;
  const unlockedBuilder = o.mode === 'container' && !pinned ? o.settings.builderImage : undefined;
  const repoFiles = readdirSync(configDir)
    .filter((f) => f.endsWith('.repo'))
    .sort()
    .map((f) => join(configDir, f));
  // The base lockfiles of every arch the config locks: what an override may replace.
  const baseLocks = new Map(
    readdirSync(configDir)
      .map((f) => /^manifest-lock\.([a-z0-9_]+)\.json$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => {
        const p = join(configDir, m[0]);
        return [m[1]!, parseLockfile(readFileSync(p, 'utf8'), p)] as const;
      }),
  );
  // Undefined (nothing to check against) when none of the arches has a base lockfile.
  const lockedIn = (arches: string[]) =>
    arches.some((a) => baseLocks.has(a))
      ? new Set(arches.flatMap((a) => Object.keys(baseLocks.get(a)?.packages ?? {})))
      : undefined;
  return o.arches.map((arch) => {
    const flattened = flattenTreefile({
      file: o.treefile,
      basearch: arch,
      read: readIfExists,
      variables: o.settings.variables,
    });
    const outputDir = join(o.output, arch);
    const workDir = join(o.output, 'work', arch);
    const lockfiles: string[] = [];
    let auto: ArchPlan['autolock'];
    const base = join(configDir, `manifest-lock.${arch}.json`);
    if (baseLocks.has(arch)) {
      lockfiles.push(base);
    } else if (o.autolock && arch !== o.settings.primaryArch) {
      const p = o.settings.primaryArch;
      const source = [
        join(o.output, p, `manifest-lock.generated.${p}.json`),
        join(configDir, `manifest-lock.${p}.json`),
      ].find(existsSync);
      if (!source)
        throw new UsageError(`--autolock: no lockfile of the primary arch ${p} (compose ${p} first)`);
      const path = join(workDir, `manifest-lock.autolock.${arch}.json`);
      auto = { path, lockfile: autolock(parseLockfile(readFileSync(source, 'utf8'), source)) };
      lockfiles.push(path);
    }
    const overrides: [string, Set<string> | undefined][] = [
      ['manifest-lock.overrides.yaml', lockedIn([...baseLocks.keys()])],
      [`manifest-lock.overrides.${arch}.yaml`, lockedIn([arch])],
    ];
    for (const [name, locked] of overrides) {
      const p = join(configDir, name);
      if (existsSync(p)) {
        parseOverrides(readFileSync(p, 'utf8'), p, locked);
        lockfiles.push(p);
      }
    }
    const plan = planCompose({
      stream: o.stream,
      arch,
      treefile: o.treefile,
      variables: o.settings.variables,
      flattened,
      outputDir,
      workDir,
      cacheDir: o.cacheDir,
      lockfiles,
      repoFiles,
      mode: o.mode,
      flow: o.settings.flow,
      builderImage,
      strict: o.settings.strict,
      labels: { 'io.rocknsm.stream': o.stream, 'io.rocknsm.compose.arch': arch },
      podmanArgs: o.podmanArgs,
      force: o.force,
      // The tree flow hands container-encapsulate the previous archive's layer plan.
      previousBuild:
        o.settings.flow === 'tree' && existsSync(join(outputDir, composedArchiveName(o.stream, arch))),
    });
    // The autolock file does not exist yet when planning: hash its content instead.
    const inputs = gatherComposeInputs({
      ...plan.request,
      lockfiles: lockfiles.filter((l) => l !== auto?.path),
    });
    if (auto) inputs.files[`autolock:${arch}`] = serializeLockfile(auto.lockfile);
    const inputHash = composeInputHash(inputs);
    plan.request.labels['io.rocknsm.compose.inputhash'] = inputHash;
    const withHash = planCompose({ ...plan.request });
    return { arch, flattened, plan: withHash, inputHash, autolock: auto, unlockedBuilder };
  });
}

/** What `rock-image plan --compose` and `compose --print-only` print: flattened treefile and commands per arch. */
export function formatComposePlan(plans: ArchPlan[]): string {
  return plans
    .map(
      (p) =>
        `# ${p.arch}: flattened treefile (rpm-ostree compose tree --print-only)\n` +
        `${JSON.stringify(p.flattened.treefile, null, 2)}\n` +
        `# ${p.arch}: variables ${JSON.stringify(p.flattened.variables)}\n` +
        `# ${p.arch}: input hash ${p.inputHash}\n` +
        `# ${p.arch}: wrapper ${p.plan.wrapper.path}\n${p.plan.wrapper.text}` +
        `# ${p.arch}: commands (${p.plan.request.mode} mode)\n${formatPlanCommands(p.plan)}` +
        (p.unlockedBuilder ? `# ${p.arch}: ${unlockedMessage(p.unlockedBuilder)}\n` : ''),
    )
    .join('\n');
}

/**
 * `--print-only --json`: per arch, the wrapper treefile a compose hands rpm-ostree (its path and
 * content) and the flattened treefile, so `rpm-ostree compose tree --print-only` can be run on
 * the very same wrapper and compared (`--check-print-only`).
 */
export function composePlanJson(plans: ArchPlan[]): string {
  const byArch = Object.fromEntries(
    plans.map((p) => [
      p.arch,
      {
        wrapper: { path: p.plan.wrapper.path, treefile: JSON.parse(p.plan.wrapper.text) as unknown },
        treefile: p.flattened.treefile,
      },
    ]),
  );
  return `${JSON.stringify(byArch, null, 2)}\n`;
}

/**
 * `--check-print-only FILE`: FILE is what `rpm-ostree compose tree --print-only WRAPPER` printed on
 * an `arch` host; every difference from our flattened treefile, with its JSON path.
 */
export function checkPrintOnly(plan: ArchPlan, rpmOstreeOutput: string, file: string): string {
  let theirs: unknown;
  try {
    theirs = JSON.parse(rpmOstreeOutput);
  } catch (err) {
    throw new UsageError(`${file}: not JSON (${(err as Error).message})`);
  }
  const diffs = compareTreefiles(plan.flattened.treefile, theirs);
  return diffs.length
    ? `${plan.arch}: ${diffs.length} difference(s) from rpm-ostree compose tree --print-only (${file}):\n${formatDifferences(diffs)}`
    : '';
}

function unlockedMessage(ref: string): string {
  return `builder image ${ref} is a tag that ${IMAGE_LOCK_FILE} does not pin; a compose refuses to run it until 'rock-image compose --lock-builder' (registry access) records its digest`;
}

/** The image lock of the project; none yet is an empty lock. */
function readImageLock(root: string): ImageLock {
  const p = join(root, IMAGE_LOCK_FILE);
  return existsSync(p) ? parseImageLock(readFileSync(p, 'utf8'), IMAGE_LOCK_FILE) : { images: {} };
}

/** Entry point for `rock-image plan --compose`: the plan text for a stream, never running anything. */
export function composePlanText(
  ctx: Context,
  stream: string,
  opts: { arches?: string[]; mode?: ComposeMode; treefile?: string; output?: string } = {},
): string {
  const settings = streamComposeSettings(ctx.root, stream);
  return formatComposePlan(
    planStreamCompose(composeOptions(ctx, stream, settings, { ...opts, autolock: false })),
  );
}

function composeOptions(
  ctx: Context,
  stream: string,
  settings: StreamComposeSettings,
  o: {
    arches?: string[];
    mode?: ComposeMode;
    treefile?: string;
    output?: string;
    autolock?: boolean;
    force?: boolean;
  },
): ComposeOptions {
  const abs = (p: string, base: string) => (isAbsolute(p) ? p : resolve(base, p));
  return {
    stream,
    arches: o.arches?.length ? o.arches : settings.arches,
    settings,
    treefile: o.treefile ? abs(o.treefile, ctx.cwd) : join(ctx.root, settings.treefile),
    output: o.output ? abs(o.output, ctx.cwd) : composeOutputDir(ctx.root, stream),
    cacheDir: join(ctx.root, 'build', 'cache', 'compose'),
    // Planning without running: show container mode when the host has no rpm-ostree.
    mode: o.mode ?? 'container',
    autolock: o.autolock ?? false,
    podmanArgs: ctx.env.ROCK_IMAGE_PODMAN_ARGS?.split(/\s+/).filter(Boolean),
    force: o.force,
    imageLock: readImageLock(ctx.root),
  };
}

export const compose: Command = {
  name: 'compose',
  summary: 'compose the RockNSM base OCI archive from treefiles with rpm-ostree',
  usage: `
Usage: rock-image compose --stream S [--arch A]... [options]
       rock-image compose --diff OLD.json NEW.json [--json]
       rock-image compose --lock-builder [--stream S] [--builder-image REF]

Flattens manifests/compose (include, arch-include, conditional-include, variables, packages-<arch>)
for each arch, then runs rpm-ostree to produce <output>/<arch>/rocknsm-base-S.<arch>.ociarchive,
the generated lockfile manifest-lock.generated.<arch>.json and compose.json (input hash, version,
commit). Unchanged inputs skip the compose.

Options:
  --stream S           stream from manifests/streams (required unless --diff)
  --arch A             x86_64 or aarch64; repeatable (default: the stream's arches)
  --treefile F         root treefile (default: the stream's, ${DEFAULT_TREEFILE})
  --output DIR         output directory (default: build/compose/<stream>)
  --autolock           an arch without manifest-lock.<arch>.json reuses the primary arch's versions
  --mode M             host (rpm-ostree on this host), container (podman + builder image), or
                       auto (default: host if rpm-ostree is installed, else container)
  --builder-image REF  builder image for container mode (default: the stream's, ${DEFAULT_BUILDER_IMAGE})
  --force              compose even when the input hash is unchanged
  --print-only         print the flattened treefile per arch and the exact command lines; run nothing;
                       with --json: {ARCH: {wrapper: {path, treefile}, treefile}} as JSON
  --check-print-only F compare F, what 'rpm-ostree compose tree --print-only' printed for the
                       wrapper treefile (--print-only --json) on an --arch host, with the
                       flattened treefile; exit 1 listing each difference's JSON path; run nothing
  --diff OLD NEW       package changes between two lockfiles (release notes); --json for JSON
  --lock-builder       resolve the builder image tag of every stream (or of --stream, and
                       --builder-image) to its digest now and write ${IMAGE_LOCK_FILE}; container
                       mode runs only locked builders, by digest

Environment: ROCK_IMAGE_PODMAN_ARGS extra 'podman run' arguments (e.g. '--runtime runc').
Exit 69 when neither rpm-ostree nor podman (with the builder image pullable) is available.
`,
  options: {
    stream: { type: 'string' },
    arch: { type: 'string', multiple: true, arches: true },
    treefile: { type: 'string' },
    output: { type: 'string' },
    autolock: { type: 'boolean' },
    mode: { type: 'string' },
    'builder-image': { type: 'string' },
    force: { type: 'boolean' },
    'print-only': { type: 'boolean' },
    'check-print-only': { type: 'string' },
    diff: { type: 'string' },
    json: { type: 'boolean' },
    'lock-builder': { type: 'boolean' },
  },
  positionals: true,
  async run(ctx, values, positionals) {
    if (typeof values.diff === 'string') {
      if (positionals.length !== 1) throw new UsageError('--diff needs two lockfiles: --diff OLD NEW');
      const [oldPath, newPath] = [resolve(ctx.cwd, values.diff), resolve(ctx.cwd, positionals[0]!)];
      const diff = diffLockfiles(
        parseLockfile(readFileSync(oldPath, 'utf8'), values.diff),
        parseLockfile(readFileSync(newPath, 'utf8'), positionals[0]!),
      );
      ctx.stdout.write(values.json ? `${JSON.stringify(diff, null, 2)}\n` : formatDiff(diff));
      return ExitCode.ok;
    }
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values['lock-builder'])
      return lockBuilders(
        ctx,
        values.stream as string | undefined,
        values['builder-image'] as string | undefined,
      );
    if (typeof values.stream !== 'string') throw new UsageError('--stream is required (see --help)');
    const mode = (values.mode as string | undefined) ?? 'auto';
    if (!['host', 'container', 'auto'].includes(mode))
      throw new UsageError(`--mode must be host, container or auto, not '${mode}'`);
    const arches = archesOption(values, 'arch') ?? [];

    const settings = streamComposeSettings(ctx.root, values.stream);
    if (typeof values['builder-image'] === 'string') settings.builderImage = values['builder-image'];
    const printOnly = Boolean(values['print-only']);
    const planOnly = printOnly || typeof values['check-print-only'] === 'string';
    // Printing never needs the tools; running resolves the mode (exit 69 when nothing can compose).
    const resolved: ComposeMode = planOnly
      ? mode === 'auto'
        ? 'container'
        : (mode as ComposeMode)
      : resolveMode(mode as ComposeMode | 'auto');
    const opts = composeOptions(ctx, values.stream, settings, {
      arches,
      mode: resolved,
      treefile: values.treefile as string | undefined,
      output: values.output as string | undefined,
      autolock: Boolean(values.autolock),
      force: Boolean(values.force),
    });
    if (printOnly) {
      const plans = planStreamCompose(opts);
      ctx.stdout.write(values.json ? composePlanJson(plans) : formatComposePlan(plans));
      return ExitCode.ok;
    }
    if (typeof values['check-print-only'] === 'string') {
      if (opts.arches.length !== 1)
        throw new UsageError('--check-print-only compares one arch: give exactly one --arch');
      const file = values['check-print-only'];
      const [p] = planStreamCompose(opts);
      const report = checkPrintOnly(p!, readFileSync(resolve(ctx.cwd, file), 'utf8'), file);
      if (report) {
        ctx.stdout.write(report);
        return ExitCode.failure;
      }
      ctx.stdout.write(
        `${p!.arch}: the flattened treefile matches rpm-ostree compose tree --print-only (${file})\n`,
      );
      return ExitCode.ok;
    }
    const host = hostArch();
    // Native composes only, like coreos-assembler: primary arch first so --autolock can use it.
    const order = [...opts.arches].sort((a, b) =>
      a === settings.primaryArch ? -1 : b === settings.primaryArch ? 1 : 0,
    );
    for (const arch of order) {
      if (arch !== host)
        throw new UsageError(
          `cannot compose ${arch} on a ${host} host (rpm-ostree composes natively; use a ${arch} runner)`,
        );
      const [p] = planStreamCompose({ ...opts, arches: [arch] });
      if (p!.unlockedBuilder) throw new UsageError(unlockedMessage(p!.unlockedBuilder));
      if (p!.autolock) {
        mkdirSync(dirname(p!.autolock.path), { recursive: true });
        writeFileSync(p!.autolock.path, serializeLockfile(p!.autolock.lockfile));
      }
      const outcome = await ctx.log.step(
        `compose ${values.stream}/${arch}`,
        () => runCompose(ctx.run, p!.plan, p!.inputHash, ctx.now, { force: Boolean(values.force) }),
        arch,
      );
      if (outcome.status === 'unchanged') {
        ctx.log.info(`input hash unchanged (${p!.inputHash}); kept ${outcome.record.archive}`, arch);
      } else {
        // Normalise the generated lockfile to the upstream layout (sorted, two-space JSON).
        const lf = p!.plan.outputs.lockfile;
        if (existsSync(lf)) writeFileSync(lf, serializeLockfile(parseLockfile(readFileSync(lf, 'utf8'), lf)));
        ctx.log.info(`composed ${outcome.record.archive}`, arch);
      }
      ctx.stdout.write(
        `${JSON.stringify({ arch, status: outcome.status, archive: outcome.record.archive, inputHash: p!.inputHash })}\n`,
      );
    }
    return ExitCode.ok;
  },
};

/** `--lock-builder`: the digest each builder tag points at now, written to the image lock. */
async function lockBuilders(ctx: Context, stream?: string, extra?: string): Promise<number> {
  const streams = stream ? [stream] : [...loadProject(projectPaths(ctx.root)).streams.keys()];
  const refs = new Set(streams.map((s) => streamComposeSettings(ctx.root, s).builderImage));
  if (extra) refs.add(extra);
  const lock = readImageLock(ctx.root);
  const day = new Date(ctx.now()).toISOString().slice(0, 10);
  for (const ref of [...refs].sort()) {
    if (isPinned(ref)) continue;
    const digest = await ctx.log.step(`resolve ${ref}`, () => tagDigest(ctx.run, ref));
    const before = lock.images[ref]?.digest;
    lock.images[ref] = { digest, resolved: day };
    ctx.stdout.write(`${ref} ${before && before !== digest ? `${before} -> ` : ''}${digest}\n`);
  }
  const path = join(ctx.root, IMAGE_LOCK_FILE);
  writeAtomic(path, serializeImageLock(lock));
  return ExitCode.ok;
}
