import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import PQueue from 'p-queue';
import { makeArtifacts } from '../artifacts/index.ts';
import type { Platform } from '../artifacts/layout.ts';
import { ExitCode, PipelineError, UnavailableError } from '../errors.ts';
import { Buildah } from '../exec/buildah.ts';
import { initramfsNames } from '../exec/initramfs.ts';
import { canRunArch, hostArch, requireTool } from '../exec/tools.ts';
import { sha256File, sha256Hex, writeAtomic } from '../files.ts';
import { lintImage, lintInitramfs } from '../lint/image.ts';
import type { ArchPlan, BuildPlan } from '../plan/build-plan.ts';
import { addBuild, type BuildMeta, type BuildsJson, readMeta, updateBuilds, writeMeta } from '../records.ts';
import { artifactRequest } from './artifacts.ts';
import {
  archSteps,
  type BuildOptions,
  buildOptionHelp,
  buildOptionSpec,
  parseBuildOptions,
  prepare,
} from './build-glue.ts';
import { type Command, type Context, intOption } from './types.ts';

export const build: Command = {
  name: 'build',
  summary: 'build the RockNSM image for a stream (every arch), skipping unchanged inputs',
  usage: `
Usage: rock-image build --stream S [options]

Derives the RockNSM sensor image from the stream's base with buildah, for every arch at once,
and writes DIR/builds/<version>/<arch>/{<name>-<version>-ostree.<arch>.ociarchive,meta.json,
Containerfile} and DIR/builds/builds.json. When every arch's input hash equals the previous
build's, nothing is built and the command exits 0. Bases are pulled through buildah's blob
cache in DIR/cache/blobs/<arch>, so the archive carries their gzip layers as pulled and only
the image's own layers are compressed; keep DIR/cache with the storage to keep that.

Options:${buildOptionHelp}
  --force               build even when the inputs are unchanged
  --jobs N              arches built at once (default: number of arches, at most cores)
  --artifacts           then make the stream's disk and PXE artifacts (its artifact list and
                        backend), as 'rock-image artifacts --build DIR' does
  --compression C       with --artifacts: xz (default, the only one publish accepts) or zstd
                        (local previews and tests)
`,
  options: {
    ...buildOptionSpec,
    force: { type: 'boolean' },
    jobs: { type: 'string', int: { min: 1 } },
    artifacts: { type: 'boolean' },
    compression: { type: 'string' },
  },
  async run(ctx, values) {
    const opts = parseBuildOptions(ctx, values);
    ctx.log.attachFile(
      join(
        opts.output,
        'logs',
        `build-${opts.stream}-${new Date(ctx.now()).toISOString().replace(/[:.]/g, '')}.jsonl`,
      ),
    );
    requireTool('buildah');
    requireTool('skopeo');
    const { plan, builds } = await prepare(ctx, opts, false);
    const previous = previousHashes(opts.output, builds);
    const unchanged = plan.arches.every((a) => previous.get(a.arch) === a.inputHash);
    if (unchanged && !values.force) {
      const last = builds.builds[0]!.id;
      ctx.log.info(
        `inputs unchanged since build ${last} (${plan.arches.map((a) => `${a.arch} ${a.inputHash.slice(0, 12)}`).join(', ')}); nothing to build`,
      );
      // An earlier run that built the image but not its artifacts is finished now (re-runs converge).
      if (values.artifacts) {
        const req = artifactRequest(ctx, {
          build: opts.output,
          version: last,
          compression: values.compression,
        });
        if (!artifactsPresent(opts.output, last, req.arches, req.platforms)) await makeArtifacts(ctx, req);
      }
      writeOutputs(ctx, { version: last, skipped: 'true', 'build-dir': join(opts.output, 'builds', last) });
      return ExitCode.ok;
    }
    for (const a of plan.arches) {
      if (!canRunArch(a.arch) && /^RUN /m.test(a.containerfile)) {
        throw new UnavailableError(
          `building ${a.arch} on ${hostArch()} runs RUN steps through qemu-user, which is not registered with binfmt_misc: run 'rock-image doctor --install cross-arch'`,
        );
      }
    }
    const jobs =
      intOption(values, 'jobs') !== undefined
        ? intOption(values, 'jobs')!
        : Math.min(plan.arches.length, Math.max(1, ctx.cores));
    const queue = new PQueue({ concurrency: jobs });
    const buildah = new Buildah(ctx.run, opts.storage);
    ctx.log.info(
      `building ${plan.name} ${plan.version} (${plan.stream}) for ${plan.arches.map((a) => a.arch).join(', ')}, ${jobs} at a time`,
    );
    const results = await Promise.all(
      plan.arches.map((a) => queue.add(() => buildArch(ctx, buildah, plan, a, opts))),
    );
    recordBuild(
      opts.output,
      plan.version,
      plan.arches.map((a) => a.arch),
      ctx.now(),
    );
    for (const r of results)
      ctx.log.info(`${r.arch}: ${r.digest} (${(r.size / 1048576).toFixed(1)} MiB) -> ${r.archive}`);
    if (values.artifacts)
      await makeArtifacts(
        ctx,
        artifactRequest(ctx, { build: opts.output, version: plan.version, compression: values.compression }),
      );
    writeOutputs(ctx, {
      version: plan.version,
      skipped: 'false',
      'build-dir': join(opts.output, 'builds', plan.version),
    });
    return ExitCode.ok;
  },
};

