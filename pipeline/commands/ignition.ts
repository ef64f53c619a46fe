// `rock-image ignition`: render a sensor profile to an Ignition config (and optionally check it
// with ignition-validate). Glue only: load manifests and profile, plan, write.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { loadProject, projectPaths } from '../config/index.ts';
import {
  catalogFromProject,
  loadProfile,
  parseSshKeyFile,
  type SensorProfile,
  SPECS,
  type SpecVersion,
} from '../config/profile.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { validateIgnitionFile } from '../exec/ignition.ts';
import { writeAtomic } from '../files.ts';
import { renderBaseConfig, renderIgnition, serializeIgnition } from '../plan/ignition.ts';
import { followedTrust } from './ignition-glue.ts';
import type { Command, Context } from './types.ts';

/**
 * The sensor profile `--profile P` names (manifests/profiles/P.yaml, or a YAML path), with the
 * public keys of each `--ssh-key FILE` added to the admin user. Usage errors (64) for a missing
 * profile or key file; the profile's own errors at their file:line (65).
 */
export function profileFromArgs(ctx: Context, profileArg: string, keyFiles: string[]): SensorProfile {
  const paths = projectPaths(ctx.root);
  const catalog = catalogFromProject(loadProject(paths));
  const byName = join(paths.manifests, 'profiles', `${profileArg}.yaml`);
  const file =
    !profileArg.includes('/') && !profileArg.endsWith('.yaml') && !profileArg.endsWith('.yml')
      ? byName
      : resolve(ctx.cwd, profileArg);
  if (!existsSync(file)) throw new UsageError(`no profile '${profileArg}' (looked for ${file})`);
  const display = (f: string) => (relative(ctx.root, f).startsWith('..') ? f : relative(ctx.root, f));
  const extraKeys = keyFiles.flatMap((k) => {
    const f = resolve(ctx.cwd, k);
    if (!existsSync(f)) throw new UsageError(`--ssh-key: no such file ${k}`);
    return parseSshKeyFile(readFileSync(f, 'utf8'), k);
  });
  return loadProfile(file, display(file), catalog, extraKeys);
}

export const ignition: Command = {
  name: 'ignition',
  summary: 'render a sensor profile to an Ignition config (partitions, mounts, users, services)',
  usage: `
Usage: rock-image ignition --profile P [--ssh-key FILE]... [--output F] [--spec 3.x] [--base] [--validate]

Renders the first-boot Ignition config of a sensor profile.

Options:
  --profile P     profile name under manifests/profiles (e.g. default), or a path to a YAML file
  --ssh-key FILE  add the public keys in FILE (authorized_keys format) to the admin user;
                  may be repeated
  --output F      write the config to F (default: standard output)
  --spec V        Ignition spec: ${SPECS.join(', ')} (default: the profile's
                  ignition-spec, else 3.3.0)
  --base          render only the storage part (partitions, filesystems, mount units) and the
                  Zincati update strategy: the base config baked into the image at
                  /usr/lib/ignition/base.d/
  --validate      check the result with ignition-validate (needs --output or writes a
                  temporary file); exit 1 when it reports anything

Exit codes: 0 ok, 1 validation failed, 64 usage, 65 invalid profile, 69 ignition-validate missing.
`,
  options: {
    profile: { type: 'string' },
    'ssh-key': { type: 'string', multiple: true },
    output: { type: 'string', short: 'o' },
    spec: { type: 'string' },
    base: { type: 'boolean' },
    validate: { type: 'boolean' },
  },
  async run(ctx, values) {
    const profileArg = values.profile;
    if (typeof profileArg !== 'string') throw new UsageError('--profile is required (see --help)');
    const spec = values.spec;
    if (spec !== undefined && !SPECS.includes(spec as SpecVersion))
      throw new UsageError(`--spec must be one of ${SPECS.join(', ')}, not '${String(spec)}'`);

    const profile = profileFromArgs(ctx, profileArg, (values['ssh-key'] as string[] | undefined) ?? []);
    const project = loadProject(projectPaths(ctx.root));
    const opts = { spec: spec as SpecVersion | undefined };
    const config = values.base
      ? renderBaseConfig(profile, opts)
      : renderIgnition(profile, { ...opts, trust: followedTrust(project, profile, ctx.root) });
    const text = serializeIgnition(config);

    const output = typeof values.output === 'string' ? resolve(ctx.cwd, values.output) : undefined;
    if (output) {
      // Atomic: a half-written config must never be picked up by a provisioning server.
      writeAtomic(output, text);
      ctx.log.info(`wrote ${values.output} (profile ${profile.name}, spec ${config.ignition.version})`);
    } else {
      ctx.stdout.write(text);
    }
    if (values.validate) {
      const scratch = output ? undefined : mkdtempSync(join(tmpdir(), 'rock-ignition-'));
      const target = output ?? join(scratch!, `${profile.name}.ign`);
      if (scratch) writeFileSync(target, text);
      const result = await validateIgnitionFile(ctx.run, target).finally(() => {
        if (scratch) rmSync(scratch, { recursive: true, force: true });
      });
      for (const m of result.messages) ctx.log.error(`ignition-validate: ${m}`);
      if (!result.ok) return ExitCode.failure;
      ctx.log.info(`ignition-validate: ${values.output ?? profile.name} is valid`);
    }
    return ExitCode.ok;
  },
};
