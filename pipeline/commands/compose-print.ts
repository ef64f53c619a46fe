// What `compose --print-only` and `plan --compose` print of a stream's planned compose
// (commands/compose-stream.ts): the flattened treefile and exact commands per arch, or as JSON the
// wrapper treefile and the flattened one; and `--check-print-only`, every difference between our
// flattening and what `rpm-ostree compose tree --print-only` printed.
import { UsageError } from '../errors.ts';
import { formatPlanCommands } from '../exec/rpm-ostree.ts';
import { IMAGE_LOCK_FILE } from '../plan/image-lock.ts';
import { compareTreefiles, formatDifferences } from '../plan/print-only-compare.ts';
import type { ArchPlan } from './compose-stream.ts';

/** What `rock-image plan --compose` and `compose --print-only` print: flattened treefile and commands per arch. */
export function formatComposePlan(plans: ArchPlan[]): string {
  return plans
    .map(
      (p) =>
        `# ${p.arch}: flattened treefile (rpm-ostree compose tree --print-only)\n` +
        `${JSON.stringify(p.flattened.treefile, null, 2)}\n` +
        `# ${p.arch}: variables ${JSON.stringify(p.flattened.variables)}\n` +
        `# ${p.arch}: input hash ${p.inputHash}\n` +
        `# ${p.arch}: wrapper ${p.plan.wrapper.path}\n${p.plan.wrapper.text}` +
        `# ${p.arch}: commands (${p.plan.request.mode} mode)\n${formatPlanCommands(p.plan)}` +
        (p.unlockedBuilder ? `# ${p.arch}: ${unlockedMessage(p.unlockedBuilder)}\n` : ''),
    )
    .join('\n');
}

/**
 * `--print-only --json`: per arch, the wrapper treefile a compose hands rpm-ostree (its path and
 * content) and the flattened treefile, so `rpm-ostree compose tree --print-only` can be run on
 * the very same wrapper and compared (`--check-print-only`).
 */
export function composePlanJson(plans: ArchPlan[]): string {
  const byArch = Object.fromEntries(
    plans.map((p) => [
      p.arch,
      {
        wrapper: { path: p.plan.wrapper.path, treefile: JSON.parse(p.plan.wrapper.text) as unknown },
        treefile: p.flattened.treefile,
      },
    ]),
  );
  return `${JSON.stringify(byArch, null, 2)}\n`;
}

/**
 * `--check-print-only FILE`: FILE is what `rpm-ostree compose tree --print-only WRAPPER` printed on
 * an `arch` host; every difference from our flattened treefile, with its JSON path.
 */
export function checkPrintOnly(plan: ArchPlan, rpmOstreeOutput: string, file: string): string {
  let theirs: unknown;
  try {
    theirs = JSON.parse(rpmOstreeOutput);
  } catch (err) {
    throw new UsageError(`${file}: not JSON (${(err as Error).message})`);
  }
  const diffs = compareTreefiles(plan.flattened.treefile, theirs);
  return diffs.length
    ? `${plan.arch}: ${diffs.length} difference(s) from rpm-ostree compose tree --print-only (${file}):\n${formatDifferences(diffs)}`
    : '';
}

export function unlockedMessage(ref: string): string {
  return `builder image ${ref} is a tag that ${IMAGE_LOCK_FILE} does not pin; a compose refuses to run it until 'rock-image compose --lock-builder' (registry access) records its digest`;
}