const platformImage: Record<Platform, string> = {
  metal: 'metal',
  metal4k: 'metal4k',
  qemu: 'qemu',
  pxe: 'live-kernel',
  iso: 'live-iso',
};

/** Whether every arch's meta.json already lists the artifacts of these platforms. */
function artifactsPresent(output: string, version: string, arches: string[], platforms: Platform[]): boolean {
  return arches.every((arch) => {
    const meta = readMeta(join(output, 'builds'), version, arch);
    return meta !== undefined && platforms.every((p) => platformImage[p] in meta.images);
  });
}

/** Input hashes of the newest build, per arch. */
function previousHashes(output: string, builds: BuildsJson): Map<string, string> {
  const out = new Map<string, string>();
  const last = builds.builds[0];
  if (!last) return out;
  for (const arch of last.arches) {
    const hash = readMeta(join(output, 'builds'), last.id, arch)?.['rocknsm.input-hash'];
    if (hash !== undefined) out.set(arch, hash);
  }
  return out;
}

/** Writes the build context for one arch: overlay files copied, generated files written. */
export function writeContext(dir: string, a: ArchPlan, timestamp: number): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of a.context) {
    const p = join(dir, f.path);
    mkdirSync(dirname(p), { recursive: true });
    if (f.type === 'dir') mkdirSync(p, { recursive: true });
    else if (f.type === 'symlink') symlinkSync(f.target!, p);
    else if (f.content !== undefined) writeFileSync(p, f.content);
    else copyFileSync(f.source!, p);
    if (f.type !== 'symlink') chmodSync(p, f.mode);
  }
  // Fixed mtimes keep buildah's layer cache valid across runs (content decides, not the clock).
  for (const f of a.context) if (f.type !== 'symlink') utimesSync(join(dir, f.path), timestamp, timestamp);
  writeFileSync(join(dir, 'Containerfile'), a.containerfile);
}

