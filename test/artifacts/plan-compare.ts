// What the native backend's plan says runs, once a run's recorded run-time inputs are put in
// (native-plan.ts). Written here again, not taken from the pipeline, so that a mistake the plan
// and the executor share cannot hide: variants chosen by the recorded image facts, `${NAME}`
// replaced by its value, a list input giving one argument per element.
import * as assert from 'uvu/assert';

export interface PlanStep {
  stage: string;
  when?: string;
  argv?: string[];
  releases?: string;
  what?: string;
}
export interface ArchPlan {
  arch: string;
  inputs: { name: string; list?: boolean; when?: string }[];
  steps: PlanStep[];
}

/**
 * What the plan says runs, once the run's recorded values are put in: the steps of the variants
 * the recorded image facts choose; `${NAME}` replaced by its value, a list input giving one
 * argument per element. Written here again, not taken from the pipeline, so a shared mistake
 * cannot hide.
 */
export function planFor(
  steps: PlanStep[],
  values: Record<string, string | string[]>,
  /** A failed run: inputs it never got to stay as they are (the steps after the failure). */
  partial = false,
) {
  const ostree = values.IMAGE_OSTREE === 'yes';
  const grub = values.IMAGE_GRUB === 'yes';
  const holds: Record<string, boolean> = {
    'image-ostree': ostree,
    'host-ostree': !ostree,
    'image-grub': grub,
    'host-grub': !grub,
    'tool-root': ostree || grub,
  };
  const put = (arg: string): string[] => {
    const names = [...arg.matchAll(/\$\{([A-Z][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
    if (partial && names.some((n) => values[n] === undefined)) return [arg];
    for (const n of names) assert.ok(values[n] !== undefined, `input ${n} (in '${arg}') was recorded`);
    const list = names.find((n) => Array.isArray(values[n]));
    if (list) return (values[list] as string[]).map((v) => arg.replace(`\${${list}}`, v));
    return [names.reduce((a, n) => a.replaceAll(`\${${n}}`, values[n] as string), arg)];
  };
  const active = steps.filter((s) => s.when === undefined || holds[s.when]);
  assert.ok(
    steps.every((s) => s.when === undefined || s.when in holds),
    'every variant is one of the five',
  );
  return {
    active,
    commands: active.filter((s) => s.argv).map((s) => ({ step: s, argv: s.argv!.flatMap(put) })),
  };
}
