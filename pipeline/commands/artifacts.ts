// `rock-image artifacts`: disk and PXE artifacts of a finished build (metal raw, qemu qcow2,
// PXE kernel/initramfs/rootfs with iPXE/PXELINUX/GRUB snippets, live ISO where the backend can),
// every arch at once, compressed and recorded in each arch's meta.json.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type ArtifactRequest, artifactJobs, backendModules, makeArtifacts } from '../artifacts/index.ts';
import { type Backend, backends, type Platform, platforms, platformsOfStream } from '../artifacts/layout.ts';
import { nativePlanText } from '../artifacts/native-plan.ts';
import type { Arch } from '../config/index.ts';
import { ExitCode, UsageError } from '../errors.ts';
import type { Compression } from '../exec/compress.ts';
import { metaPath, readBuilds, readMetaFile } from '../records.ts';
import { loadConfig } from './build-glue.ts';
import { archesOption, type Command, type Context, intOption, listOption } from './types.ts';

export const artifactOptionSpec = {
  build: { type: 'string', short: 'b' },
  version: { type: 'string' },
  platform: { type: 'string', short: 'p' },
  arch: { type: 'string', short: 'a', arches: true },
  backend: { type: 'string' },
  compression: { type: 'string' },
  'pxe-base-url': { type: 'string' },
  'ignition-url': { type: 'string' },
  // MiB; XFS needs at least 300.
  'root-size': { type: 'string', int: { min: 300 } },
  jobs: { type: 'string', int: { min: 1 } },
} as const;

export const artifactOptionHelp = `
  -b, --build DIR        build directory of 'rock-image build --output' (required)
  --version V            build to use (default: the newest in DIR/builds/builds.json)
  -p, --platform P[,P]   metal, metal4k, qemu, pxe, iso (default: the stream's artifact list)
  -a, --arch A[,A]       x86_64 and/or aarch64 (default: every arch of the build)
  --backend B            native, bootc or coreos (default: the stream's artifact-backend, native)
  --compression C        disk images: xz (default; coreos-installer reads only raw.xz and
                         4k.raw.xz) or zstd (local previews and tests; publish refuses it)
  --pxe-base-url URL     where PXE clients fetch kernel, initramfs and rootfs ({arch} is replaced;
                         default: <publish.site-url>/prod/streams/<stream>/builds/<version>/{arch})
  --ignition-url URL     Ignition config of PXE boots (default: the build's default profile
                         config beside the PXE files)
  --root-size MiB        root partition size (default: 1.5x the image + 256 MiB, at least 512)
  --jobs N               arches worked on at once (default: cores and free memory allow)`;

/** Turns command-line values and the build's stream config into a complete request. */
export function artifactRequest(ctx: Context, values: Record<string, unknown>): ArtifactRequest {
  if (typeof values.build !== 'string') throw new UsageError('--build DIR is required');
  const output = resolve(ctx.cwd, values.build);
  const buildsFile = join(output, 'builds', 'builds.json');
  if (!existsSync(buildsFile))
    throw new UsageError(
      `${buildsFile} does not exist: run 'rock-image build --output ${values.build}' first`,
    );
  const builds = readBuilds(join(output, 'builds'));
  const version = typeof values.version === 'string' ? values.version : builds.builds[0]?.id;
  const build = builds.builds.find((b) => b.id === version);
  if (!version || !build) throw new UsageError(`no build ${version ?? '(none)'} in ${buildsFile}`);
  const arches = archesOption(values, 'arch') ?? (build.arches as Arch[]);
  for (const a of arches)
    if (!build.arches.includes(a as string))
      throw new UsageError(`build ${version} has no ${a} (it has ${build.arches.join(', ')})`);
  const firstMeta = readMetaFile(metaPath(join(output, 'builds'), version, arches[0]!));
  const config = loadConfig(ctx, firstMeta['rocknsm.stream'] as string);
  const wanted = listOption(values, 'platform') ?? platformsOfStream(config.stream.artifacts);
  for (const p of wanted)
    if (!platforms.includes(p as Platform))
      throw new UsageError(`unknown platform '${p}' (${platforms.join(', ')})`);
  if (wanted.length === 0)
    throw new UsageError(
      `stream ${config.stream.stream} lists no disk or PXE artifacts; name them with --platform`,
    );
  const backend = (values.backend ?? config.stream.artifactBackend) as Backend;
  if (!backends.includes(backend))
    throw new UsageError(`unknown backend '${backend}' (${backends.join(', ')})`);
  const compression = (values.compression ?? 'xz') as Compression;
  if (compression !== 'xz' && compression !== 'zstd')
    throw new UsageError(`--compression must be xz or zstd, not '${compression}'`);
  const site = config.stream.publish.siteUrl;
  const baseUrl =
    typeof values['pxe-base-url'] === 'string'
      ? values['pxe-base-url'].replace(/\/$/, '')
      : site
        ? `${site}/prod/streams/${config.stream.stream}/builds/${version}/{arch}`
        : undefined;
  if (!baseUrl && wanted.includes('pxe'))
    throw new UsageError(`stream ${config.stream.stream} has no publish.site-url: give --pxe-base-url`);
  const rootSize = intOption(values, 'root-size');
  const jobs = intOption(values, 'jobs');
  return {
    output,
    version,
    arches,
    platforms: platforms.filter((p) => wanted.includes(p)),
    backend,
    compression,
    name: config.image.name,
    osname: config.image.osname,
    pxe: {
      baseUrl: baseUrl ?? '',
      ignitionUrl:
        typeof values['ignition-url'] === 'string'
          ? values['ignition-url']
          : `${baseUrl}/${config.image.name}-${version}-default.ign`,
    },
    targetImgref: config.stream.publish.registry
      ? `${config.stream.publish.registry}:${config.stream.stream}`
      : undefined,
    signed: config.stream.publish.trust !== undefined,
    kargs: config.stream.kargs,
    rootSizeMiB: rootSize,
    jobs,
  };
}

