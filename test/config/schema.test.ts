// Config validation: the real manifests pass; every fixture under test/fixtures/config/*-bad
// fails with exactly the rule and position its `# expect:` header names.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { ConfigError, formatIssue } from '../../pipeline/errors.ts';
import { repoRoot } from '../world/fcos-base.ts';

/** A scratch project: the real manifests and (empty) overlay dirs, with edits applied. */
function scratchProject(edit?: { stream?: string; image?: (s: string) => string }): string {
  const dir = mkdtempSync(join(tmpdir(), 'rock-config-'));
  cpSync(join(repoRoot, 'manifests/image.yaml'), join(dir, 'manifests/image.yaml'), { recursive: true });
  mkdirSync(join(dir, 'manifests/streams'), { recursive: true });
  cpSync(join(repoRoot, 'manifests/profiles'), join(dir, 'manifests/profiles'), { recursive: true });
  for (const o of ['05identity', '15host-guard', '20sensor-tools', '40services'])
    mkdirSync(join(dir, 'overlays', o), { recursive: true });
  if (edit?.image)
    writeFileSync(
      join(dir, 'manifests/image.yaml'),
      edit.image(readFileSync(join(dir, 'manifests/image.yaml'), 'utf8')),
    );
  writeFileSync(
    join(dir, 'manifests/streams/bad.yaml'),
    edit?.stream ?? 'stream: bad\nstream-number: 3\nbase: {image: quay.io/a/b, tag: x}\narches: [x86_64]\n',
  );
  return dir;
}

function issuesOf(dir: string): ConfigError {
  try {
    loadProject(projectPaths(dir));
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('the real manifests are valid and every stream resolves', () => {
  const project = loadProject(projectPaths(repoRoot));
  assert.equal([...project.streams.keys()].sort(), ['next', 'stable', 'testing']);
  for (const s of project.streams.keys()) {
    const cfg = resolveStream(project, s, repoRoot);
    assert.is(cfg.stream.composefs, 'true');
    assert.equal(cfg.stream.arches, ['x86_64', 'aarch64']);
    assert.is(cfg.services.length, 7);
  }
});

test('every manifest has a yaml-language-server $schema header', () => {
  const files = [
    'manifests/image.yaml',
    ...readdirSync(join(repoRoot, 'manifests/streams')).map((f) => `manifests/streams/${f}`),
  ];
  for (const f of files)
    assert.match(
      readFileSync(join(repoRoot, f), 'utf8').split('\n')[0]!,
      /^# yaml-language-server: \$schema=\.\.\/.*\.schema\.json$/,
      f,
    );
});

const badDir = join(repoRoot, 'test/fixtures/config/streams-bad');
const badFiles = readdirSync(badDir).sort();
test('at least 25 bad stream fixtures', () => assert.ok(badFiles.length >= 25, String(badFiles.length)));

for (const f of badFiles) {
  test(`bad stream ${f}`, () => {
    const text = readFileSync(join(badDir, f), 'utf8');
    const m = /^# expect: (\S+) (\d+):(\d*) ?(.*)$/m.exec(text);
    assert.ok(m, 'fixture has an # expect: header');
    const [, rule, line, col, words] = m!;
    const err = issuesOf(scratchProject({ stream: text }));
    const hit = err.issues.find(
      (i) => i.rule === rule && i.line === Number(line) && (!col || i.col === Number(col)),
    );
    assert.ok(hit, `expected ${rule} at ${line}:${col}, got:\n${err.issues.map(formatIssue).join('\n')}`);
    if (words) assert.ok(hit!.message.includes(words), `message '${hit!.message}' lacks '${words}'`);
    assert.match(formatIssue(hit!), /^manifests\/streams\/bad\.yaml:\d+:\d+: /);
  });
}

const imageCases: [string, (s: string) => string, string, string][] = [
  [
    'overlay listed but missing',
    (s) => s.replace('  - 40services', '  - 40services\n  - 99missing'),
    'overlay-exists',
    'overlays/99missing does not exist',
  ],
  [
    'data paths overlap',
    (s) =>
      s.replace(
        'data-paths:\n',
        'data-paths:\n  nested:\n    path: /var/lib/kafka/sub\n    purpose: nested\n',
      ),
    'data-path-unique',
    "overlaps data path 'kafka'",
  ],
  [
    'agent without unit',
    (s) => s.replace('    unit: vmtoolsd.service\n', ''),
    'required',
    "missing required key 'unit'",
  ],
  [
    'data path outside /var',
    (s) => s.replace('path: /var/lib/kafka', 'path: /srv/kafka'),
    'pattern',
    'must match pattern',
  ],
  [
    'unknown virtualization',
    (s) => s.replace('virtualization: [vmware]', 'virtualization: [virtualbox]'),
    'enum',
    'must be one of',
  ],
  [
    'Ignition base profile missing',
    (s) => s.replace('base-profile: default', 'base-profile: edge'),
    'profile-exists',
    'manifests/profiles/edge.yaml does not exist',
  ],
  [
    'published profile missing',
    (s) => s.replace('base-profile: default', 'base-profile: default\n  published-profiles: [default, tap]'),
    'profile-exists',
    'manifests/profiles/tap.yaml does not exist',
  ],
  ['unknown top-level key', (s) => `${s}extra: 1\n`, 'additionalProperties', "unknown key 'extra'"],
];
for (const [name, edit, rule, words] of imageCases) {
  test(`bad image.yaml: ${name}`, () => {
    const err = issuesOf(scratchProject({ image: edit }));
    const hit = err.issues.find((i) => i.rule === rule && i.message.includes(words));
    assert.ok(hit, `expected ${rule} '${words}', got:\n${err.issues.map(formatIssue).join('\n')}`);
    assert.is(hit!.file.endsWith('manifests/image.yaml'), true);
    assert.ok((hit!.line ?? 0) > 1, 'has a line');
  });
}

test('an overlay directory that is not listed is an error', () => {
  const dir = scratchProject();
  mkdirSync(join(dir, 'overlays/50stray'));
  const err = issuesOf(dir);
  assert.ok(err.issues.some((i) => i.rule === 'overlay-listed' && i.message.includes('overlays/50stray')));
});

test('all problems of all files are reported together', () => {
  const err = issuesOf(
    scratchProject({
      stream: 'stream: bad\nstream-number: 0\nbase: {image: quay.io/a/b, tag: x}\narches: [mips]\n',
      image: (s) => `${s}extra: 1\n`,
    }),
  );
  assert.ok(err.issues.length >= 3, err.message);
  assert.is(err.exitCode, 65);
});

test.run();
