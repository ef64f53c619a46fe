// Boot tests, execution: stages each arch's artifacts as the plan says, boots every case in QEMU
// (bounded by cores: each TCG guest keeps one core busy), keeps the console logs next to the
// build and records the results in meta.json atomically. A case that fails is booted once more
// from freshly staged disks, as coreos-assembler's `kola run --rerun` does ("re-run failed tests
// once (succeeds if tests pass on rerun)", mantle/cmd/kola/kola.go:136 @05db482e); the failed
// attempt's console is kept beside the case's log and recorded, so a flake stays visible.
import { mkdirSync, renameSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import PQueue from 'p-queue';
import type { Context } from '../commands/types.ts';
import { PipelineError } from '../errors.ts';
import { decompressFile } from '../exec/compress.ts';
import { mkNetbootImage } from '../exec/grub.ts';
import { concatInitrds } from '../exec/initramfs.ts';
import { type BootOptions, bootVm, plainConsole, type VmResult } from '../exec/qemu.ts';
import { createOverlay } from '../exec/qemu-img.ts';
import { writeAtomic } from '../files.ts';
import { updateMeta } from '../records.ts';
import {
  type BootArch,
  type BootAttempt,
  type BootPlan,
  type BootResult,
  recordResults,
  rerunNote,
  type StageStep,
} from './plan.ts';

export interface ArchBootPlan {
  arch: BootArch;
  buildDir: string;
  workDir: string;
  plan: BootPlan;
}

/** How often a failed case is booted again (kola's --rerun: once). */
export const DEFAULT_RERUNS = 1;

export interface RunOptions {
  /** VMs at once. */
  jobs: number;
  boot?: BootOptions;
  /** Boots of a failed case after the first. Default DEFAULT_RERUNS. */
  reruns?: number;
  /** The VM runner; tests of the orchestration pass their own. Default bootVm. */
  bootVm?: typeof bootVm;
}

export interface CaseOutcome {
  arch: BootArch;
  id: string;
  result: BootResult;
  vm: VmResult;
}

async function stage(ctx: Context, step: StageStep, tag: string): Promise<void> {
  mkdirSync(dirname(step.to), { recursive: true });
  rmSync(step.to, { force: true });
  switch (step.kind) {
    case 'decompress':
      await ctx.log.step(
        `decompress ${relative(dirname(step.from), step.from)}`,
        async () => {
          await decompressFile(ctx.run, step.compression, step.from, `${step.to}.tmp`, tag);
          renameSync(`${step.to}.tmp`, step.to);
        },
        tag,
      );
      return;
    case 'link':
      symlinkSync(step.from, step.to);
      return;
    case 'write':
      writeAtomic(step.to, step.text);
      return;
    case 'concat':
      await concatInitrds(step.from, step.to);
      return;
    case 'overlay':
      await createOverlay(ctx.run, step.from, step.format, step.to, step.sizeGiB, tag);
      return;
    case 'grub-net': {
      const cfg = `${step.to}.early.cfg`;
      writeFileSync(cfg, step.earlyConfig);
      await mkNetbootImage(ctx.run, 'arm64-efi', step.to, cfg, '/', tag);
      return;
    }
  }
}

/** The last `lines` lines of a console log, for error messages. */
export function consoleTail(log: string, lines = 25): string {
  return plainConsole(log).trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * The lines of a console log that say why a boot went wrong, wherever they are: systemd's status
 * lines for a failed, timed-out or dependency-failed unit ("[FAILED]", "[ TIME ]", "[DEPEND]"),
 * its "Timed out waiting for device" and dracut's warnings. The tail alone often shows only the
 * emergency shell that followed them. At most `max` lines, the first ones kept.
 */
export function consoleFailures(log: string, max = 30): string {
  const why =
    /\[(FAILED|\s*TIME\s*|DEPEND)\]|Timed out|Dependency failed|dracut-initqueue\[\d+\]: Warning|Failed to (start|mount)/;
  const lines = plainConsole(log)
    .split('\n')
    .filter((l) => why.test(l));
  return lines.length > max
    ? [...lines.slice(0, max), `[${lines.length - max} more]`].join('\n')
    : lines.join('\n');
}

/** A failed boot's console for an error message: the lines that say why, then the last lines. */
export function consoleReport(log: string, lines = 25): string {
  const why = consoleFailures(log);
  return `${why ? `failure lines:\n${why}\n` : ''}last lines:\n${consoleTail(log, lines)}`;
}

/**
 * Runs the planned boots of every arch, `jobs` VMs at a time, and records each arch's results in
 * its meta.json (`rocknsm.boot-tests`). Throws, after recording, when any case failed.
 */
export async function runBootTests(
  ctx: Context,
  plans: ArchBootPlan[],
  opts: RunOptions = { jobs: 1 },
): Promise<CaseOutcome[]> {
  const boot = opts.bootVm ?? bootVm;
  const reruns = opts.reruns ?? DEFAULT_RERUNS;
  for (const p of plans) {
    rmSync(p.workDir, { recursive: true, force: true });
    mkdirSync(p.workDir, { recursive: true });
    const done = new Set<string>();
    for (const r of p.plan.runs)
      for (const s of r.steps) {
        if (done.has(s.to)) continue;
        done.add(s.to);
        await stage(ctx, s, p.arch);
      }
    for (const s of p.plan.skipped) ctx.log.warn(`${p.arch} ${s.id}: not run, ${s.reason}`);
  }
  const queue = new PQueue({ concurrency: opts.jobs });
  const outcomes: CaseOutcome[] = [];
  await Promise.all(
    plans.flatMap((p) =>
      p.plan.runs.map((r) =>
        queue.add(async () => {
          const earlier: BootAttempt[] = [];
          let vm: VmResult;
          for (let n = 1; ; n++) {
            if (n > 1)
              // A fresh copy-on-write disk: the failed boot may have written to the last one.
              for (const s of r.steps.filter((x) => x.kind === 'overlay')) await stage(ctx, s, p.arch);
            vm = await ctx.log.step(
              `boot ${r.case.id} (${r.case.summary})${n > 1 ? `, rerun ${n - 1} of ${reruns}` : ''}`,
              () => boot(r.vm, { run: ctx.run, env: ctx.env, ...opts.boot }),
              p.arch,
            );
            if (vm.outcome === 'marker' || n > reruns) break;
            const kept = r.vm.serialLog.replace(/(\.log)?$/, `.attempt-${n}.log`);
            renameSync(r.vm.serialLog, kept);
            const attempt: BootAttempt = {
              outcome: vm.outcome,
              seconds: Math.round(vm.seconds * 10) / 10,
              log: relative(p.buildDir, kept),
            };
            earlier.push(attempt);
            ctx.log.warn(
              `${p.arch} ${r.case.id}: ${vm.failure ? `'${vm.failure}' on the console` : vm.outcome} after ${attempt.seconds} s (console kept in ${attempt.log}); booting it again from a fresh disk. ${consoleTail(vm.log, 3).replace(/\n/g, ' | ')}`,
            );
          }
          const pass = vm.outcome === 'marker';
          const result: BootResult = {
            result: pass ? 'pass' : 'fail',
            outcome: vm.outcome,
            seconds: Math.round(vm.seconds * 10) / 10,
            log: relative(p.buildDir, r.vm.serialLog),
            images: r.tested,
            ...(earlier.length ? { 'failed-attempts': earlier } : {}),
          };
          ctx.log.info(
            `${r.case.id}: ${result.result} (${vm.outcome}, ${result.seconds} s${earlier.length ? `; ${rerunNote(earlier)}` : ''})`,
            p.arch,
          );
          outcomes.push({ arch: p.arch, id: r.case.id, result, vm });
        }),
      ),
    ),
  );
  for (const p of plans) {
    const metaFile = join(p.buildDir, 'meta.json');
    const mine = Object.fromEntries(
      outcomes.filter((o) => o.arch === p.arch).map((o) => [o.id, o.result] as const),
    );
    // Read and written under the record's lock, so what another command wrote meanwhile is kept.
    await updateMeta(metaFile, (meta) => recordResults(meta, mine));
    rmSync(p.workDir, { recursive: true, force: true });
    try {
      rmdirSync(dirname(p.workDir)); // the shared parent, once empty
    } catch {}
  }
  const failed = outcomes.filter((o) => o.result.result === 'fail');
  if (failed.length)
    throw new PipelineError(
      failed
        .map(
          (f) =>
            `boot test ${f.arch} ${f.id} failed${f.result['failed-attempts'] ? `, as did ${f.result['failed-attempts'].length} earlier attempt(s) (${f.result['failed-attempts'].map((a) => a.log).join(', ')})` : ''} (${f.vm.failure ? `'${f.vm.failure}' on the console` : f.vm.outcome} after ${f.result.seconds} s; no '${plans.find((p) => p.arch === f.arch)?.plan.runs.find((r) => r.case.id === f.id)?.vm.marker}' on the console). Console (${f.result.log}), ${consoleReport(f.vm.log)}`,
        )
        .join('\n\n'),
    );
  return outcomes;
}
