// buildah: pull bases, build from the rendered Containerfile, mount images for inspection, and
// write OCI archives. Builds use chroot isolation (works without systemd or a cgroup manager)
// and a fixed --timestamp so the same inputs give the same digest.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from './run.ts';
import { type Storage, storageArgs } from './storage.ts';
import { requireTool } from './tools.ts';

export interface BuildahImage {
  id: string;
  digest: string;
  architecture: string;
  os: string;
  created: string;
  labels: Record<string, string>;
}

/** `buildah build` of a rendered Containerfile (Buildah.buildArgs says how). */
export interface BuildahBuild {
  containerfile: string;
  context: string;
  platform: string;
  tag: string;
  timestamp: number;
}

/** `buildah push` of a local image into an OCI archive, its digest written to `digestFile`. */
export interface BuildahPushArchive {
  image: string;
  path: string;
  /** The reference name inside the archive (the version). */
  refName: string;
  digestFile: string;
  /**
   * buildah's blob cache (BlobCache below) that the base was pulled through: each base layer
   * it noted is written as the base's own compressed blob instead of being compressed again.
   * Optional; a layer without a note (or a missing directory) is compressed as before.
   */
  blobCache?: string;
}

/**
 * buildah's (hidden) `--blob-cache DIR` of pull and push, from containers/image pkg/blobcache
 * (v5.23.0 in Debian's buildah 1.28.2; unchanged in spirit up to today's main). A pull through
 * it keeps each gzip layer blob as it came, decompresses a second copy and notes the pair:
 * `sha256:<uncompressed>.compressed` holds the compressed digest (pkg/blobcache/dest.go:112).
 * A push through it with gzip reports, for every storage layer with such a note and the blob
 * beside it, the compressed blob instead of the uncompressed one (pkg/blobcache/src.go:135-175),
 * and the copy keeps an already-compressed blob as it is (copy/compression.go:139). So the
 * archive carries the base's layers byte for byte, and only the image's own layers are
 * compressed. The push reads only the notes and the compressed blobs, so the decompressed
 * copies are dropped right after the pull (BlobCache.prune): they would double the cache's size.
 */
export const BlobCache = {
  args: (dir: string | undefined): string[] => (dir ? ['--blob-cache', dir] : []),
  /** Removes the decompressed copies a pull left (each file with a `.compressed` note beside it). */
  prune(dir: string): void {
    if (!existsSync(dir)) return;
    for (const f of readdirSync(dir))
      if (f.endsWith('.compressed')) rmSync(join(dir, f.slice(0, -'.compressed'.length)), { force: true });
  },
};

export class Buildah {
  readonly global: string[];
  constructor(
    private readonly run: Runner,
    storage: Storage,
  ) {
    requireTool('buildah');
    this.global = storageArgs(storage);
  }

  private exec(args: string[], tag?: string) {
    return this.run('buildah', [...this.global, ...args], { tag });
  }

  /**
   * Pulls `ref` for the arch into storage and returns the image ID; with `blobCache`, through
   * buildah's blob cache in that directory (BlobCache), pruned afterwards.
   */
  async pull(ref: string, ociArch: string, tag?: string, blobCache?: string): Promise<string> {
    if (blobCache) mkdirSync(blobCache, { recursive: true });
    const { stdout } = await this.exec(
      ['pull', '--quiet', ...BlobCache.args(blobCache), '--arch', ociArch, '--os', 'linux', ref],
      tag,
    );
    if (blobCache) BlobCache.prune(blobCache);
    return stdout.trim().split('\n').pop()!;
  }

  async tag(image: string, name: string): Promise<void> {
    await this.exec(['tag', image, name]);
  }

  /** Inspects a local image; undefined when it is not in storage. */
  async inspect(image: string): Promise<BuildahImage | undefined> {
    const r = await this.run('buildah', [...this.global, 'inspect', '--type', 'image', image], {
      allowFailure: true,
    });
    if (r.exitCode !== 0) return undefined;
    const j = JSON.parse(r.stdout);
    return {
      id: j.FromImageID,
      digest: j.FromImageDigest,
      architecture: j.OCIv1?.architecture,
      os: j.OCIv1?.os,
      created: j.OCIv1?.created,
      labels: j.OCIv1?.config?.Labels ?? {},
    };
  }

  static buildArgs(opts: BuildahBuild): string[] {
    return [
      'build',
      '--isolation',
      'chroot',
      '--layers',
      '--pull=never',
      '--platform',
      opts.platform,
      '--timestamp',
      String(opts.timestamp),
      '--tag',
      opts.tag,
      '--file',
      opts.containerfile,
      opts.context,
    ];
  }

  /** The environment a build runs with: SOURCE_DATE_EPOCH as the fixed timestamp. */
  static buildEnv(opts: BuildahBuild): Record<string, string> {
    return { SOURCE_DATE_EPOCH: String(opts.timestamp) };
  }

  async build(opts: BuildahBuild, tag?: string): Promise<void> {
    await this.run('buildah', [...this.global, ...Buildah.buildArgs(opts)], {
      tag,
      stream: true,
      env: Buildah.buildEnv(opts),
    });
  }

  static pushArchiveArgs(opts: BuildahPushArchive): string[] {
    return [
      'push',
      '--quiet',
      '--digestfile',
      opts.digestFile,
      ...BlobCache.args(opts.blobCache),
      opts.image,
      `oci-archive:${opts.path}:${opts.refName}`,
    ];
  }

  /** Writes the image as an OCI archive and returns its manifest digest. */
  async pushArchive(opts: BuildahPushArchive): Promise<string> {
    await this.exec(Buildah.pushArchiveArgs(opts));
    return readFileSync(opts.digestFile, 'utf8').trim();
  }

  /** Mounts an image read-only for inspection; call the returned function to release it. */
  async mount(image: string): Promise<{ root: string; release: () => Promise<void> }> {
    const ctr = (await this.exec(['from', '--pull=never', '--quiet', image])).stdout
      .trim()
      .split('\n')
      .pop()!;
    try {
      const root = (await this.exec(['mount', ctr])).stdout.trim();
      return {
        root,
        release: async () => {
          await this.run('buildah', [...this.global, 'umount', ctr], { allowFailure: true });
          await this.run('buildah', [...this.global, 'rm', ctr], { allowFailure: true });
        },
      };
    } catch (err) {
      await this.run('buildah', [...this.global, 'rm', ctr], { allowFailure: true });
      throw err;
    }
  }
}
