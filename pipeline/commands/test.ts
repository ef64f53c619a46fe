// `rock-image test`: boot tests of a build's disk and PXE artifacts in QEMU (the project's kola).
// Each case passes when the marker appears on the serial console within its time limit; console
// logs stay in DIR/builds/<version>/<arch>/boot/, results go to meta.json `rocknsm.boot-tests`.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BootPlanError, bootCases, DEFAULT_TIMEOUT, planBoot, rerunNote } from '../boot/plan.ts';
import { type ArchBootPlan, DEFAULT_RERUNS, runBootTests } from '../boot/run.ts';
import { DataError, ExitCode, UsageError } from '../errors.ts';
import { readMetaFile } from '../records.ts';
import { readBuildsJson } from './build-glue.ts';
import { archesOption, type Command, intOption, listOption } from './types.ts';

const caseList = [...new Set(bootCases.map((c) => c.id))]
  .map((id) => {
    const arches = bootCases.filter((c) => c.id === id).map((c) => c.arch);
    return `    ${id.padEnd(11)} ${arches.join(', ')}: ${bootCases.find((c) => c.id === id)!.summary}`;
  })
  .join('\n');

export const test: Command = {
  name: 'test',
  summary: 'boot tests: QEMU boots each disk and PXE artifact of a build until the marker shows',
  usage: `
Usage: rock-image test --build DIR [options]

Boots the artifacts of a build in QEMU (TCG; ROCK_IMAGE_QEMU_ACCEL=kvm to change) and passes a
case when the marker appears on the serial console in time. Console logs are kept in
DIR/builds/<version>/<arch>/boot/<case>.log, results recorded in each arch's meta.json
(rocknsm.boot-tests), which publishing checks. Cases whose artifacts the build lacks are skipped.
Exit 1 when any case fails, with the end of its console.

Cases:
${caseList}

Options:
  -b, --build DIR     build directory of 'rock-image build --output' (required)
  --version V         build to test (default: the newest in DIR/builds/builds.json)
  -a, --arch A[,A]    x86_64 and/or aarch64 (default: every arch of the build)
  --case C[,C]        cases to run (default: every case the artifacts allow)
  --marker TEXT       success marker, {version} is replaced
                      (default: 'ROCKNSM-BOOT-OK VARIANT_ID=rocknsm VERSION={version}')
  --timeout S         seconds per boot (default: ${DEFAULT_TIMEOUT.x86_64} x86_64, ${DEFAULT_TIMEOUT.aarch64} aarch64)
  --reruns N          boots of a failed case again, each from fresh disks, as kola run --rerun
                      (default: ${DEFAULT_RERUNS}; 0 fails on the first failed boot). A pass after
                      a failed boot is reported with it, and the failed console kept
  --jobs N            VMs at once (default: the number of cores)
`,
  options: {
    build: { type: 'string', short: 'b' },
    version: { type: 'string' },
    arch: { type: 'string', short: 'a', arches: true },
    case: { type: 'string' },
    marker: { type: 'string' },
    timeout: { type: 'string', int: { min: 1 } },
    jobs: { type: 'string', int: { min: 1 } },
    reruns: { type: 'string', int: { min: 0, max: 3 } },
  },
  async run(ctx, values) {
    if (typeof values.build !== 'string') throw new UsageError('--build DIR is required');
    const output = resolve(ctx.cwd, values.build);
    const builds = readBuildsJson(output);
    const version = typeof values.version === 'string' ? values.version : builds.builds[0]?.id;
    const build = builds.builds.find((b) => b.id === version);
    if (!version || !build)
      throw new UsageError(`no build ${version ?? '(none)'} in ${join(output, 'builds', 'builds.json')}`);
    const arches = archesOption(values, 'arch') ?? build.arches;
    for (const a of arches)
      if (!build.arches.includes(a as never))
        throw new UsageError(`build ${version} has no ${a} (it has ${build.arches.join(', ')})`);
    const timeoutSec = intOption(values, 'timeout');
    const jobs = intOption(values, 'jobs') ?? Math.max(1, ctx.cores);
    const cases = listOption(values, 'case');
    if (typeof values.marker === 'string' && !values.marker.trim())
      throw new UsageError('--marker must not be empty');

    const plans: ArchBootPlan[] = [];
    for (const arch of arches as ArchBootPlan['arch'][]) {
      const buildDir = join(output, 'builds', version, arch);
      const metaFile = join(buildDir, 'meta.json');
      if (!existsSync(metaFile)) throw new DataError(`${metaFile} does not exist`);
      const meta = readMetaFile(metaFile);
      try {
        const plan = planBoot(
          {
            arch,
            version,
            buildDir,
            workDir: join(output, 'work', 'boot', arch),
            images: meta.images ?? {},
            cases: cases?.filter((c) => bootCases.some((b) => b.id === c && b.arch === arch)) ?? undefined,
            marker: values.marker as string | undefined,
            timeoutSec,
          },
          (p) => readFileSync(p, 'utf8'),
        );
        plans.push({ arch, buildDir, workDir: join(output, 'work', 'boot', arch), plan });
      } catch (err) {
        if (err instanceof BootPlanError) throw new DataError(`${metaFile}: ${err.message}`);
        throw err;
      }
    }
    // A named case must exist on at least one of the arches tested.
    for (const c of cases ?? [])
      if (!bootCases.some((b) => b.id === c))
        throw new UsageError(
          `unknown boot case '${c}' (${[...new Set(bootCases.map((b) => b.id))].join(', ')})`,
        );
      else if (!bootCases.some((b) => b.id === c && arches.includes(b.arch)))
        throw new UsageError(`boot case '${c}' does not exist for ${arches.join(', ')}`);
    const total = plans.reduce((n, p) => n + p.plan.runs.length, 0);
    if (total === 0)
      throw new UsageError(
        `build ${version} has no artifacts to boot (run 'rock-image artifacts --build ${values.build}' first)`,
      );
    ctx.log.attachFile(
      join(output, 'logs', `test-${version}-${new Date(ctx.now()).toISOString().replace(/[:.]/g, '')}.jsonl`),
    );
    ctx.log.info(`${total} boot case(s) of ${version}, ${jobs} VM(s) at a time`);
    const outcomes = await runBootTests(ctx, plans, { jobs, reruns: intOption(values, 'reruns') });
    for (const o of outcomes.sort((a, b) => `${a.arch}${a.id}`.localeCompare(`${b.arch}${b.id}`))) {
      const earlier = o.result['failed-attempts'];
      ctx.stdout.write(
        `${o.arch} ${o.id}: ${o.result.result} (${o.result.seconds} s)${earlier ? ` ${rerunNote(earlier)}` : ''}\n`,
      );
    }
    return ExitCode.ok;
  },
};
