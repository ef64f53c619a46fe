// Shared glue for `build` and `plan`: read config, overlays and the bases, then plan. Reading the
// world happens here; planning is pure (plan/build-plan.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Arch, loadProject, projectPaths, type ResolvedConfig, resolveStream } from '../config/index.ts';
import { indexOverlay } from '../config/overlay-index.ts';
import { DataError, ToolError, UsageError } from '../errors.ts';
import { Buildah, type BuildahBuild, type BuildahPushArchive } from '../exec/buildah.ts';
import { hasExecutable, kernelVersions, listTree, readInRoot, resolveInRoot } from '../exec/rootfs.ts';
import { composedArchiveName } from '../exec/rpm-ostree.ts';
import { checkTransport, resolveDigest } from '../exec/skopeo.ts';
import { type Storage, storageArgs, storageFromDir } from '../exec/storage.ts';
import { writeAtomic } from '../files.ts';
import { type ArchPlan, type BaseFacts, type BuildPlan, ociArch, planBuild } from '../plan/build-plan.ts';
import { type ImageLock, parseImageLock } from '../plan/image-lock.ts';
import { IMAGE_PINS_FILE } from '../plan/image-pins.ts';
import { nextVersion, parseVersion, utcDate } from '../plan/version.ts';
import { type BuildsJson, readBuilds } from '../records.ts';
import { composeOutputDir } from './compose-paths.ts';
import { imageIgnition } from './ignition-glue.ts';
import { archesOption, type Context } from './types.ts';

export interface BuildOptions {
  stream: string;
  arches?: Arch[];
  /** Per-arch base references; '*' applies to every arch. */
  bases: Partial<Record<Arch | '*', string>>;
  output: string;
  /** Where `rock-image compose` wrote this stream's bases (used when base.source is compose). */
  composeDir: string;
  version?: string;
  storage: Storage;
}

export const buildOptionSpec = {
  stream: { type: 'string', short: 's' },
  arch: { type: 'string', short: 'a', arches: true },
  base: { type: 'string', multiple: true },
  output: { type: 'string', short: 'o' },
  'compose-dir': { type: 'string' },
  version: { type: 'string' },
  storage: { type: 'string' },
} as const;

export const buildOptionHelp = `
  -s, --stream S        release stream: a file manifests/streams/S.yaml (required)
  -a, --arch A[,A]      architectures, x86_64 and/or aarch64 (default: the stream's arches)
  --base REF            base image as a containers-image reference (docker://, oci:, oci-archive:,
                        containers-storage:); ARCH=REF sets one arch's base; repeatable.
                        Default: the stream's upstream image (docker://<base.image>:<base.tag>,
                        or @<base.digest> when pinned), which needs the network; for a stream
                        with base.source: compose, the archive 'rock-image compose' wrote:
                        oci-archive:<compose-dir>/<arch>/rocknsm-base-<stream>.<arch>.ociarchive
  --compose-dir DIR     where 'rock-image compose' put the stream's bases
                        (default: <project>/build/compose/<stream>, compose's default output)
  -o, --output DIR      build directory (default: ./out); builds land in DIR/builds/<version>/<arch>/
  --version V           version to build (default: X.YYYYMMDD.S.N from the base and today's date)
  --storage DIR         private container storage under DIR (default: the system's)`;

export function parseBuildOptions(ctx: Context, values: Record<string, unknown>): BuildOptions {
  if (typeof values.stream !== 'string') throw new UsageError('--stream is required');
  const arches = archesOption(values, 'arch');
  const bases: BuildOptions['bases'] = {};
  for (const b of (values.base as string[] | undefined) ?? []) {
    const m = /^(x86_64|aarch64)=(.+)$/.exec(b);
    const ref = m ? m[2]! : b;
    checkTransport(ref);
    bases[(m?.[1] as Arch | undefined) ?? '*'] = ref;
  }
  if (typeof values.version === 'string' && !parseVersion(values.version))
    throw new UsageError(`--version '${values.version}' is not X.YYYYMMDD.S.N`);
  return {
    stream: values.stream,
    arches: arches as Arch[] | undefined,
    bases,
    output: resolve(ctx.cwd, typeof values.output === 'string' ? values.output : 'out'),
    composeDir:
      typeof values['compose-dir'] === 'string'
        ? resolve(ctx.cwd, values['compose-dir'])
        : composeOutputDir(ctx.root, values.stream),
    version: values.version as string | undefined,
    storage: storageFromDir(
      typeof values.storage === 'string' ? resolve(ctx.cwd, values.storage) : undefined,
    ),
  };
}

export function loadConfig(ctx: Context, stream: string): ResolvedConfig {
  return resolveStream(loadProject(projectPaths(ctx.root)), stream, ctx.root);
}

