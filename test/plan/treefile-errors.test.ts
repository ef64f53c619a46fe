// Every malformed tree in test/fixtures/treefile/bad gets a precise error: file, line, rule.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../pipeline/errors.ts';
import { flattenTreefile } from '../../pipeline/plan/treefile.ts';

const bad = fileURLToPath(new URL('../fixtures/treefile/bad/', import.meta.url));
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

// case -> [file, line, col, rule, message fragment]
const cases: Record<string, [string, number, number | undefined, string, string]> = {
  cycle: ['b.yaml', 3, 5, 'include-cycle', 'include cycle: a.yaml -> b.yaml -> a.yaml'],
  missing: ['manifest.yaml', 4, 5, 'include-missing', 'nothere.yaml does not exist'],
  'unknown-key': [
    'base.yaml',
    2,
    1,
    'unknown-key',
    "unknown treefile key 'recommend' (did you mean 'recommends'?)",
  ],
  'type-bool': ['manifest.yaml', 3, 10, 'type', 'must be a boolean'],
  'type-packages': ['manifest.yaml', 4, 5, 'type', 'must be a string'],
  'bad-operator': [
    'manifest.yaml',
    4,
    9,
    'condition-operator',
    'expected one of ==, !=, >, >=, <, <= but got =~',
  ],
  'bad-condition': ['manifest.yaml', 4, 9, 'condition-syntax', 'invalid condition: stream == next'],
  'undefined-var-condition': ['base.yaml', 4, 9, 'undefined-variable', "undefined variable 'prod'"],
  'type-mismatch': [
    'manifest.yaml',
    3,
    9,
    'condition-type',
    'releasever (string "41") is not the same type as 41',
  ],
  'ordered-string': ['manifest.yaml', 4, 9, 'condition-operator', 'only numbers are ordered'],
  'undefined-var-subst': ['base.yaml', 2, 6, 'undefined-variable', "undefined variable 'strem' in ref"],
  'reserved-var': ['manifest.yaml', 3, 3, 'reserved-variable', "cannot define reserved variable 'basearch'"],
  'duplicate-include': [
    'b.yaml',
    1,
    10,
    'include-duplicate',
    'common.yaml was already included (from a.yaml:1:10)',
  ],
  'arch-packages-type': ['manifest.yaml', 2, 18, 'type', 'must be a list'],
  'inline-include': [
    'manifest.yaml',
    6,
    7,
    'inline-unsupported',
    "'include' is ignored by rpm-ostree inside an inline treefile",
  ],
  'legacy-and-new': ['manifest.yaml', 2, 1, 'legacy-key', 'cannot use new and legacy forms of boot-location'],
  'yaml-syntax': ['a.yaml', 2, 1, 'yaml-syntax', ''],
  'postprocess-script-missing': ['sub/tweaks.yaml', 1, 21, 'file-missing', 'sub/fixup.sh does not exist'],
  'unterminated-quote': ['manifest.yaml', 2, 5, 'package-quote', "missing terminating quote: 'podman >= 4.1"],
  'cross-arch': [
    'manifest.yaml',
    1,
    11,
    'basearch',
    'invalid basearch aarch64 on x86_64: cross-composes are not supported',
  ],
  'derive-key': ['manifest.yaml', 2, 1, 'derive-only', "'override-remove' is a client-side derivation key"],
  'schema-deep': ['base.yaml', 6, 18, 'type', 'must be an integer'],
};

for (const [name, [file, line, col, rule, fragment]] of Object.entries(cases)) {
  test(`bad/${name}: ${rule} at ${file}:${line}`, () => {
    let err: unknown;
    try {
      flattenTreefile({ file: join(bad, name, 'manifest.yaml'), basearch: 'x86_64', read });
    } catch (e) {
      err = e;
    }
    assert.instance(err, ConfigError, `${name} must fail`);
    const issue = (err as ConfigError).issues[0]!;
    assert.is(issue.rule, rule);
    assert.is(issue.file, file);
    assert.is(issue.line, line);
    if (col !== undefined) assert.is(issue.col, col);
    assert.ok(issue.message.includes(fragment), `message: ${issue.message}`);
  });
}

test('errors below the root carry the include chain with positions', () => {
  try {
    flattenTreefile({
      file: join(bad, 'undefined-var-condition', 'manifest.yaml'),
      basearch: 'x86_64',
      read,
    });
    assert.unreachable();
  } catch (e) {
    const msg = (e as ConfigError).issues[0]!.message;
    assert.ok(msg.endsWith('[include chain: manifest.yaml:3:10 -> base.yaml]'), msg);
    assert.match((e as ConfigError).message, 'base.yaml:4:9: undefined-variable');
  }
});

test('schema errors deep inside an included file: each at its file:line:col, with the include chain', () => {
  let issues: ConfigError['issues'] = [];
  try {
    flattenTreefile({ file: join(bad, 'schema-deep', 'manifest.yaml'), basearch: 'x86_64', read });
  } catch (e) {
    issues = (e as ConfigError).issues;
  }
  const shown = issues.map((i) => `${i.file}:${i.line}:${i.col} ${i.rule} ${i.path}`);
  assert.equal(shown, [
    'base.yaml:6:18 type /check-passwd/entries/core/1',
    'base.yaml:12:9 type /conditional-include/1/if/1',
  ]);
  assert.match(issues[1]!.message, /^must be a string \[include chain: manifest\.yaml:2:10 -> base\.yaml\]$/);
});

test('the fixtures directory has a case for every expectation', () => {
  for (const name of Object.keys(cases)) assert.ok(existsSync(join(bad, name, 'manifest.yaml')), name);
});

test.run();
