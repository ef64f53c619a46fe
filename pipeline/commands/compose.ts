// `rock-image compose`: composes the RockNSM base OCI archive from manifests/compose with
// rpm-ostree (host or builder container), with lockfiles, autolock and change detection;
// `--print-only` shows the flattened treefile and exact command lines (`--json`: wrapper and treefile),
// `--check-print-only` compares it with rpm-ostree's own; `--diff` compares lockfiles.
// The plan is commands/compose-stream.ts, what is printed of it commands/compose-print.ts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadProject, projectPaths } from '../config/index.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { type ComposeMode, DEFAULT_BUILDER_IMAGE, resolveMode, runCompose } from '../exec/rpm-ostree.ts';
import { tagDigest } from '../exec/skopeo.ts';
import { hostArch } from '../exec/tools.ts';
import { writeAtomic } from '../files.ts';
import { IMAGE_LOCK_FILE, isPinned, serializeImageLock } from '../plan/image-lock.ts';
import { parseLockfile, serializeLockfile } from '../plan/lockfile.ts';
import { diffLockfiles, formatDiff } from '../plan/lockfile-diff.ts';
import { checkPrintOnly, composePlanJson, formatComposePlan, unlockedMessage } from './compose-print.ts';
import {
  composeOptions,
  DEFAULT_TREEFILE,
  planStreamCompose,
  readImageLock,
  streamComposeSettings,
} from './compose-stream.ts';
import { archesOption, type Command, type Context } from './types.ts';

/** Entry point for `rock-image plan --compose`: the plan text for a stream, never running anything. */
export function composePlanText(
  ctx: Context,
  stream: string,
  opts: { arches?: string[]; mode?: ComposeMode; treefile?: string; output?: string } = {},
): string {
  const settings = streamComposeSettings(ctx.root, stream);
  return formatComposePlan(
    planStreamCompose(composeOptions(ctx, stream, settings, { ...opts, autolock: false })),
  );
}