export function baseRefFor(config: ResolvedConfig, opts: BuildOptions, arch: Arch): string {
  const given = opts.bases[arch] ?? opts.bases['*'];
  if (given) return given;
  if (config.stream.baseSource === 'compose') {
    const archive = join(opts.composeDir, arch, composedArchiveName(config.stream.stream, arch));
    if (!existsSync(archive))
      throw new UsageError(
        `stream ${config.stream.stream} builds on its own compose (base.source: compose), but ${archive} does not exist: run 'rock-image compose --stream ${config.stream.stream} --arch ${arch}' first, or give --compose-dir or --base`,
      );
    return `oci-archive:${archive}`;
  }
  const b = config.stream.base;
  return `docker://${b.image}${b.digest ? `@${b.digest}` : `:${b.tag}`}`;
}

/**
 * Where one arch's bases are pulled through buildah's blob cache, so that the archive the build
 * writes reuses their compressed layers (exec/buildah.ts BlobCache). Beside the base probes in
 * DIR/cache; not part of what CI uploads (DIR/builds, DIR/logs).
 */
export const blobCacheDir = (opts: BuildOptions, arch: Arch): string =>
  join(opts.output, 'cache', 'blobs', arch);

interface CachedProbe extends Omit<BaseFacts, 'ref' | 'name' | 'indexDigest'> {}

/**
 * Facts about one arch's base: digest (skopeo, no pull), then the pulled image's files. The
 * probe is cached per digest under DIR/cache, so an unchanged rebuild needs no pull.
 */
export async function baseFacts(
  ctx: Context,
  buildah: Buildah,
  ref: string,
  arch: Arch,
  opts: BuildOptions,
  pull: boolean,
): Promise<BaseFacts> {
  const resolved = await resolveDigest(ctx.run, ref, ociArch[arch], opts.storage);
  const name = ref.startsWith('docker://')
    ? ref.slice(9).replace(/[@:][^/]*$/, '')
    : 'localhost/rocknsm-base';
  const cacheFile = join(opts.output, 'cache', 'base', `${resolved.digest.replace(':', '-')}.json`);
  const local = `${name}@${resolved.digest}`;
  let present = await buildah.inspect(local);
  if (!present && (pull || !existsSync(cacheFile))) {
    await ctx.log.step(
      `pull base ${ref}`,
      async () => {
        const id = await buildah.pull(
          resolved.indexDigest && ref.startsWith('docker://')
            ? `docker://${name}@${resolved.indexDigest}`
            : ref,
          ociArch[arch],
          arch,
          blobCacheDir(opts, arch),
        );
        await buildah.tag(id, `${name}:rocknsm-base-${arch}-${resolved.digest.slice(7, 19)}`);
      },
      arch,
    );
    present = await buildah.inspect(local);
    if (!present)
      throw new ToolError(`pulled ${ref} but found no image with digest ${resolved.digest} in storage`);
  }
  if (present && present.architecture !== ociArch[arch]) {
    throw new UsageError(
      `base ${ref} is ${present.os}/${present.architecture}, not linux/${ociArch[arch]} (give each arch its base with --base ${arch}=REF)`,
    );
  }
  let probe: CachedProbe;
  if (existsSync(cacheFile)) probe = JSON.parse(readFileSync(cacheFile, 'utf8'));
  else {
    const mounted = await buildah.mount(local);
    try {
      const root = mounted.root;
      const osRelease = readInRoot(root, '/etc/os-release') ?? readInRoot(root, '/usr/lib/os-release');
      if (!osRelease) throw new DataError(`base ${ref} has no /etc/os-release or /usr/lib/os-release`);
      const etc = resolveInRoot(root, '/etc/os-release');
      probe = {
        digest: resolved.digest,
        created: present!.created,
        labels: present!.labels,
        osRelease,
        etcOsReleaseIsFile: Boolean(etc && !etc.endsWith('/usr/lib/os-release')),
        kernels: kernelVersions(root),
        has: {
          dracut: hasExecutable(root, 'dracut'),
          bootc: hasExecutable(root, 'bootc'),
          dnf: hasExecutable(root, 'dnf'),
          rpmOstree: hasExecutable(root, 'rpm-ostree'),
        },
        varEntries: listTree(root, '/var'),
      };
    } finally {
      await mounted.release();
    }
    writeAtomic(cacheFile, `${JSON.stringify(probe, null, 2)}\n`);
  }
  return { ...probe, ref, name, indexDigest: resolved.indexDigest };
}

/** DIR/builds/builds.json of a build directory DIR (checked; empty when there is none). */
export const readBuildsJson = (output: string): BuildsJson => readBuilds(join(output, 'builds'));

