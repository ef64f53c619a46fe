// `rock-image plan`: what a build would do (resolved config, version, input hashes, rendered
// Containerfile, every command line) without building anything.
import { join } from 'node:path';
import { Buildah } from '../exec/buildah.ts';
import { storageArgs } from '../exec/storage.ts';
import { buildOptionHelp, buildOptionSpec, parseBuildOptions, prepare } from './build-glue.ts';
import type { Command } from './types.ts';

export const plan: Command = {
  name: 'plan',
  summary: 'show what a build would do: config, input hash, Containerfile, commands',
  usage: `
Usage: rock-image plan --stream S [options] [--json]

Prints the resolved configuration, the version and per-arch input hashes, the rendered
Containerfile and every command line a build would run. Builds nothing; it resolves the base
digests and, the first time, pulls each base to read its os-release and tools (cached).

Options:${buildOptionHelp}
  --json                print the whole plan as JSON
`,
  options: { ...buildOptionSpec, json: { type: 'boolean' } },
  async run(ctx, values) {
    const opts = parseBuildOptions(ctx, values);
    const { config, plan } = await prepare(ctx, opts, true);
    const g = storageArgs(opts.storage);
    const commands = plan.arches.map((a) => {
      const context = join(opts.output, 'work', a.arch, 'context');
      return {
        arch: a.arch,
        commands: [
          [
            'buildah',
            ...g,
            ...Buildah.buildArgs({
              containerfile: join(context, 'Containerfile'),
              context,
              platform: a.platform,
              tag: a.tag,
              timestamp: plan.timestamp,
            }),
          ],
          [
            'buildah',
            ...g,
            'push',
            '--digestfile',
            join(opts.output, 'work', a.arch, 'digest'),
            a.tag,
            `oci-archive:${join(opts.output, 'builds', plan.version, a.arch, `${plan.name}-${plan.version}-ostree.${a.arch}.ociarchive`)}:${plan.version}`,
          ],
        ],
      };
    });
    if (values.json) {
      ctx.stdout.write(
        `${JSON.stringify({ config, plan: { ...plan, arches: plan.arches.map((a) => ({ ...a, context: a.context.map(({ content: _c, ...rest }) => rest) })) }, commands }, null, 2)}\n`,
      );
      return 0;
    }
    const out: string[] = [];
    out.push(`# ${plan.name} ${plan.version}, stream ${plan.stream}, layer timestamp ${plan.timestamp}`);
    out.push(
      `# composefs: ${config.stream.composefs}; agents: ${config.agents.map((a) => `${a.name}=${a.mode}`).join(', ')}`,
    );
    out.push(
      `# services: ${config.services.map((s) => `${s.name}${s.enabled ? '' : ' (disabled)'}=${s.image}`).join(', ')}`,
    );
    for (const a of plan.arches) {
      out.push(
        '',
        `## ${a.arch} (${a.platform})`,
        `base: ${a.base.ref} -> ${a.base.digest}`,
        `input hash: ${a.inputHash}`,
        `files added: ${a.addedPaths.length}`,
        '',
        '### Containerfile',
        a.containerfile.trimEnd(),
        '',
        '### commands',
      );
      for (const c of commands.find((x) => x.arch === a.arch)!.commands) out.push(`$ ${c.join(' ')}`);
    }
    ctx.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};
