// ostree: turns an unpacked image tree into a deployment inside a sysroot (the mounted root
// filesystem of a disk image): init-fs, commit into the sysroot's own repo, os-init, deploy.
// Either the host's ostree or the image's own, run in a tool root (toolroot.ts); paths are the
// host's and are translated for the latter.
import type { Runner } from './run.ts';
import type { ToolRoot } from './toolroot.ts';
import { requireTool } from './tools.ts';

/** ostree's arguments, pure (the native backend's plan prints them; the class runs them). */
export const ostreeArgs = {
  initFs: (sysroot: string) => ['admin', 'init-fs', '--modern', sysroot],
  configSet: (repo: string, key: string, value: string) => ['config', `--repo=${repo}`, 'set', key, value],
  commit: (
    repo: string,
    branch: string,
    tree: string,
    meta: { version: string; timestamp: string; subject: string },
  ) => [
    `--repo=${repo}`,
    'commit',
    `--branch=${branch}`,
    `--tree=dir=${tree}`,
    `--subject=${meta.subject}`,
    `--add-metadata-string=version=${meta.version}`,
    `--timestamp=${meta.timestamp}`,
  ],
  osInit: (sysroot: string, os: string) => ['admin', 'os-init', `--sysroot=${sysroot}`, os],
  deploy: (sysroot: string, os: string, ref: string, kargs: string[]) => [
    'admin',
    'deploy',
    `--sysroot=${sysroot}`,
    `--os=${os}`,
    ...kargs.map((k) => `--karg-append=${k}`),
    ref,
  ],
};

/** The checksum `ostree commit` prints (its last line), or undefined. */
export function commitChecksum(stdout: string): string | undefined {
  const checksum = stdout.trim().split('\n').pop() ?? '';
  return /^[0-9a-f]{64}$/.test(checksum) ? checksum : undefined;
}

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
    await this.ostree(ostreeArgs.initFs(this.at(sysroot)));
  }

  async configSet(repo: string, key: string, value: string): Promise<void> {
    await this.ostree(ostreeArgs.configSet(this.at(repo), key, value));
  }

  /** Commits `tree` on `branch`; returns the commit checksum. */
  async commit(
    repo: string,
    branch: string,
    tree: string,
    meta: { version: string; timestamp: string; subject: string },
  ): Promise<string> {
    const { stdout } = await this.ostree(ostreeArgs.commit(this.at(repo), branch, this.at(tree), meta));
    const checksum = commitChecksum(stdout);
    if (!checksum) throw new Error(`ostree commit printed '${stdout.trim()}'`);
    return checksum;
  }

  async osInit(sysroot: string, os: string): Promise<void> {
    await this.ostree(ostreeArgs.osInit(this.at(sysroot), os));
  }

  /** Deploys `ref` for `os` with exactly these kernel arguments (the commit has none of its own). */
  async deploy(sysroot: string, os: string, ref: string, kargs: string[]): Promise<void> {
    await this.ostree(ostreeArgs.deploy(this.at(sysroot), os, ref, kargs));
  }
}