/** Every backend's command lines for a build (`rock-image plan --artifacts`). */
export function artifactsPlanText(req: ArtifactRequest): string {
  const out: string[] = [
    `# artifacts of ${req.version}: ${req.platforms.join(', ')}; compression ${req.compression ?? 'xz'}`,
  ];
  for (const b of artifactsPlan(req).backends) {
    out.push('', `## backend ${b.backend}${b.selected ? ' (selected)' : ''}`);
    for (const u of b.refused) out.push(`# ${u}`);
    const backend = backendModules[b.backend];
    for (const job of b.jobs) {
      out.push(`### ${job.arch}`);
      if (backend.plan) out.push(...nativePlanText(backend.plan(job), shellQuote));
      else for (const c of backend.commands(job)) out.push(`$ ${c.map(shellQuote).join(' ')}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** The same as a value (`plan --artifacts --json`): per backend and arch, its steps or command lines. */
export function artifactsPlan(req: ArtifactRequest) {
  return {
    version: req.version,
    platforms: req.platforms,
    compression: req.compression ?? 'xz',
    backends: backends.map((b) => {
      const backend = backendModules[b];
      const ok = req.platforms.filter((p) => backend.supports(p) === true);
      const jobs = artifactJobs({ ...req, platforms: ok });
      return {
        backend: b,
        selected: b === req.backend,
        refused: req.platforms.map((p) => backend.supports(p)).filter((s): s is string => s !== true),
        jobs,
        arches: jobs.map((job) => ({
          arch: job.arch,
          commands: backend.commands(job),
          ...(backend.plan ? backend.plan(job) : {}),
        })),
      };
    }),
  };
}

/**
 * A shell word: bare when safe, in double quotes when its only specials are run-time inputs
 * (`${NAME}`, which a shell would put in), else in single quotes.
 */
const shellQuote = (s: string) => {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  if (/^(?:[A-Za-z0-9_@%+=:,./ -]|\$\{[A-Z][A-Za-z0-9_]*\})+$/.test(s)) return `"${s}"`;
  return `'${s.replace(/'/g, `'\\''`)}'`;
};

export const artifacts: Command = {
  name: 'artifacts',
  summary: 'disk and PXE artifacts of a build: metal raw, qemu qcow2, PXE files (native, bootc, coreos)',
  usage: `
Usage: rock-image artifacts --build DIR [options]

Makes the disk and PXE artifacts of a build for every arch at once and records them in
DIR/builds/<version>/<arch>/meta.json: metal raw (Fedora CoreOS layout, BIOS and UEFI boot on
x86_64, UEFI on aarch64), qemu qcow2, PXE kernel/initramfs/rootfs with iPXE, PXELINUX and GRUB
snippets, and a live ISO when the backend can make one (coreos). Disk images are compressed.
Needs root for the native backend (loop devices and mounts).

Options:${artifactOptionHelp}
  --print-only           print each backend's command lines instead of running
`,
  options: { ...artifactOptionSpec, 'print-only': { type: 'boolean' } },
  async run(ctx, values) {
    const req = artifactRequest(ctx, values);
    if (values['print-only']) {
      ctx.stdout.write(artifactsPlanText(req));
      return ExitCode.ok;
    }
    ctx.log.attachFile(
      join(
        req.output,
        'logs',
        `artifacts-${req.version}-${new Date(ctx.now()).toISOString().replace(/[:.]/g, '')}.jsonl`,
      ),
    );
    const results = await makeArtifacts(ctx, req);
    for (const r of results)
      for (const [key, img] of Object.entries(r.images))
        ctx.log.info(`${key}: ${img.path} (${(img.size / 1048576).toFixed(1)} MiB)`, r.arch);
    ctx.log.event({
      event: 'artifact-stages',
      stages: Object.fromEntries(results.map((r) => [r.arch, r.stages])),
    });
    return ExitCode.ok;
  },
};
