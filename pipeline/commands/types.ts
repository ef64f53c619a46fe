// The shape every subcommand module has. Commands are glue: they read the world through the
// context, call pure planning, then the executors. The CLI is the only place that builds a context.
import type { ParseArgsConfig } from 'node:util';
import { ARCHES, type Arch, isArch } from '../arch.ts';
import type { Runner } from '../exec/run.ts';
import type { Logger } from '../log.ts';

export interface Context {
  /** Project root: where manifests/, overlays/ and containerfiles/ live. */
  root: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Milliseconds since the epoch; the only clock commands may read. */
  now: () => number;
  log: Logger;
  run: Runner;
  /** Machine-readable output (plans, JSON); human progress goes to the logger. */
  stdout: { write(s: string): unknown };
  /** Number of CPU cores, for concurrency limits. */
  cores: number;
}

/**
 * One option as node:util parseArgs takes it, plus what its value must be, checked once by the
 * CLI before the command runs (every problem listed, exit 64, never a stack trace):
 * `int`, a whole number in [min, max]; `url`, an http(s) URL; `arches`, arches separated by commas.
 */
export type OptionDef = NonNullable<ParseArgsConfig['options']>[string] & {
  int?: { min: number; max?: number };
  url?: true;
  arches?: true;
};
export type OptionSpec = Record<string, OptionDef>;

type Values = Record<string, string | boolean | string[] | undefined>;

/** Problems with the given option values, as `--name must ... (got 'value')`. */
export function optionProblems(spec: OptionSpec, values: Values): string[] {
  const out: string[] = [];
  for (const [name, def] of Object.entries(spec)) {
    const given = values[name];
    if (given === undefined || typeof given === 'boolean') continue;
    for (const v of Array.isArray(given) ? given : [given]) {
      if (def.int) {
        const { min, max } = def.int;
        const n = /^-?\d+$/.test(v) ? Number(v) : Number.NaN;
        if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max))
          out.push(
            `--${name} must be a whole number ${max === undefined ? `>= ${min}` : `from ${min} to ${max}`} (got '${v}')`,
          );
      }
      if (def.url && !/^https?:\/\/[^/\s]+/.test(v))
        out.push(`--${name} must be an http(s) URL (got '${v}')`);
      if (def.arches)
        for (const a of splitList(v))
          if (!isArch(a)) out.push(`--${name}: unknown arch '${a}' (${ARCHES.join(', ')})`);
    }
  }
  return out;
}

/** An `int` option's value (checked by the CLI), or undefined when not given. */
export function intOption(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name];
  return typeof v === 'string' ? Number(v) : undefined;
}

const splitList = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** A comma-separated option's items (repeatable options: of every value), or undefined. */
export function listOption(values: Record<string, unknown>, name: string): string[] | undefined {
  const v = values[name];
  const given = typeof v === 'string' ? [v] : Array.isArray(v) ? (v as string[]) : undefined;
  return given?.flatMap(splitList);
}

/**
 * An `arches` option's arches (checked by the CLI), in the order given without repeats, or
 * undefined when not given. A repeatable option may also list arches in each value.
 */
export function archesOption(values: Record<string, unknown>, name: string): Arch[] | undefined {
  const given = listOption(values, name);
  return given && [...new Set(given)].filter(isArch);
}

/** The spec as parseArgs takes it (without our checks). */
export function parseArgsOptions(spec: OptionSpec): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(
    Object.entries(spec).map(([k, { int: _i, url: _u, arches: _a, ...rest }]) => [k, rest]),
  );
}

export interface Command {
  name: string;
  summary: string;
  /** Usage text shown by `--help`, listing every option with its default. */
  usage: string;
  options: OptionSpec;
  /** Whether positional arguments are accepted. Default false. */
  positionals?: boolean;
  run(
    ctx: Context,
    values: Record<string, string | boolean | string[] | undefined>,
    positionals: string[],
  ): Promise<number>;
}
