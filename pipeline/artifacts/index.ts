// makeArtifacts: disk and PXE artifacts of a finished build, every arch concurrently (p-queue,
// bounded by cores and memory). A backend makes the files in DIR/work/artifacts/<arch>; they
// are compressed (disk images), moved into DIR/builds/<version>/<arch>/ and recorded in that
// arch's meta.json (written atomically) only when every file of the arch is in place.

import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { basename, join } from 'node:path';
import PQueue from 'p-queue';
import type { KargsEntry } from '../config/index.ts';
import { PipelineError, UsageError } from '../errors.ts';
import { type Compression, compressConsuming, compressFile } from '../exec/compress.ts';
import { mountsUnder } from '../exec/losetup.ts';
import { mountNamespace } from '../exec/mount-namespace.ts';
import type { Runner } from '../exec/run.ts';
import { sha256File } from '../files.ts';
import { renderKargs } from '../plan/render.ts';
import { readMetaFile, updateMeta } from '../records.ts';
import type { ArchJob, ArtifactBackend, BackendContext, Produced } from './backend.ts';
import { bootc } from './bootc.ts';
import { coreos } from './coreos.ts';
import {
  type Arch,
  type ArtifactKind,
  type Backend,
  compressedKinds,
  kargsFromToml,
  type Platform,
  pxeSnippets,
} from './layout.ts';
import { native } from './native.ts';

export const backendModules: Record<Backend, ArtifactBackend> = { native, bootc, coreos };

export interface ArtifactRequest {
  /** The build directory (`rock-image build --output`). */
  output: string;
  version: string;
  arches: Arch[];
  platforms: Platform[];
  backend: Backend;
  /**
   * Compressor of the disk images (metal, metal4k, qemu). Default xz, the only one publishable:
   * coreos-installer asks stream metadata for `metal` `raw.xz` or `4k.raw.xz` and nothing else
   * (coreos-installer src/install.rs:165-180, src/source.rs:267-300 @bee45001), and Fedora CoreOS
   * publishes qemu as `qcow2.xz`. zstd (seconds instead of minutes) is for local previews and
   * tests; `rock-image publish` refuses such disks (publish/site.ts checkBuilds).
   */
  compression?: Compression;
  /** Image name and ostree stateroot (image.yaml `name`, `osname`). */
  name: string;
  osname: string;
  pxe: { baseUrl: string; ignitionUrl: string };
  targetImgref?: string;
  /** The image carries our signature policy (stream publish.trust); default false. */
  signed?: boolean;
  /** The stream's kernel arguments (what the build rendered into kargs.d); default none. */
  kargs?: KargsEntry[];
  rootSizeMiB?: number;
  /** Arches worked on at once; default: cores and free memory (2 GiB per arch) allow. */
  jobs?: number;
}

export interface ImageEntry {
  path: string;
  sha256: string;
  size: number;
  'uncompressed-sha256'?: string;
  'uncompressed-size'?: number;
  'skip-compression'?: boolean;
}

/** meta.json keys (formats.md §4); PXE snippets get keys of their own. */
const metaKey: Record<ArtifactKind, string> = {
  metal: 'metal',
  metal4k: 'metal4k',
  qemu: 'qemu',
  'live-iso': 'live-iso',
  'live-kernel': 'live-kernel',
  'live-initramfs': 'live-initramfs',
  'live-rootfs': 'live-rootfs',
  'pxe-ipxe': 'pxe-ipxe',
  'pxe-pxelinux': 'pxe-pxelinux',
  'pxe-grub': 'pxe-grub',
};

const kindsOf: Record<Platform, ArtifactKind[]> = {
  metal: ['metal'],
  metal4k: ['metal4k'],
  qemu: ['qemu'],
  pxe: ['live-kernel', 'live-initramfs', 'live-rootfs', 'pxe-ipxe', 'pxe-pxelinux', 'pxe-grub'],
  iso: ['live-iso'],
};

/** Compresses a copy of `file` (kept) and reports time and size: `npm run bench` compares xz and zstd. */
export async function compressArtifact(
  run: Runner,
  file: string,
  kind: Compression,
): Promise<{ kind: Compression; seconds: number; size: number; inputSize: number; path: string }> {
  const started = process.hrtime.bigint();
  const path = await compressFile(run, kind, file, { keep: true });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { kind, seconds, size: statSync(path).size, inputSize: statSync(file).size, path };
}

