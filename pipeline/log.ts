// Progress and logging. Three presentations of the same events: a live status line on a
// terminal, plain lines (with ::group:: and ::error:: annotations under GitHub Actions), and a
// JSON-lines log file that keeps everything, including each command line and its timing.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Location } from './errors.ts';

export type LogMode = 'tty' | 'plain' | 'github';

export interface Logger {
  info(msg: string, tag?: string): void;
  warn(msg: string, where?: Location): void;
  error(msg: string, where?: Location): void;
  debug(msg: string, tag?: string): void;
  command(argv: readonly string[], tag?: string): void;
  /** A structured event, written only to the JSON log. */
  event(data: Record<string, unknown>): void;
  /** Runs one named stage with progress shown; the tag names a concurrent lane (an arch). */
  step<T>(name: string, fn: () => Promise<T>, tag?: string): Promise<T>;
  /** Starts writing the JSON log to this file (events so far are flushed into it). */
  attachFile(path: string): void;
  readonly file: string | undefined;
}

export interface LoggerOptions {
  mode: LogMode;
  verbose?: boolean;
  /** Where human-readable output goes. Default process.stderr. */
  out?: { write(s: string): unknown };
  now?: () => number;
  /** Values never printed or logged (tokens, passwords). */
  secrets?: string[];
}

export function detectMode(env: NodeJS.ProcessEnv, isTTY: boolean): LogMode {
  if (env.GITHUB_ACTIONS === 'true') return 'github';
  return isTTY && env.TERM !== 'dumb' && !env.CI ? 'tty' : 'plain';
}

const spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function createLogger(opts: LoggerOptions): Logger {
  const out = opts.out ?? process.stderr;
  const now = opts.now ?? Date.now;
  const secrets = (opts.secrets ?? []).filter((s) => s.length >= 4);
  const pending: string[] = [];
  let file: string | undefined;
  const active = new Map<string, number>();
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  let statusShown = false;

  const mask = (s: string) => secrets.reduce((acc, secret) => acc.split(secret).join('***'), s);
  const json = (data: Record<string, unknown>) => {
    const line = mask(JSON.stringify({ ts: new Date(now()).toISOString(), ...data }));
    if (file) appendFileSync(file, `${line}\n`);
    else pending.push(line);
  };
  const clearStatus = () => {
    if (statusShown) out.write('\r\x1b[2K');
    statusShown = false;
  };
  const drawStatus = () => {
    if (opts.mode !== 'tty' || active.size === 0) return;
    const parts = [...active].map(([label, start]) => `${label} ${((now() - start) / 1000).toFixed(0)}s`);
    out.write(`\r\x1b[2K${spinner[frame++ % spinner.length]} ${parts.join(' | ')}`);
    statusShown = true;
  };
  const print = (line: string) => {
    clearStatus();
    out.write(`${mask(line)}\n`);
    drawStatus();
  };
  const label = (name: string, tag?: string) => (tag ? `[${tag}] ${name}` : name);
  const annotate = (kind: 'error' | 'warning', msg: string, where?: Location) => {
    if (opts.mode !== 'github')
      return print(`${kind}: ${where ? `${where.file}:${where.line ?? ''}: ` : ''}${msg}`);
    const props = where
      ? ` file=${where.file}${where.line ? `,line=${where.line}` : ''}${where.col ? `,col=${where.col}` : ''}`
      : '';
    print(`::${kind}${props}::${msg.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A')}`);
  };

  return {
    get file() {
      return file;
    },
    attachFile(path) {
      mkdirSync(dirname(path), { recursive: true });
      file = path;
      if (pending.length) appendFileSync(file, `${pending.splice(0).join('\n')}\n`);
    },
    info(msg, tag) {
      json({ level: 'info', msg, tag });
      print(tag ? `[${tag}] ${msg}` : msg);
    },
    warn(msg, where) {
      json({ level: 'warn', msg, ...where });
      annotate('warning', msg, where);
    },
    error(msg, where) {
      json({ level: 'error', msg, ...where });
      annotate('error', msg, where);
    },
    debug(msg, tag) {
      json({ level: 'debug', msg, tag });
      if (opts.verbose) print(tag ? `[${tag}] ${msg}` : msg);
    },
    command(argv, tag) {
      json({ level: 'debug', event: 'command', argv, tag });
      if (opts.verbose) print(`${tag ? `[${tag}] ` : ''}$ ${argv.join(' ')}`);
    },
    event(data) {
      json(data);
    },
    async step(name, fn, tag) {
      const key = label(name, tag);
      const start = now();
      json({ level: 'info', event: 'step-start', step: name, tag });
      // Groups cannot interleave in Actions logs, so only untagged (sequential) steps get one.
      if (opts.mode === 'github' && !tag) print(`::group::${name}`);
      else if (opts.mode !== 'tty') print(`==> ${key}`);
      active.set(key, start);
      if (opts.mode === 'tty' && !timer) {
        timer = setInterval(drawStatus, 120);
        timer.unref();
      }
      drawStatus();
      const finish = (ok: boolean) => {
        active.delete(key);
        if (active.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
        const secs = ((now() - start) / 1000).toFixed(1);
        json({ level: ok ? 'info' : 'error', event: 'step-end', step: name, tag, ok, ms: now() - start });
        print(`${ok ? '✓' : '✗'} ${key} (${secs}s)`);
        if (opts.mode === 'github' && !tag) print('::endgroup::');
      };
      try {
        const result = await fn();
        finish(true);
        return result;
      } catch (err) {
        finish(false);
        throw err;
      }
    },
  };
}