async function buildArch(ctx: Context, buildah: Buildah, plan: BuildPlan, a: ArchPlan, opts: BuildOptions) {
  // The steps `rock-image plan` prints (build-glue.ts archSteps).
  const steps = archSteps(opts, plan, a);
  const outDir = dirname(steps.archive.final);
  const context = steps.context;
  await ctx.log.step('write build context', async () => writeContext(context, a, plan.timestamp), a.arch);
  await ctx.log.step('buildah build', () => buildah.build(steps.build.args, a.arch), a.arch);
  const image = await buildah.inspect(a.tag);
  if (!image) throw new PipelineError(`built image ${a.tag} not found in storage`);
  await ctx.log.step(
    'lint image',
    async () => {
      const mounted = await buildah.mount(a.tag);
      try {
        const findings = lintImage(mounted.root, image.labels, a, plan);
        if (a.regeneratesInitramfs) {
          const initramfs = `/usr/lib/modules/${a.base.kernels[0]}/initramfs.img`;
          const names = await initramfsNames(ctx.run, `${mounted.root}${initramfs}`, a.arch);
          findings.push(...lintInitramfs(names, a, initramfs));
        }
        for (const f of findings)
          ctx.log.error(`[${a.arch}] lint ${f.check}: ${f.path ? `${f.path}: ` : ''}${f.message}`);
        if (findings.length)
          throw new PipelineError(`${a.arch} image failed ${findings.length} lint check(s)`);
      } finally {
        await mounted.release();
      }
    },
    a.arch,
  );
  const file = basename(steps.archive.final);
  mkdirSync(outDir, { recursive: true });
  const digest = await ctx.log.step(
    'write OCI archive',
    async () => {
      const tmp = steps.archive.args.path;
      rmSync(tmp, { force: true });
      const d = await buildah.pushArchive(steps.archive.args);
      renameSync(tmp, steps.archive.final);
      return d;
    },
    a.arch,
  );
  const size = statSync(join(outDir, file)).size;
  const sha256 = await sha256File(join(outDir, file));
  // Profile configs beside the image (arch-independent; each arch's meta.json lists them).
  const ignition: Record<string, { path: string; sha256: string; size: number; 'skip-compression': true }> =
    {};
  for (const [profile, text] of Object.entries(plan.ignition)) {
    const name = `${plan.name}-${plan.version}-${profile}.ign`;
    writeAtomic(join(outDir, name), text);
    ignition[`ignition-${profile}`] = {
      path: name,
      sha256: sha256Hex(text),
      size: Buffer.byteLength(text),
      'skip-compression': true,
    };
  }
  const meta: BuildMeta = {
    name: plan.name,
    buildid: plan.version,
    'ostree-version': plan.version,
    'ostree-timestamp': image.created,
    'coreos-assembler.basearch': a.arch,
    'coreos-assembler.build-timestamp': new Date(ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    images: { ostree: { path: file, sha256, size, 'skip-compression': true }, ...ignition },
    'base-oscontainer': {
      image: a.base.ref,
      digest: a.base.digest,
      ...(a.base.indexDigest ? { 'manifest-list-digest': a.base.indexDigest } : {}),
      tags:
        a.base.ref.startsWith('docker://') && !a.base.ref.includes('@')
          ? [a.base.ref.slice(a.base.ref.lastIndexOf(':') + 1)]
          : [],
    },
    'rocknsm.stream': plan.stream,
    'rocknsm.input-hash': a.inputHash,
    'rocknsm.image-digest': digest,
    'rocknsm.image-config': image.id,
    'rocknsm.labels': a.labels,
    'rocknsm.containerfile': 'Containerfile',
    'rocknsm.signing': plan.signing,
    // The service and agent images the quadlets run: by digest when manifests/image-pins.json pins them.
    'rocknsm.images': plan.images,
  };
  writeFileSync(join(outDir, 'Containerfile'), a.containerfile);
  writeMeta(join(outDir, 'meta.json'), meta);
  return { arch: a.arch, digest, size, archive: join(outDir, file) };
}

/** Adds a build to builds.json (records.ts addBuild: arches already listed are kept), under its lock. */
function recordBuild(output: string, version: string, arches: string[], now: number): void {
  const timestamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  updateBuilds(join(output, 'builds'), (doc) => addBuild(doc, version, arches, timestamp));
}

/** Step outputs for GitHub Actions ($GITHUB_OUTPUT), when running there. */
function writeOutputs(ctx: Context, outputs: Record<string, string>): void {
  const file = ctx.env.GITHUB_OUTPUT;
  if (!file) return;
  writeFileSync(
    file,
    Object.entries(outputs)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
    { flag: 'a' },
  );
}