export interface ArchResult {
  arch: Arch;
  images: Record<string, ImageEntry>;
  /** Step name -> milliseconds, for the benchmark. */
  stages: Record<string, number>;
}

/** meta.json key: images key -> the backend that made that file (`native`, `bootc`, `coreos`). */
export const ARTIFACT_BACKENDS = 'rocknsm.artifact-backends';

/**
 * The backends record after a run: `made` (keys of this run) by `backend`, earlier entries kept
 * while their images entry exists; sorted keys.
 */
export function recordBackends(
  old: Record<string, string> | undefined,
  made: string[],
  backend: Backend,
  images: Record<string, unknown>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, b] of Object.entries(old ?? {})) if (images[k] !== undefined) out[k] = b;
  for (const k of made) out[k] = backend;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** Checks the request against the backend before any work; lists every problem. */
export function checkRequest(req: ArtifactRequest): void {
  const backend = backendModules[req.backend];
  const problems: string[] = [];
  for (const p of req.platforms) {
    const ok = backend.supports(p);
    if (ok !== true) problems.push(ok);
  }
  for (const arch of req.arches) {
    const dir = join(req.output, 'builds', req.version, arch);
    if (!existsSync(join(dir, 'meta.json')))
      problems.push(`no build of ${req.version} for ${arch}: ${dir}/meta.json is missing`);
  }
  if (problems.length) throw new UsageError(problems.join('\n'));
}

function archJob(req: ArtifactRequest, arch: Arch): ArchJob {
  const dir = join(req.output, 'builds', req.version, arch);
  const meta = readMetaFile(join(dir, 'meta.json'));
  const ostree = meta.images.ostree?.path;
  if (!ostree || !existsSync(join(dir, ostree)))
    throw new PipelineError(`${dir}/meta.json names no OCI archive (images.ostree) that exists`);
  return {
    arch,
    name: req.name,
    version: req.version,
    osname: req.osname,
    archive: join(dir, ostree),
    work: join(req.output, 'work', 'artifacts', arch),
    platforms: req.platforms,
    created: meta['ostree-timestamp'] ?? new Date(0).toISOString(),
    pxe: {
      baseUrl: req.pxe.baseUrl.replaceAll('{arch}', arch),
      ignitionUrl: req.pxe.ignitionUrl.replaceAll('{arch}', arch),
    },
    targetImgref: req.targetImgref,
    signed: req.signed ?? false,
    imageKargs: streamKargs(req.kargs ?? [], arch),
    rootSizeMiB: req.rootSizeMiB,
  };
}

/**
 * The kernel arguments of the kargs.d file the build bakes into the image for `arch`
 * (plan/build-context.ts: renderKargs into /usr/lib/bootc/kargs.d/10-rocknsm.toml), read back as
 * bootc reads it, without unpacking the image.
 */
export function streamKargs(entries: KargsEntry[], arch: Arch): string[] {
  const text = renderKargs(entries, arch);
  return text ? kargsFromToml([{ name: '10-rocknsm.toml', text }], arch) : [];
}

/** The jobs of a request, for `plan --artifacts` (reads only meta.json). */
export function artifactJobs(req: ArtifactRequest): ArchJob[] {
  return req.arches.map((a) => archJob(req, a));
}

/** Waits for every promise to settle, then throws the first failure or returns the values. */
async function allSettledOrThrow<T extends readonly unknown[]>(
  promises: readonly [...{ [K in keyof T]: Promise<T[K]> }],
): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

async function makeArch(ctx: BackendContext, req: ArtifactRequest, arch: Arch): Promise<ArchResult> {
  const job = archJob(req, arch);
  try {
    return await makeArchIn(ctx, req, job);
  } catch (err) {
    // Nothing of a failed arch stays: its work area goes, unless something is still mounted
    // there (then it is left for inspection rather than deleted through the mount).
    const left = mountsUnder(job.work);
    if (left.length) ctx.log.error(`${arch}: still mounted, left in place: ${left.join(', ')}`);
    else rmSync(job.work, { recursive: true, force: true });
    throw err;
  }
}

