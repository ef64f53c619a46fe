// Planning is pure (reference/style.md): modules under pipeline/plan/ read no files, run no
// tools, open no sockets, and read neither the clock nor the environment. The commands read the
// world and pass it in; this test keeps it that way.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from '../world/fcos-base.ts';

const planDir = join(repoRoot, 'pipeline/plan');
const FORBIDDEN: [RegExp, string][] = [
  [
    /from ['"](node:)?(fs|fs\/promises|child_process|net|http|https|dgram|worker_threads)['"]/,
    'an I/O module',
  ],
  [/from ['"]zx['"]/, 'zx'],
  [/from ['"]\.\.\/(exec|commands|publish\/apply|artifacts)\//, 'an executor'],
  [/\bimport\(/, 'a dynamic import'],
  [/\bDate\.now\(|new Date\(\)/, 'the clock'],
  [/\bprocess\.(env|cwd|argv|stdout|stderr|exit)\b/, 'the process'],
  [/\bMath\.random\(/, 'randomness'],
  [/\bfetch\(/, 'the network'],
];

/** Source without comments and string contents, so prose and messages cannot trip the rules. */
const code = (text: string) =>
  text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1')
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, '``');

test('no module under pipeline/plan/ does I/O, reads the clock or the environment', () => {
  const files = readdirSync(planDir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 10, `${files.length} plan modules`);
  const found: string[] = [];
  for (const f of files) {
    const text = code(readFileSync(join(planDir, f), 'utf8'));
    for (const [re, what] of FORBIDDEN) if (re.test(text)) found.push(`pipeline/plan/${f}: ${what} (${re})`);
  }
  assert.equal(found, []);
});

test('the rules catch what they are for', () => {
  const hit = (src: string) => FORBIDDEN.some(([re]) => re.test(code(src)));
  assert.ok(hit("import { readFileSync } from 'node:fs';"));
  assert.ok(hit("import { $ } from 'zx';"));
  assert.ok(hit("import { skopeo } from '../exec/skopeo.ts';"));
  assert.ok(hit('const t = Date.now();'));
  assert.ok(hit('const h = process.env.HOME;'));
  assert.not.ok(hit('// reads node:fs in the command, Date.now() there too'));
  assert.not.ok(hit('const msg = `run Date.now() in the command`;'));
  assert.not.ok(hit("import { createHash } from 'node:crypto';"));
});

test.run();
