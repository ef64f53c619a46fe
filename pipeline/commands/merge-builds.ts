// `rock-image merge-builds`: joins the build directories of per-arch legs (each built one arch on
// its own runner and wrote its own builds.json) into one build directory, as if one machine had
// built every arch: DIR/builds/<version>/<arch>/ per leg and one builds.json listing them all.
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Arch } from '../config/index.ts';
import { DataError, ExitCode, PipelineError, UsageError } from '../errors.ts';
import { writeOutputs } from '../gha.ts';
import { addBuild, buildsPath, metaPath, readBuilds, readMetaFile, updateBuilds } from '../records.ts';
import { archesOption, type Command } from './types.ts';

interface Leg {
  dir: string;
  buildsDir: string;
  version: string;
  arches: string[];
}

/** Reads one leg: DIR/builds/builds.json (or DIR/builds.json) and its newest build. */
function readLeg(dir: string): Leg {
  const buildsDir = existsSync(join(dir, 'builds', 'builds.json')) ? join(dir, 'builds') : dir;
  const file = buildsPath(buildsDir);
  if (!existsSync(file)) throw new UsageError(`${dir}: no builds/builds.json (not a build directory)`);
  const newest = readBuilds(buildsDir).builds[0];
  if (!newest) throw new DataError(`${file}: builds[0] must be {id, arches[]}`);
  for (const arch of newest.arches) {
    const meta = metaPath(buildsDir, newest.id, arch);
    if (!existsSync(meta)) throw new DataError(`${file}: lists ${newest.id} ${arch}, but ${meta} is missing`);
    const m = readMetaFile(meta);
    if (m.buildid !== newest.id || m['coreos-assembler.basearch'] !== arch)
      throw new DataError(
        `${meta}: is ${m.buildid} ${m['coreos-assembler.basearch']}, builds.json says ${newest.id} ${arch}`,
      );
  }
  return { dir, buildsDir, version: newest.id, arches: newest.arches };
}

export const mergeBuilds: Command = {
  name: 'merge-builds',
  summary: "join per-arch legs' build directories into one (GitHub Actions publish job)",
  usage: `
Usage: rock-image merge-builds --output DIR LEG...

Each LEG is a build directory of one runner (LEG/builds/builds.json, or a directory holding
builds.json itself). The newest build of every leg must be the same version; its arch
directories are copied (or moved) into DIR/builds/<version>/<arch>/ and DIR/builds/builds.json
gains the version with every arch, newest first, written atomically. An arch directory already
in DIR is left as it is when its meta.json is identical, and is an error when it differs.
Under GitHub Actions writes the step outputs version, arches and build-dir.

Options:
  -o, --output DIR        build directory to merge into (default: ./out)
  --require-arch A[,A]    fail unless the merged version has every one of these arches
  --move                  move the arch directories instead of copying (saves disk space)
`,
  options: {
    output: { type: 'string', short: 'o' },
    'require-arch': { type: 'string', arches: true },
    move: { type: 'boolean' },
  },
  positionals: true,
  async run(ctx, values, positionals) {
    if (positionals.length === 0) throw new UsageError('name at least one leg directory');
    const output = resolve(ctx.cwd, typeof values.output === 'string' ? values.output : 'out');
    const legs = positionals.map((p) => readLeg(resolve(ctx.cwd, p)));
    const versions = [...new Set(legs.map((l) => l.version))];
    if (versions.length !== 1)
      throw new PipelineError(
        `legs built different versions (${legs.map((l) => `${l.dir}: ${l.version}`).join(', ')}); give every leg the same --version`,
      );
    const version = versions[0]!;
    const seen = new Map<string, string>();
    for (const leg of legs)
      for (const arch of leg.arches) {
        const other = seen.get(arch);
        if (other) throw new PipelineError(`${arch} of ${version} is in two legs: ${other} and ${leg.dir}`);
        seen.set(arch, leg.dir);
      }
    const required = archesOption(values, 'require-arch') ?? [];
    const missing = required.filter((a) => !seen.has(a));
    if (missing.length)
      throw new PipelineError(`no leg built ${missing.join(', ')} of ${version}; nothing was merged`);

    const buildsDir = join(output, 'builds');
    // Check everything before changing anything, so a failed merge leaves DIR as it was.
    const todo: { leg: Leg; arch: string }[] = [];
    for (const leg of legs)
      for (const arch of leg.arches) {
        const dest = join(buildsDir, version, arch);
        if (!existsSync(dest)) {
          todo.push({ leg, arch });
          continue;
        }
        const a = readFileSync(join(leg.buildsDir, version, arch, 'meta.json'), 'utf8');
        const b = existsSync(join(dest, 'meta.json')) ? readFileSync(join(dest, 'meta.json'), 'utf8') : '';
        if (a !== b)
          throw new PipelineError(`${dest} exists and differs from ${leg.dir}'s ${arch}; nothing was merged`);
        ctx.log.info(`${version} ${arch}: already merged`);
      }
    for (const { leg, arch } of todo) {
      const src = join(leg.buildsDir, version, arch);
      const dest = join(buildsDir, version, arch);
      const tmp = join(buildsDir, version, `.${arch}.tmp-${process.pid}`);
      mkdirSync(join(buildsDir, version), { recursive: true });
      rmSync(tmp, { recursive: true, force: true });
      await ctx.log.step(`merge ${version} ${arch}`, async () => {
        if (values.move) {
          try {
            renameSync(src, tmp);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
            cpSync(src, tmp, { recursive: true, preserveTimestamps: true });
            rmSync(src, { recursive: true, force: true });
          }
        } else cpSync(src, tmp, { recursive: true, preserveTimestamps: true });
        renameSync(tmp, dest);
      });
    }
    const current = readBuilds(buildsDir);
    const arches = [...seen.keys()].sort() as Arch[];
    const listed = current.builds.find((b) => b.id === version)?.arches ?? [];
    if (todo.length === 0 && arches.every((a) => listed.includes(a))) {
      ctx.log.info(`${version} (${arches.join(', ')}) already merged into ${buildsDir}; nothing to do`);
      writeOutputs(ctx.env, { version, arches: arches.join(','), 'build-dir': join(buildsDir, version) });
      return ExitCode.ok;
    }
    const timestamp = new Date(ctx.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const merged = updateBuilds(buildsDir, (doc) => addBuild(doc, version, arches, timestamp));
    ctx.log.info(
      `merged ${version}: ${merged.builds[0]?.id === version ? '' : '(not newest) '}${arches.join(', ')} -> ${buildsDir}`,
    );
    writeOutputs(ctx.env, { version, arches: arches.join(','), 'build-dir': join(buildsDir, version) });
    return ExitCode.ok;
  },
};
