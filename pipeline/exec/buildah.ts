// buildah: pull bases, build from the rendered Containerfile, mount images for inspection, and
// write OCI archives. Builds use chroot isolation (works without systemd or a cgroup manager)
// and a fixed --timestamp so the same inputs give the same digest.
import { readFileSync } from 'node:fs';
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
}

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

  /** Pulls `ref` for the arch into storage and returns the image ID. */
  async pull(ref: string, ociArch: string, tag?: string): Promise<string> {
    const { stdout } = await this.exec(['pull', '--quiet', '--arch', ociArch, '--os', 'linux', ref], tag);
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
