// The shape every subcommand module has. Commands are glue: they read the world through the
// context, call pure planning, then the executors. The CLI is the only place that builds a context.
import type { ParseArgsConfig } from 'node:util';
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

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

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
