// Reads the GitHub Actions workflows as data for the workflow tests: jobs, steps, `run:` scripts
// and the `rock-image` command lines inside them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../world/fcos-base.ts';

export const workflowDir = join(repoRoot, '.github', 'workflows');

export interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}

export interface Job {
  'runs-on'?: string;
  'timeout-minutes'?: number;
  uses?: string;
  with?: Record<string, unknown>;
  secrets?: unknown;
  needs?: string | string[];
  if?: string;
  permissions?: Record<string, string> | string;
  strategy?: { matrix?: unknown; 'fail-fast'?: boolean };
  outputs?: Record<string, string>;
  env?: Record<string, string>;
  concurrency?: { group: string; 'cancel-in-progress'?: boolean } | string;
  steps?: Step[];
}

export interface Workflow {
  file: string;
  text: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string> | string;
  jobs: Record<string, Job>;
}

export function workflowFiles(): string[] {
  return readdirSync(workflowDir)
    .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
    .sort();
}

export function loadWorkflow(file: string): Workflow {
  const text = readFileSync(join(workflowDir, file), 'utf8');
  const doc = parse(text) as Omit<Workflow, 'file' | 'text'>;
  return { file, text, ...doc };
}

export const allWorkflows = () => workflowFiles().map(loadWorkflow);

/** One `rock-image` command line found in a `run:` script. */
export interface Invocation {
  where: string;
  command: string;
  args: string[];
}

/** Splits a shell word list (no expansion): quotes removed, `\`-newlines joined. */
export function shellWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: '"' | "'" | undefined;
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && s[i + 1] === '\n') i++;
    else if (/\s/.test(c)) {
      if (has || cur) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has || cur) words.push(cur);
  return words;
}

/**
 * Every `npx rock-image CMD ARGS` in a script, up to the end of that shell command. A
 * `"${NAME[@]}"` argument stands for every word the script ever puts in the bash array NAME
 * (`NAME=(...)`, `NAME+=(...)`), so optional flags added conditionally are checked too.
 */
export function rockImageInvocations(script: string, where: string): Invocation[] {
  const out: Invocation[] = [];
  const joined = script.replace(/\\\n/g, ' ');
  const arrays = new Map<string, string[]>();
  for (const m of joined.matchAll(/\b(\w+)\+?=\(([^)]*)\)/g))
    arrays.set(m[1]!, [...(arrays.get(m[1]!) ?? []), ...shellWords(m[2]!)]);
  for (const m of joined.matchAll(/npx rock-image\s+([^\n;&|']*)/g)) {
    const [command, ...words] = shellWords(m[1]!);
    const args = words.flatMap((w) => {
      const a = /^\$\{(\w+)\[@\]\}$/.exec(w);
      return a ? (arrays.get(a[1]!) ?? []) : [w];
    });
    if (command) out.push({ where, command, args });
  }
  return out;
}

/** Every step of every job, with a label for messages. */
export function allSteps(w: Workflow): { job: string; step: Step; where: string }[] {
  return Object.entries(w.jobs).flatMap(([job, j]) =>
    (j.steps ?? []).map((step, i) => ({ job, step, where: `${w.file} jobs.${job}.steps[${i}]` })),
  );
}

/** Replaces `${{ ... }}` expressions with a plain word, as actionlint does before shellcheck. */
export function withoutExpressions(script: string): string {
  return script.replace(/\$\{\{[^}]*\}\}/g, 'EXPR');
}
