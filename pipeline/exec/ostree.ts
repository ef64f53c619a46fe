// ostree: turns an unpacked image tree into a deployment inside a sysroot (the mounted root
// filesystem of a disk image): init-fs, commit into the sysroot's own repo, os-init, deploy.
// Either the host's ostree or the image's own, run in a tool root (toolroot.ts); paths are the
// host's and are translated for the latter.
import type { Runner } from './run.ts';
import type { ToolRoot } from './toolroot.ts';
import { requireTool } from './tools.ts';

export class Ostree {
  private constructor(
    private readonly run: Runner,
    private readonly tag: string | undefined,
    private readonly at: (hostPath: string) => string,
    /** Where the ostree that runs comes from, for logs and errors. */
    readonly origin: 'host' | 'image',
  ) {}

  /** The host's ostree. */
  static host(run: Runner, tag?: string): Ostree {
    requireTool('ostree');
    return new Ostree(run, tag, (p) => p, 'host');
  }

  /** The image's own ostree, in a tool root where every path used is bound. */
  static image(root: ToolRoot, tag?: string): Ostree {
    return new Ostree(root.run, tag, (p) => root.path(p), 'image');
  }

  private ostree(args: string[]) {
    return this.run('ostree', args, { tag: this.tag });
  }

  /** A new repository (`archive`: what is served over HTTP for `ostree pull`). */
  async initRepo(repo: string, mode: 'archive' | 'bare' = 'archive'): Promise<void> {
    await this.ostree(['init', `--repo=${this.at(repo)}`, `--mode=${mode}`]);
  }

  /** A fresh physical sysroot: /ostree/repo (bare), /boot, /ostree/deploy. */
  async initFs(sysroot: string): Promise<void> {
    await this.ostree(['admin', 'init-fs', '--modern', this.at(sysroot)]);
  }

  async configSet(repo: string, key: string, value: string): Promise<void> {
    await this.ostree(['config', `--repo=${this.at(repo)}`, 'set', key, value]);
  }

  /** Commits `tree` on `branch`; returns the commit checksum. */
  async commit(
    repo: string,
    branch: string,
    tree: string,
    meta: { version: string; timestamp: string; subject: string },
  ): Promise<string> {
    const { stdout } = await this.ostree([
      `--repo=${this.at(repo)}`,
      'commit',
      `--branch=${branch}`,
      `--tree=dir=${this.at(tree)}`,
      `--subject=${meta.subject}`,
      `--add-metadata-string=version=${meta.version}`,
      `--timestamp=${meta.timestamp}`,
    ]);
    const checksum = stdout.trim().split('\n').pop() ?? '';
    if (!/^[0-9a-f]{64}$/.test(checksum)) throw new Error(`ostree commit printed '${stdout.trim()}'`);
    return checksum;
  }

  async osInit(sysroot: string, os: string): Promise<void> {
    await this.ostree(['admin', 'os-init', `--sysroot=${this.at(sysroot)}`, os]);
  }

  /** Deploys `ref` for `os` with exactly these kernel arguments (the commit has none of its own). */
  async deploy(sysroot: string, os: string, ref: string, kargs: string[]): Promise<void> {
    await this.ostree([
      'admin',
      'deploy',
      `--sysroot=${this.at(sysroot)}`,
      `--os=${os}`,
      ...kargs.map((k) => `--karg-append=${k}`),
      ref,
    ]);
  }
}