export const compose: Command = {
  name: 'compose',
  summary: 'compose the RockNSM base OCI archive from treefiles with rpm-ostree',
  usage: `
Usage: rock-image compose --stream S [--arch A]... [options]
       rock-image compose --diff OLD.json NEW.json [--json]
       rock-image compose --lock-builder [--stream S] [--builder-image REF]

Flattens manifests/compose (include, arch-include, conditional-include, variables, packages-<arch>)
for each arch, then runs rpm-ostree to produce <output>/<arch>/rocknsm-base-S.<arch>.ociarchive,
the generated lockfile manifest-lock.generated.<arch>.json and compose.json (input hash, version,
commit). Unchanged inputs skip the compose.

Options:
  --stream S           stream from manifests/streams (required unless --diff)
  --arch A             x86_64 or aarch64; repeatable (default: the stream's arches)
  --treefile F         root treefile (default: the stream's, ${DEFAULT_TREEFILE})
  --output DIR         output directory (default: build/compose/<stream>)
  --autolock           an arch without manifest-lock.<arch>.json reuses the primary arch's versions
  --mode M             host (rpm-ostree on this host), container (podman + builder image), or
                       auto (default: host if rpm-ostree is installed, else container)
  --builder-image REF  builder image for container mode (default: the stream's, ${DEFAULT_BUILDER_IMAGE})
  --force              compose even when the input hash is unchanged
  --print-only         print the flattened treefile per arch and the exact command lines; run nothing;
                       with --json: {ARCH: {wrapper: {path, treefile}, treefile}} as JSON
  --check-print-only F compare F, what 'rpm-ostree compose tree --print-only' printed for the
                       wrapper treefile (--print-only --json) on an --arch host, with the
                       flattened treefile; exit 1 listing each difference's JSON path; run nothing
  --diff OLD NEW       package changes between two lockfiles (release notes); --json for JSON
  --lock-builder       resolve the builder image tag of every stream (or of --stream, and
                       --builder-image) to its digest now and write ${IMAGE_LOCK_FILE}; container
                       mode runs only locked builders, by digest

Environment: ROCK_IMAGE_PODMAN_ARGS extra 'podman run' arguments (e.g. '--runtime runc').
Exit 69 when neither rpm-ostree nor podman (with the builder image pullable) is available.
`,
  options: {
    stream: { type: 'string' },
    arch: { type: 'string', multiple: true, arches: true },
    treefile: { type: 'string' },
    output: { type: 'string' },
    autolock: { type: 'boolean' },
    mode: { type: 'string' },
    'builder-image': { type: 'string' },
    force: { type: 'boolean' },
    'print-only': { type: 'boolean' },
    'check-print-only': { type: 'string' },
    diff: { type: 'string' },
    json: { type: 'boolean' },
    'lock-builder': { type: 'boolean' },
  },
  positionals: true,
  async run(ctx, values, positionals) {
    if (typeof values.diff === 'string') {
      if (positionals.length !== 1) throw new UsageError('--diff needs two lockfiles: --diff OLD NEW');
      const [oldPath, newPath] = [resolve(ctx.cwd, values.diff), resolve(ctx.cwd, positionals[0]!)];
      const diff = diffLockfiles(
        parseLockfile(readFileSync(oldPath, 'utf8'), values.diff),
        parseLockfile(readFileSync(newPath, 'utf8'), positionals[0]!),
      );
      ctx.stdout.write(values.json ? `${JSON.stringify(diff, null, 2)}\n` : formatDiff(diff));
      return ExitCode.ok;
    }
    if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values['lock-builder'])
      return lockBuilders(
        ctx,
        values.stream as string | undefined,
        values['builder-image'] as string | undefined,
      );
    if (typeof values.stream !== 'string') throw new UsageError('--stream is required (see --help)');
    const mode = (values.mode as string | undefined) ?? 'auto';
    if (!['host', 'container', 'auto'].includes(mode))
      throw new UsageError(`--mode must be host, container or auto, not '${mode}'`);
    const arches = archesOption(values, 'arch') ?? [];

    const settings = streamComposeSettings(ctx.root, values.stream);
    if (typeof values['builder-image'] === 'string') settings.builderImage = values['builder-image'];
    const printOnly = Boolean(values['print-only']);
    const planOnly = printOnly || typeof values['check-print-only'] === 'string';
    // Printing never needs the tools; running resolves the mode (exit 69 when nothing can compose).
    const resolved: ComposeMode = planOnly
      ? mode === 'auto'
        ? 'container'
        : (mode as ComposeMode)
      : resolveMode(mode as ComposeMode | 'auto');
    const opts = composeOptions(ctx, values.stream, settings, {
      arches,
      mode: resolved,
      treefile: values.treefile as string | undefined,
      output: values.output as string | undefined,
      autolock: Boolean(values.autolock),
      force: Boolean(values.force),
    });
    if (printOnly) {
      const plans = planStreamCompose(opts);
      ctx.stdout.write(values.json ? composePlanJson(plans) : formatComposePlan(plans));
      return ExitCode.ok;
    }
    if (typeof values['check-print-only'] === 'string') {
      if (opts.arches.length !== 1)
        throw new UsageError('--check-print-only compares one arch: give exactly one --arch');
      const file = values['check-print-only'];
      const [p] = planStreamCompose(opts);
      const report = checkPrintOnly(p!, readFileSync(resolve(ctx.cwd, file), 'utf8'), file);
      if (report) {
        ctx.stdout.write(report);
        return ExitCode.failure;
      }
      ctx.stdout.write(
        `${p!.arch}: the flattened treefile matches rpm-ostree compose tree --print-only (${file})\n`,
      );
      return ExitCode.ok;
    }
    const host = hostArch();
    // Native composes only, like coreos-assembler: primary arch first so --autolock can use it.
    const order = [...opts.arches].sort((a, b) =>
      a === settings.primaryArch ? -1 : b === settings.primaryArch ? 1 : 0,
    );
    for (const arch of order) {
      if (arch !== host)
        throw new UsageError(
          `cannot compose ${arch} on a ${host} host (rpm-ostree composes natively; use a ${arch} runner)`,
        );
      const [p] = planStreamCompose({ ...opts, arches: [arch] });
      if (p!.unlockedBuilder) throw new UsageError(unlockedMessage(p!.unlockedBuilder));
      if (p!.autolock) {
        mkdirSync(dirname(p!.autolock.path), { recursive: true });
        writeFileSync(p!.autolock.path, serializeLockfile(p!.autolock.lockfile));
      }
      const outcome = await ctx.log.step(
        `compose ${values.stream}/${arch}`,
        () => runCompose(ctx.run, p!.plan, p!.inputHash, ctx.now, { force: Boolean(values.force) }),
        arch,
      );
      if (outcome.status === 'unchanged') {
        ctx.log.info(`input hash unchanged (${p!.inputHash}); kept ${outcome.record.archive}`, arch);
      } else {
        // Normalise the generated lockfile to the upstream layout (sorted, two-space JSON).
        const lf = p!.plan.outputs.lockfile;
        if (existsSync(lf)) writeFileSync(lf, serializeLockfile(parseLockfile(readFileSync(lf, 'utf8'), lf)));
        ctx.log.info(`composed ${outcome.record.archive}`, arch);
      }
      ctx.stdout.write(
        `${JSON.stringify({ arch, status: outcome.status, archive: outcome.record.archive, inputHash: p!.inputHash })}\n`,
      );
    }
    return ExitCode.ok;
  },
};

/** `--lock-builder`: the digest each builder tag points at now, written to the image lock. */
async function lockBuilders(ctx: Context, stream?: string, extra?: string): Promise<number> {
  const streams = stream ? [stream] : [...loadProject(projectPaths(ctx.root)).streams.keys()];
  const refs = new Set(streams.map((s) => streamComposeSettings(ctx.root, s).builderImage));
  if (extra) refs.add(extra);
  const lock = readImageLock(ctx.root);
  const day = new Date(ctx.now()).toISOString().slice(0, 10);
  for (const ref of [...refs].sort()) {
    if (isPinned(ref)) continue;
    const digest = await ctx.log.step(`resolve ${ref}`, () => tagDigest(ctx.run, ref));
    const before = lock.images[ref]?.digest;
    lock.images[ref] = { digest, resolved: day };
    ctx.stdout.write(`${ref} ${before && before !== digest ? `${before} -> ` : ''}${digest}\n`);
  }
  const path = join(ctx.root, IMAGE_LOCK_FILE);
  writeAtomic(path, serializeImageLock(lock));
  return ExitCode.ok;
}
