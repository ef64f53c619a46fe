// The one process runner. Every external tool is called through it, so every command line is
// logged, failures carry the command and the tail of stderr, and tests can substitute a runner.
import type { Writable } from 'node:stream';
import { $ } from 'zx';
import { CommandError } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface RunOptions {
  cwd?: string;
  /** Added to (not replacing) the process environment. */
  env?: Record<string, string | undefined>;
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Writes the command's stdin as a stream instead (the runner ends it after). */
  feed?: (stdin: Writable) => Promise<void>;
  /** Return a non-zero exit instead of throwing. Default false. */
  allowFailure?: boolean;
  /** Stream output lines to the logger at debug level as they arrive. Default false. */
  stream?: boolean;
  /** Label for log lines, e.g. the arch of a concurrent build. */
  tag?: string;
  /** Aborting it kills the process (SIGTERM); the result then has exit code -1. */
  signal?: AbortSignal;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export type Runner = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/** Builds the runner used in production: zx underneath, one log event per command. */
export function createRunner(log: Logger): Runner {
  return async (cmd, args, opts = {}) => {
    const argv = [cmd, ...args];
    const started = Date.now();
    log.command(argv, opts.tag);
    const proc = $({
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      input: opts.input,
      signal: opts.signal,
      quiet: true,
      nothrow: true,
      verbose: false,
    })`${cmd} ${args}`;
    let fedError: unknown;
    if (opts.feed) {
      // A command that exits early breaks the pipe: its own exit status is the error to report.
      proc.stdin.on('error', () => undefined);
      try {
        await opts.feed(proc.stdin);
      } catch (e) {
        fedError = e;
      } finally {
        proc.stdin.end();
      }
    }
    if (opts.stream) {
      for await (const line of proc) log.debug(line, opts.tag);
    }
    const out = await proc;
    const result = { stdout: out.stdout, stderr: out.stderr, exitCode: out.exitCode ?? -1 };
    log.event({ event: 'command-done', argv, exitCode: result.exitCode, ms: Date.now() - started });
    if (result.exitCode !== 0 && !opts.allowFailure) {
      throw new CommandError(argv, out.exitCode, out.stderr || out.stdout);
    }
    if (fedError) throw fedError;
    return result;
  };
}
