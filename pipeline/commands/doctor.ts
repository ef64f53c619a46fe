// `rock-image doctor`: which host tools each stage needs, which are present (with versions),
// and how to install the missing ones; `--install` installs them on Debian/Ubuntu or Fedora.
import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from '../errors.ts';
import { findTool, type Stage, toolsFor, which } from '../exec/tools.ts';
import type { Command } from './types.ts';

const stages: Stage[] = ['build', 'cross-arch', 'compose', 'artifacts', 'boot-test', 'publish', 'test'];

export const doctor: Command = {
  name: 'doctor',
  summary: 'check host tools per stage; --install installs what is missing',
  usage: `
Usage: rock-image doctor [STAGE...] [--install] [--json]

Lists the host tools each stage needs, the version found, and how to install what is missing.
Stages: ${stages.join(', ')} (default: all). Exits 69 when a tool of a named stage is missing.

Options:
  --install   install missing tools with apt-get (Debian/Ubuntu) or dnf (Fedora), and register
              qemu-user with binfmt_misc for cross-arch builds (needs root)
  --json      print the report as JSON on stdout
`,
  options: { install: { type: 'boolean' }, json: { type: 'boolean' } },
  positionals: true,
  async run(ctx, values, positionals) {
    const unknown = positionals.filter((p) => !stages.includes(p as Stage));
    if (unknown.length)
      throw new UsageError(`unknown stage(s): ${unknown.join(', ')}; stages: ${stages.join(', ')}`);
    const wanted = (positionals.length ? positionals : stages) as Stage[];
    const osId = readOsId();
    if (values.install) await install(ctx, wanted, osId);

    const report = [];
    for (const tool of toolsFor(wanted)) {
      const path = findTool(tool);
      let version: string | undefined;
      if (path && tool.versionArg) {
        const r = await ctx.run(path, [tool.versionArg], { allowFailure: true });
        version = `${r.stdout}\n${r.stderr}`
          .split('\n')
          .find((l) => /\d+\.\d+/.test(l))
          ?.trim();
      }
      report.push({
        tool: tool.name,
        stages: tool.stages.filter((s) => wanted.includes(s)),
        path,
        version,
        package: osId === 'fedora' ? tool.fedora : tool.deb,
        why: tool.why,
      });
    }
    const binfmt = wanted.includes('cross-arch') || wanted.includes('test') ? binfmtStatus() : undefined;
    const missing = report.filter((r) => !r.path);
    if (values.json) {
      ctx.stdout.write(
        `${JSON.stringify({ os: osId, tools: report, binfmt, missing: missing.map((m) => m.tool) }, null, 2)}\n`,
      );
    } else {
      for (const r of report) {
        ctx.stdout.write(
          `${r.path ? 'ok     ' : 'MISSING'} ${r.tool.padEnd(20)} ${(r.version ?? (r.path ? '' : `install: ${r.package}`)).slice(0, 60).padEnd(60)} [${r.stages.join(',')}]\n`,
        );
      }
      if (binfmt)
        ctx.stdout.write(
          `${binfmt.ok ? 'ok     ' : 'MISSING'} ${'binfmt qemu-aarch64'.padEnd(20)} ${binfmt.detail}\n`,
        );
      if (missing.length || (binfmt && !binfmt.ok)) {
        const pkgs = [...new Set(missing.map((m) => m.package))].join(' ');
        ctx.stdout.write(
          `\nTo install: ${osId === 'fedora' ? 'dnf install -y' : 'apt-get install -y --no-install-recommends'} ${pkgs}\nor: rock-image doctor --install ${positionals.join(' ')}\n`,
        );
      }
    }
    return missing.length || (binfmt && !binfmt.ok && process.arch === 'x64') ? 69 : 0;
  },
};

function readOsId(): string {
  if (!existsSync('/etc/os-release')) return 'unknown';
  const text = readFileSync('/etc/os-release', 'utf8');
  const get = (k: string) => text.match(new RegExp(`^${k}="?([^"\\n]*)"?$`, 'm'))?.[1] ?? '';
  const ids = [get('ID'), ...get('ID_LIKE').split(' ')];
  if (ids.includes('fedora') || ids.includes('rhel')) return 'fedora';
  if (ids.includes('debian') || ids.includes('ubuntu')) return 'debian';
  return get('ID') || 'unknown';
}

function binfmtStatus(): { ok: boolean; detail: string } {
  if (process.arch === 'arm64') return { ok: true, detail: 'native aarch64 host' };
  if (!existsSync('/proc/sys/fs/binfmt_misc/status')) return { ok: false, detail: 'binfmt_misc not mounted' };
  if (!existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64'))
    return { ok: false, detail: 'qemu-aarch64 not registered' };
  return {
    ok: true,
    detail: readFileSync('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8').split('\n')[1] ?? 'registered',
  };
}

async function install(ctx: Parameters<Command['run']>[0], wanted: Stage[], osId: string): Promise<void> {
  const missing = toolsFor(wanted).filter((t) => !findTool(t));
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  await ctx.log.step('install host tools', async () => {
    if (osId === 'debian') {
      if (wanted.includes('test') || wanted.includes('artifacts')) {
        // Test fixtures need arm64 packages (busybox-static:arm64) downloaded with apt-get;
        // aarch64 disks need grub-efi-arm64-bin:arm64.
        const archs = (await ctx.run('dpkg', ['--print-foreign-architectures'])).stdout;
        if (process.arch === 'x64' && !archs.includes('arm64'))
          await ctx.run('dpkg', ['--add-architecture', 'arm64']);
      }
      const pkgs = [...new Set(missing.map((t) => t.deb))];
      await ctx.run('apt-get', ['update', '-q'], { env });
      if (pkgs.length)
        await ctx.run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...pkgs], { env });
    } else if (osId === 'fedora') {
      const pkgs = [...new Set(missing.map((t) => t.fedora))];
      if (pkgs.length) await ctx.run('dnf', ['install', '-y', ...pkgs]);
    } else {
      throw new Error(`--install supports Debian/Ubuntu and Fedora hosts, not '${osId}'`);
    }
    if ((wanted.includes('cross-arch') || wanted.includes('test')) && process.arch === 'x64') {
      if (!existsSync('/proc/sys/fs/binfmt_misc/status')) {
        await ctx.run('mount', ['-t', 'binfmt_misc', 'binfmt_misc', '/proc/sys/fs/binfmt_misc']);
      }
      if (!existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64') && which('update-binfmts')) {
        await ctx.run('update-binfmts', ['--enable', 'qemu-aarch64'], { allowFailure: true });
      }
    }
  });
}
