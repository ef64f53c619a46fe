// ostree: turns an unpacked image tree into a deployment inside a sysroot (the mounted root
// filesystem of a disk image): init-fs, commit into the sysroot's own repo, os-init, deploy.
import type { Runner } from './run.ts';
import { requireTool } from './tools.ts';

export class Ostree {
  constructor(
    private readonly run: Runner,
    private readonly tag?: string,
  ) {
    requireTool('ostree');
  }

  private ostree(args: string[]) {
    return this.run('ostree', args, { tag: this.tag });
  }

  /** A fresh physical sysroot: /ostree/repo (bare), /boot, /ostree/deploy. */
  async initFs(sysroot: string): Promise<void> {
    await this.ostree(['admin', 'init-fs', '--modern', sysroot]);
  }

  async configSet(repo: string, key: string, value: string): Promise<void> {
    await this.ostree(['config', `--repo=${repo}`, 'set', key, value]);
  }

  /** Commits `tree` on `branch`; returns the commit checksum. */
  async commit(
    repo: string,
    branch: string,
    tree: string,
    meta: { version: string; timestamp: string; subject: string },
  ): Promise<string> {
    const { stdout } = await this.ostree([
      `--repo=${repo}`,
      'commit',
      `--branch=${branch}`,
      `--tree=dir=${tree}`,
      `--subject=${meta.subject}`,
      `--add-metadata-string=version=${meta.version}`,
      `--timestamp=${meta.timestamp}`,
    ]);
    const checksum = stdout.trim().split('\n').pop() ?? '';
    if (!/^[0-9a-f]{64}$/.test(checksum)) throw new Error(`ostree commit printed '${stdout.trim()}'`);
    return checksum;
  }

  async osInit(sysroot: string, os: string): Promise<void> {
    await this.ostree(['admin', 'os-init', `--sysroot=${sysroot}`, os]);
  }

  /** Deploys `ref` for `os` with exactly these kernel arguments (the commit has none of its own). */
  async deploy(sysroot: string, os: string, ref: string, kargs: string[]): Promise<void> {
    await this.ostree([
      'admin',
      'deploy',
      `--sysroot=${sysroot}`,
      `--os=${os}`,
      ...kargs.map((k) => `--karg-append=${k}`),
      ref,
    ]);
  }
}