async function makeArchIn(ctx: BackendContext, req: ArtifactRequest, job: ArchJob): Promise<ArchResult> {
  const arch = job.arch;
  const backend = backendModules[req.backend];
  const stages: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      stages[name] = Date.now() - t;
    }
  };
  const compression = req.compression ?? 'xz';
  const produced: Produced[] = await timed(`${req.backend} backend`, () => backend.make(ctx, job));
  if (req.platforms.includes('pxe') && !produced.some((p) => p.kind === 'pxe-ipxe')) {
    for (const s of pxeSnippets({ name: req.name, version: req.version, arch, ...job.pxe, extra: [] })) {
      writeFileSync(join(job.work, s.file), s.text);
      produced.push({ kind: s.kind, path: join(job.work, s.file) });
    }
  }
  const images: Record<string, ImageEntry> = {};
  const finals: { from: string; to: string }[] = [];
  const outDir = join(req.output, 'builds', req.version, arch);
  // The disk images are compressed one after the other, each read once (hashed on the way) into
  // its compressor and given back to the filesystem as it is read (compressConsuming): -T0
  // keeps every core busy either way, and this way the compression stage never takes more disk
  // than the two images themselves (README, "Speed at real size").
  // Every one runs to its end before a failure is raised (nothing writes into a removed work area).
  let compressing: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const turn = compressing.then(fn);
    compressing = turn.catch(() => undefined);
    return turn;
  };
  const entries = await allSettledOrThrow(
    produced.map(async (p): Promise<ImageEntry> => {
      const size = statSync(p.path).size;
      if (compressedKinds.includes(p.kind)) {
        const packed = await inTurn(() =>
          timed(`compress ${p.kind} (${compression})`, () =>
            ctx.log.step(
              `compress ${basename(p.path)}`,
              () => compressConsuming(ctx.run, compression, p.path, { tag: arch }),
              arch,
            ),
          ),
        );
        finals.push({ from: packed.path, to: join(outDir, basename(packed.path)) });
        return {
          path: basename(packed.path),
          sha256: await sha256File(packed.path),
          size: statSync(packed.path).size,
          'uncompressed-sha256': packed.sha256,
          'uncompressed-size': size,
        };
      }
      finals.push({ from: p.path, to: join(outDir, basename(p.path)) });
      return { path: basename(p.path), sha256: await sha256File(p.path), size, 'skip-compression': true };
    }),
  );
  // In the backend's order, whatever finished first.
  produced.forEach((p, i) => {
    images[metaKey[p.kind]] = entries[i]!;
  });
  // Every file is complete: move them in, then record them (a crash before this leaves the
  // build as it was; one after leaves files that meta.json does not list yet).
  for (const f of finals) renameSync(f.from, f.to);
  // Read, changed and written under the record's lock (records.ts updateMeta).
  await updateMeta(join(outDir, 'meta.json'), (meta) => {
    // Entries of the platforms made now are replaced; a file of an earlier run under another
    // name (the other compression) goes with its entry.
    for (const kind of req.platforms.flatMap((p) => kindsOf[p])) {
      const old = meta.images[metaKey[kind]];
      if (old?.path && old.path !== images[metaKey[kind]]?.path)
        rmSync(join(outDir, old.path), { force: true });
      delete meta.images[metaKey[kind]];
    }
    Object.assign(meta.images, images);
    meta['rocknsm.artifacts'] = {
      backend: req.backend,
      compression,
      platforms: req.platforms,
    };
    // Which backend made each images entry, kept across runs of different platforms: publish
    // refuses what the native backend made unless the stream allows it (publish/site.ts).
    meta[ARTIFACT_BACKENDS] = recordBackends(
      meta[ARTIFACT_BACKENDS],
      Object.keys(images),
      req.backend,
      meta.images,
    );
    return meta;
  });
  rmSync(job.work, { recursive: true, force: true });
  return { arch, images, stages };
}

/** Makes the requested artifacts for every arch of a build, concurrently. */
export async function makeArtifacts(
  ctx: BackendContext & { cores: number },
  req: ArtifactRequest,
): Promise<ArchResult[]> {
  checkRequest(req);
  const byMemory = Math.max(1, Math.floor(freemem() / (2 * 1024 ** 3)));
  const jobs = req.jobs ?? Math.max(1, Math.min(req.arches.length, ctx.cores, byMemory));
  const queue = new PQueue({ concurrency: jobs });
  ctx.log.info(
    `${req.backend} backend: ${req.platforms.join(', ')} for ${req.arches.join(', ')} of ${req.version}, ${jobs} at a time, ${req.compression ?? 'xz'}, mount namespace ${mountNamespace()}`,
  );
  // Every arch runs to its end (and releases its loop devices and mounts) before a failure is raised.
  return allSettledOrThrow(req.arches.map((a) => queue.add(() => makeArch(ctx, req, a))));
}
