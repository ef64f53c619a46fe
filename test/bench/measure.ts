// Measuring one command for the benchmarks: wall time, peak resident memory of the command's own
// process and of its whole process tree (polled from /proc, proc(5): VmRSS in
// /proc/<pid>/status, children in /proc/<pid>/task/<tid>/children), and peak scratch disk:
// the most the allocated blocks under the command's directory grew while it ran (walked every
// second; hard links once; filesystems mounted below it not walked; other work on this disk does
// not count).
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Measured {
  seconds: number;
  /** Peak VmRSS of the command's own process, bytes. */
  rssSelf: number;
  /** Peak sum of VmRSS over the process and its descendants, bytes. */
  rssTree: number;
  /** Peak growth of the bytes allocated under `disk` (a directory), bytes. */
  disk: number;
  stdout: string;
  stderr: string;
}

const MiB = 1024 * 1024;

function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`))
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' '))
        if (c.trim()) out.push(Number(c));
  } catch {
    // gone meanwhile
  }
  return out;
}

function treeRss(pid: number): number {
  let sum = rssOf(pid);
  for (const c of childrenOf(pid)) sum += treeRss(c);
  return sum;
}

/**
 * Allocated bytes under `dir` (st_blocks, so sparse files count what they hold), links not
 * followed, on `dir`'s own filesystem only: a filesystem mounted below it (a disk image's, loop
 * mounted) holds its blocks in the image file, which is counted already.
 */
function usedBytes(dir: string): number {
  let total = 0;
  const seen = new Set<number>();
  let dev: number;
  try {
    dev = lstatSync(dir).dev;
  } catch {
    return 0;
  }
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      try {
        const st = lstatSync(join(d, n));
        if (st.dev !== dev) continue;
        if (st.nlink > 1) {
          if (seen.has(st.ino)) continue;
          seen.add(st.ino);
        }
        total += st.blocks * 512;
        if (st.isDirectory()) walk(join(d, n));
      } catch {
        // removed meanwhile
      }
    }
  };
  walk(dir);
  return total;
}

/** Runs `cmd args` to its end, polling memory every 200 ms and disk every second; throws on a non-zero exit. */
export function measure(
  cmd: string,
  args: string[],
  opts: { disk: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const base = usedBytes(opts.disk);
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-64 * 1024);
    });
    let rssSelf = 0;
    let rssTree = 0;
    let disk = 0;
    let polls = 0;
    const poll = () => {
      if (child.pid === undefined) return;
      rssSelf = Math.max(rssSelf, rssOf(child.pid));
      rssTree = Math.max(rssTree, treeRss(child.pid));
      if (polls++ % 5 === 0) disk = Math.max(disk, usedBytes(opts.disk) - base);
    };
    const timer = setInterval(poll, 200);
    child.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0)
        reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}):\n${stderr.slice(-4000)}`));
      else resolve({ seconds, rssSelf, rssTree, disk, stdout, stderr });
    });
  });
}

/** A shell command line, measured (for the floors: the raw tools with their own redirections). */
export function measureSh(script: string, args: string[], disk: string): Promise<Measured> {
  return measure('sh', ['-c', script, 'sh', ...args], { disk });
}

export const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
export const secs = (s: number) => `${s.toFixed(1)} s`;

/** Step and command timings from a rock-image JSONL log (log.ts: step-end and command-done events). */
export function logTimings(file: string): { steps: Map<string, number>; commands: Map<string, number> } {
  const steps = new Map<string, number>();
  const commands = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as {
      event?: string;
      step?: string;
      tag?: string;
      ms?: number;
      argv?: string[];
    };
    if (e.event === 'step-end' && e.step) steps.set(e.step, (steps.get(e.step) ?? 0) + (e.ms ?? 0) / 1000);
    if (e.event === 'command-done' && e.argv) {
      const tool = e.argv[0] === 'chroot' ? `${e.argv[2]} (in image)` : e.argv[0]!;
      commands.set(tool, (commands.get(tool) ?? 0) + (e.ms ?? 0) / 1000);
    }
  }
  return { steps, commands };
}