/** Reads the world and plans a build of every requested arch. */
export async function prepare(
  ctx: Context,
  opts: BuildOptions,
  pull: boolean,
): Promise<{ config: ResolvedConfig; plan: BuildPlan; builds: BuildsJson }> {
  const config = loadConfig(ctx, opts.stream);
  // Read first: a broken pin file stops the build before anything is pulled or written.
  const pins = readImagePins(ctx.root);
  const arches = opts.arches ?? config.stream.arches;
  const paths = projectPaths(ctx.root);
  const overlays = config.image.overlays.map((o) => indexOverlay(o, join(paths.overlays, o)));
  const templates: Record<string, string> = {};
  for (const o of overlays) {
    for (const e of o.entries)
      if (e.type === 'file' && e.path.endsWith('.in'))
        templates[`${o.name}/${e.path}`] = readFileSync(join(o.dir, e.path), 'utf8');
  }
  const buildah = new Buildah(ctx.run, opts.storage);
  const bases: Partial<Record<Arch, BaseFacts>> = {};
  await ctx.log.step('resolve bases', async () => {
    for (const arch of arches)
      bases[arch] = await baseFacts(ctx, buildah, baseRefFor(config, opts, arch), arch, opts, pull);
  });
  const releasevers = [
    ...new Set(arches.map((a) => Object.fromEntries(parseOsReleasePairs(bases[a]!.osRelease)).VERSION_ID)),
  ];
  if (releasevers.length !== 1 || !/^\d+$/.test(releasevers[0] ?? '')) {
    throw new DataError(`bases disagree on, or lack, a numeric VERSION_ID: ${releasevers.join(', ')}`);
  }
  const builds = readBuildsJson(opts.output);
  const version =
    opts.version ??
    nextVersion(
      Number(releasevers[0]),
      utcDate(ctx.now()),
      config.stream.streamNumber,
      builds.builds.map((b) => b.id),
    );
  const epoch = ctx.env.SOURCE_DATE_EPOCH;
  const timestamp =
    epoch && /^\d+$/.test(epoch) ? Number(epoch) : Math.floor(Date.parse(bases[arches[0]!]!.created) / 1000);
  const plan = planBuild({
    config,
    arches,
    overlays,
    templates,
    containerfileTemplate: readFileSync(join(paths.containerfiles, 'rocknsm.Containerfile'), 'utf8'),
    bases,
    version,
    revision: await gitRevision(ctx),
    timestamp,
    ...imageIgnition(ctx.root),
    pins,
  });
  // Shipped without pins (no require-pins): say so, image by image, at the line naming it.
  for (const [key, p] of Object.entries(plan.images))
    if (!p.digest) {
      const s = key.split('/');
      const at = (s[0] === 'service' ? config.services : config.agents).find((x) => x.name === s[1])?.at;
      ctx.log.warn(
        `${key} runs ${p.ref} by tag: not pinned in ${IMAGE_PINS_FILE} ('rock-image pin'), not bound to the OS image`,
        at,
      );
    }
  return { config, plan, builds };
}

/** manifests/image-pins.json of the project; none yet is no pins. Read only, offline. */
/**
 * The commands `build` runs for one arch to make its outputs, in order, with typed arguments:
 * `plan` prints this list and `build` runs it, so the printed plan is what runs. Between the two
 * `build` also inspects and lints the image read-only (buildah inspect, from, mount, umount, rm),
 * which the plan does not list.
 */
export interface ArchSteps {
  arch: Arch;
  /** The build context directory, written before the first step. */
  context: string;
  build: { tool: 'buildah'; op: 'build'; args: BuildahBuild; env: Record<string, string> };
  /** Writes the archive to `args.path`, which is renamed to `final` once complete. */
  archive: { tool: 'buildah'; op: 'push-archive'; args: BuildahPushArchive; final: string };
}

export function archSteps(opts: BuildOptions, plan: BuildPlan, a: ArchPlan): ArchSteps {
  const work = join(opts.output, 'work', a.arch);
  const context = join(work, 'context');
  const file = `${plan.name}-${plan.version}-ostree.${a.arch}.ociarchive`;
  const build: BuildahBuild = {
    containerfile: join(context, 'Containerfile'),
    context,
    platform: a.platform,
    tag: a.tag,
    timestamp: plan.timestamp,
  };
  return {
    arch: a.arch,
    context,
    build: { tool: 'buildah', op: 'build', args: build, env: Buildah.buildEnv(build) },
    archive: {
      tool: 'buildah',
      op: 'push-archive',
      args: {
        image: a.tag,
        path: join(work, `${file}.tmp`),
        refName: plan.version,
        digestFile: join(work, 'digest'),
        blobCache: blobCacheDir(opts, a.arch),
      },
      final: join(opts.output, 'builds', plan.version, a.arch, file),
    },
  };
}

/** A step's whole command line, as the runner runs and logs it. */
export function stepArgv(storage: Storage, step: ArchSteps['build'] | ArchSteps['archive']): string[] {
  const args = step.op === 'build' ? Buildah.buildArgs(step.args) : Buildah.pushArchiveArgs(step.args);
  return [step.tool, ...storageArgs(storage), ...args];
}

export function readImagePins(root: string): ImageLock {
  const p = join(root, IMAGE_PINS_FILE);
  return existsSync(p) ? parseImageLock(readFileSync(p, 'utf8'), IMAGE_PINS_FILE) : { images: {} };
}

function parseOsReleasePairs(text: string): [string, string][] {
  return text
    .split('\n')
    .map((l) => /^([A-Z0-9_]+)="?([^"]*)"?$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, m[2]!]);
}

async function gitRevision(ctx: Context): Promise<string> {
  if (ctx.env.GITHUB_SHA) return ctx.env.GITHUB_SHA;
  const r = await ctx.run('git', ['-C', ctx.root, 'rev-parse', 'HEAD'], { allowFailure: true });
  return r.exitCode === 0 ? r.stdout.trim() : 'unknown';
}
