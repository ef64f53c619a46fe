#!/usr/bin/env node
// Benchmark entry (`npm run bench [-- PATTERN]`): runs every test/bench/*.bench.ts in turn; each
// prints its figures as a table. Benchmarks measure; they never pass or fail on a timing.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const dir = fileURLToPath(new URL('.', import.meta.url));
const pattern = process.argv[2] ? new RegExp(process.argv[2]) : null;
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts') && (!pattern || pattern.test(f)))
  .sort();
if (files.length === 0) {
  console.error(`no benchmark matches ${pattern}`);
  process.exit(1);
}
for (const f of files) {
  const mod = await import(pathToFileURL(join(dir, f)).href);
  console.log(`\n# ${f.replace(/\.bench\.ts$/, '')}`);
  await mod.bench();
}
