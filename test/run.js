#!/usr/bin/env node
// Test entry (`npm test [-- PATTERN]`): loads every test/**/*.test.ts into one uvu run, then
// prints the totals as one line, `N passed, N failed`, which CI reads.
import { readdirSync } from 'node:fs';
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

const files = walk(root)
  .filter((f) => !pattern || pattern.test(relative(root, f)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${pattern}`);
  process.exit(1);
}

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
const failed = total - passed - skipped;
process.stdout.write = write;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (failed > 0 || total === 0) process.exitCode = 1;
