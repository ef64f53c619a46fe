// A stream's compose, planned: its compose settings (the stream file's `compose:` block over the
// defaults), the options a command derives from them, and per arch the flattened treefile, the
// lockfiles (base, --autolock, overrides), the rpm-ostree plan and its input hash. Reads the
// config directory; runs nothing (`rock-image compose` and `plan --compose` run or print it).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { loadProject, projectPaths } from '../config/index.ts';
import { UsageError } from '../errors.ts';
import {
  type ComposeFlow,
  type ComposeMode,
  type ComposePlan,
  composedArchiveName,
  composeInputHash,
  DEFAULT_BUILDER_IMAGE,
  gatherComposeInputs,
  planCompose,
} from '../exec/rpm-ostree.ts';
import { IMAGE_LOCK_FILE, type ImageLock, parseImageLock, pinnedRef } from '../plan/image-lock.ts';
import {
  autolock,
  type Lockfile,
  parseLockfile,
  parseOverrides,
  serializeLockfile,
} from '../plan/lockfile.ts';
import { type FlattenResult, flattenTreefile, type VarValue } from '../plan/treefile.ts';
import { composeOutputDir } from './compose-paths.ts';
import type { Context } from './types.ts';

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

/** The image lock of the project; none yet is an empty lock. */
export function readImageLock(root: string): ImageLock {
  const p = join(root, IMAGE_LOCK_FILE);
  return existsSync(p) ? parseImageLock(readFileSync(p, 'utf8'), IMAGE_LOCK_FILE) : { images: {} };
}

export function composeOptions(
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
