#!/usr/bin/env node
// Test entry (`npm test [-- PATTERN]`): loads every test/**/*.test.ts into one uvu run, then
// prints the totals as one line, `N passed, N failed`, which CI reads.
// The sensor-OS suites (test/sensor/: QEMU boots of minutes each, one vCPU) run in a second
// process beside the others, so the two cores are both busy; their output is printed, and their
// totals added, when both are done.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = fileURLToPath(new URL('.', import.meta.url));
const pattern = process.argv[2] ? new RegExp(process.argv[2]) : null;

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'golden' ? [] : walk(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

const only = process.argv[2] === '--files' ? new Set(process.argv.slice(3)) : null;
let files = walk(root)
  .filter((f) => (only ? only.has(relative(root, f)) : !pattern || pattern.test(relative(root, f))))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${pattern}`);
  process.exit(1);
}

// The upstream suites (upstream-*.test.ts) read the cited lines and trees of upstream
// repositories at their commits: from git mirrors (ROCK_UPSTREAM_GIT) or GitHub, which CI's
// machines may not reach; they run when ROCK_UPSTREAM_GIT is set or ROCK_TEST_UPSTREAM=1
// (network), and the run says so when they do not.
const isUpstream = (f) => /(^|\/)upstream-[^/]*\.test\.ts$/.test(relative(root, f));
if (!process.env.ROCK_UPSTREAM_GIT && process.env.ROCK_TEST_UPSTREAM !== '1' && files.some(isUpstream)) {
  for (const f of files.filter(isUpstream))
    console.log(
      `${relative(root, f)}: not in this run (ROCK_UPSTREAM_GIT=<git mirrors> or ROCK_TEST_UPSTREAM=1 with access to GitHub runs it)`,
    );
  files = files.filter((f) => !isUpstream(f));
}
// The aarch64 sensor OS (base, build and boot under qemu-user and TCG: about 40 minutes of one
// core) does not fit beside the rest in CI's hour on two cores; it runs when asked for, as
// GitHub's CI does in its own job (.github/workflows/ci.yml).
const AARCH64_SENSOR = 'sensor/on-aarch64.test.ts';
if (process.env.ROCK_TEST_SENSOR_AARCH64 !== '1' && files.some((f) => relative(root, f) === AARCH64_SENSOR)) {
  files = files.filter((f) => relative(root, f) !== AARCH64_SENSOR);
  console.log(`${AARCH64_SENSOR}: not in this run (ROCK_TEST_SENSOR_AARCH64=1 runs it; about 40 minutes)`);
  if (files.length === 0) process.exit(1);
}

const sensorFiles = files.filter((f) => relative(root, f).startsWith('sensor/'));
let beside;
if (!only && sensorFiles.length > 0 && sensorFiles.length < files.length) {
  files = files.filter((f) => !sensorFiles.includes(f));
  const logDir = join(root, '..', '.cache', 'sensor');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'suites.log');
  console.log(`sensor-OS suites run beside the others; their output: ${logFile}`);
  const log = createWriteStream(logFile);
  // Its own process group, so that a shard over its budget goes with its QEMUs and builds.
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), '--files', ...sensorFiles.map((f) => relative(root, f))],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const group = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // gone
    }
  };
  process.once('exit', () => group('SIGKILL'));
  // A wall-clock budget (minutes; ROCK_TEST_SENSOR_BUDGET): past it the shard is stopped and
  // counts as failed, so that a hung boot fails the run with its log instead of outlasting CI.
  const budget = Number(process.env.ROCK_TEST_SENSOR_BUDGET ?? 70);
  let overBudget = false;
  const timer = setTimeout(() => {
    overBudget = true;
    log.write(`\nsensor-OS suites stopped: over their budget of ${budget} minutes\n`);
    group('SIGTERM');
    setTimeout(() => group('SIGKILL'), 15_000).unref();
  }, budget * 60_000);
  // Whatever the shard left in its process group (a registry, a QEMU) goes when it ends, so
  // that its output pipe closes.
  child.on('exit', () => group('SIGKILL'));
  beside = new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      log.end(() => resolve({ code, overBudget, text: readFileSync(logFile, 'utf8') }));
    }),
  );
}
// In the sensor shard: a stop runs the exit handlers (they kill background builds and servers).
if (only) process.once('SIGTERM', () => process.exit(143));

// uvu prints its totals to stdout; keep a copy to turn them into the closing line.
let captured = '';
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  captured += String(chunk);
  if (captured.length > 1_000_000) captured = captured.slice(-100_000);
  return write(chunk, ...rest);
};

globalThis.UVU_DEFER = 1;
globalThis.UVU_QUEUE = [];
const uvu = await import('uvu');
// uvu drops an error thrown by a before/after hook (its runner returns from a finally block), so a
// suite whose fixture failed printed only "(0 / N)". Print the error before passing it on.
for (const kind of ['before', 'after']) {
  const add = uvu.test[kind];
  const wrapped = (fn) =>
    add(async (state) => {
      try {
        await fn(state);
      } catch (err) {
        console.log(`\n  ${kind} hook failed: ${err?.stack ?? err}`);
        throw err;
      }
    });
  wrapped.each = add.each;
  uvu.test[kind] = wrapped;
}
let idx = 0;
for (const file of files) {
  globalThis.UVU_INDEX = idx++;
  globalThis.UVU_QUEUE.push([relative(root, file)]);
  await import(pathToFileURL(file).href);
}
await uvu.exec(false);

// biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colours
const plain = captured.replace(/\x1b\[[0-9;]*m/g, '');
const num = (label) => Number(plain.match(new RegExp(`${label}:\\s+(\\d+)`))?.[1] ?? 0);
const total = num('Total');
const passed = num('Passed');
const skipped = num('Skipped');
let failed = total - passed - skipped;
let allPassed = passed;
process.stdout.write = write;
if (beside) {
  const { code, overBudget, text } = await beside;
  console.log(`\n--- sensor-OS suites (run beside the others) ---\n${text}`);
  const last = /^(\d+) passed, (\d+) failed/m.exec(text.trim().split('\n').pop() ?? '');
  if (last) {
    allPassed += Number(last[1]);
    failed += Number(last[2]);
  }
  // A shard that died without its totals counts as a failure.
  if (!last || overBudget || (code !== 0 && Number(last[2]) === 0)) failed += 1;
}
console.log(`${allPassed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
// Exit now: servers the suites share until the end (the sensor world's registry) keep the event
// loop alive, and their exit handlers stop them.
process.exit(failed > 0 || allPassed + failed === 0 ? 1 : 0);
