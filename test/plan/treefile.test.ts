// biome-ignore-all lint/suspicious/noTemplateCurlyInString: treefile variables are literal ${...}
// Flattening semantics, case by case, against rpm-ostree's rules (rust/src/treefile.rs).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import schema from '../../pipeline/config/schema/treefile.schema.json' with { type: 'json' };
import { ConfigError } from '../../pipeline/errors.ts';
import {
  evaluateCondition,
  flattenTreefile,
  legacyKeys,
  parseCondition,
  splitPackages,
  treefileKeys,
  type VarValue,
} from '../../pipeline/plan/treefile.ts';

/** A fixture tree in memory: relative path -> YAML text. */
function flat(files: Record<string, string>, basearch = 'x86_64', variables?: Record<string, VarValue>) {
  const read = (p: string) => files[p.replace(/^\/t\//, '')];
  return flattenTreefile({ file: '/t/manifest.yaml', basearch, read, variables });
}
function fails(files: Record<string, string>, basearch = 'x86_64') {
  try {
    flat(files, basearch);
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as ConfigError).issues;
  }
  throw new assert.Assertion({
    message: 'expected a ConfigError',
    operator: 'throws',
    expects: 'ConfigError',
    actual: 'none',
  });
}

test('include: scalars of the including file win; first include beats later ones', () => {
  const r = flat({
    'manifest.yaml': 'ref: top\ninclude: [a.yaml, b.yaml]\n',
    'a.yaml': 'ref: from-a\nselinux: false\n',
    'b.yaml': 'selinux: true\ndefault-target: multi-user.target\n',
  });
  assert.is(r.treefile.ref, 'top');
  assert.is(r.treefile.selinux, false);
  assert.is(r.treefile['default-target'], 'multi-user.target');
});

test('include: lists concatenate, later includes first, the including file last (postprocess order)', () => {
  const r = flat({
    'manifest.yaml': 'include: [kernel.yaml, bootupd.yaml]\npostprocess: [foo]\nrepos: [r0]\n',
    'kernel.yaml': 'postprocess: [bar]\nrepos: [r1]\n',
    'bootupd.yaml': 'postprocess: [baz]\nrepos: [r2]\n',
  });
  assert.equal(r.treefile.postprocess, ['baz', 'bar', 'foo']);
  assert.equal(r.treefile.repos, ['r2', 'r1', 'r0']);
});

test('include: a single string or a list; nested includes resolve relative to the including file', () => {
  const r = flat({
    'manifest.yaml': 'include: sub/a.yaml\n',
    'sub/a.yaml': 'include: [b.yaml]\npackages: [a]\n',
    'sub/b.yaml': 'packages: [b]\n',
  });
  assert.equal(r.treefile.packages, ['a', 'b']);
  assert.equal(r.files, ['/t/manifest.yaml', '/t/sub/a.yaml', '/t/sub/b.yaml']);
});

test('packages: a sorted set; entries split on whitespace unless single-quoted', () => {
  const r = flat({
    'manifest.yaml': "include: a.yaml\npackages: [zsh, 'nano nano-default-editor', \"'podman >= 4.1'\"]\n",
    'a.yaml': 'packages: [zsh, bash]\n',
  });
  assert.equal(r.treefile.packages, ['bash', 'nano', 'nano-default-editor', 'podman >= 4.1', 'zsh']);
  assert.equal(splitPackages("a 'b >= 1' c"), ['a', 'b >= 1', 'c']);
  assert.is(splitPackages("'open"), null);
});

test('packages-<arch>: only the compose arch is folded into packages', () => {
  const files = {
    'manifest.yaml':
      'packages: [kernel]\npackages-x86_64: [grub2 shim]\npackages-aarch64: [grub2-efi-aa64]\npackages-s390x: [zipl]\n',
  };
  assert.equal(flat(files).treefile.packages, ['grub2', 'kernel', 'shim']);
  assert.equal(flat(files, 'aarch64').treefile.packages, ['grub2-efi-aa64', 'kernel']);
  assert.not.ok('packages-x86_64' in flat(files).treefile);
});

test('arch-include: string or list per basearch, processed after include', () => {
  const files = {
    'manifest.yaml':
      'include: base.yaml\narch-include:\n  x86_64: x.yaml\n  aarch64: [a1.yaml, a2.yaml]\nunits: [m]\n',
    'base.yaml': 'units: [base]\n',
    'x.yaml': 'units: [x]\n',
    'a1.yaml': 'units: [a1]\n',
    'a2.yaml': 'units: [a2]\n',
  };
  assert.equal(flat(files).treefile.units, ['x', 'base', 'm']);
  assert.equal(flat(files, 'aarch64').treefile.units, ['a2', 'a1', 'base', 'm']);
});

test('conditional-include: ==, !=, <, <=, >, >= on numbers, bools and strings; lists need all', () => {
  const files = {
    'manifest.yaml': [
      'variables: {stream: next, prod: false, level: 3}',
      'releasever: 41',
      'conditional-include:',
      '  - {if: prod == false, include: dev.yaml}',
      '  - {if: stream != "stable", include: notstable.yaml}',
      '  - {if: releasever >= 41, include: f41.yaml}',
      '  - {if: releasever < 41, include: f40.yaml}',
      '  - {if: [level > 2, level <= 3, basearch == "x86_64"], include: [l1.yaml, l2.yaml]}',
      '  - {if: [level > 2, stream == "stable"], include: never.yaml}',
      '',
    ].join('\n'),
    'dev.yaml': 'packages: [dev]\n',
    'notstable.yaml': 'packages: [notstable]\n',
    'f41.yaml': 'packages: [f41]\n',
    'f40.yaml': 'packages: [f40]\n',
    'l1.yaml': 'packages: [l1]\n',
    'l2.yaml': 'packages: [l2]\n',
  };
  assert.equal(flat(files).treefile.packages, ['dev', 'f41', 'l1', 'l2', 'notstable']);
  assert.equal(flat(files, 'aarch64').treefile.packages, ['dev', 'f41', 'notstable']);
});

test('conditional-include: an inline treefile merges before file includes, the file still wins', () => {
  const r = flat({
    'manifest.yaml': [
      'variables: {prod: true}',
      'include: base.yaml',
      'selinux: true',
      'conditional-include:',
      '  - if: prod == true',
      '    include:',
      '      packages: [inline-pkg]',
      '      selinux: false',
      '      default-target: graphical.target',
      '      postprocess: [inline]',
      'postprocess: [top]',
      '',
    ].join('\n'),
    'base.yaml': 'default-target: multi-user.target\npostprocess: [base]\n',
  });
  assert.equal(r.treefile.packages, ['inline-pkg']);
  assert.is(r.treefile.selinux, true);
  assert.is(r.treefile['default-target'], 'graphical.target');
  assert.equal(r.treefile.postprocess, ['base', 'inline', 'top']);
});

test('variables: the including file and the caller win; conditions see only what is known so far', () => {
  const files = {
    'manifest.yaml': 'variables: {stream: testing}\ninclude: [vars.yaml, uses.yaml]\n',
    'vars.yaml': 'variables: {stream: ignored, extra: true}\n',
    'uses.yaml':
      'conditional-include:\n  - {if: extra == true, include: extra.yaml}\n  - {if: stream == "testing", include: testing.yaml}\n',
    'extra.yaml': 'packages: [extra]\n',
    'testing.yaml': 'packages: [testing]\n',
  };
  const r = flat(files);
  assert.equal(r.treefile.packages, ['extra', 'testing']);
  assert.equal(r.variables, { basearch: 'x86_64', extra: true, stream: 'testing' });
  // A caller's variables behave like a wrapper treefile's: they win over every file.
  assert.equal(flat(files, 'x86_64', { stream: 'stable' }).treefile.packages, ['extra']);
});

test('variables: releasever is mirrored into variables; basearch always is', () => {
  const r = flat({ 'manifest.yaml': 'releasever: 41\nref: os/${basearch}/${releasever}\n' }, 'aarch64');
  assert.equal(r.variables, { basearch: 'aarch64', releasever: 41 });
  assert.is(r.treefile.ref, 'os/aarch64/41');
});

test('substitution: ref, metadata and add-commit-metadata strings, versions; nothing else', () => {
  const r = flat({
    'manifest.yaml': [
      'variables: {stream: next, n: 7}',
      'include: a.yaml',
      'ref: rocknsm/${basearch}/${stream}',
      'automatic-version-prefix: "${n}.<date:%Y%m%d>"',
      'mutate-os-release: "${n}"',
      'add-commit-metadata: {rocknsm.stream: "${stream}", rocknsm.prod: false}',
      'metadata: {summary: "RockNSM ${stream}"}',
      "postprocess: ['echo ${HOME}']",
      '',
    ].join('\n'),
    'a.yaml': 'add-commit-metadata: {rocknsm.stream: lost, rocknsm.from-a: "${basearch}"}\n',
  });
  assert.is(r.treefile.ref, 'rocknsm/x86_64/next');
  assert.is(r.treefile['automatic-version-prefix'], '7.<date:%Y%m%d>');
  assert.is(r.treefile['mutate-os-release'], '7');
  assert.equal(r.treefile['add-commit-metadata'], {
    'rocknsm.from-a': 'x86_64',
    'rocknsm.prod': false,
    'rocknsm.stream': 'next',
  });
  assert.equal(r.treefile.metadata, { summary: 'RockNSM next' });
  assert.equal(r.treefile.postprocess, ['echo ${HOME}']);
});

test('merge kinds: sets union, container-cmd is a scalar, platform-module is not inherited', () => {
  const r = flat({
    'manifest.yaml': 'include: a.yaml\nignore-removed-users: [root]\ncontainer-cmd: [/bin/sh]\n',
    'a.yaml':
      'ignore-removed-users: [adm, root]\ncontainer-cmd: [/bin/bash, -l]\nplatform-module: platform:f41\n',
  });
  assert.equal(r.treefile['ignore-removed-users'], ['adm', 'root']);
  assert.equal(r.treefile['container-cmd'], ['/bin/sh']);
  assert.not.ok('platform-module' in r.treefile);
});

test('repo-packages: a package listed again later moves to the later repo', () => {
  const r = flat({
    'manifest.yaml': 'include: a.yaml\nrepo-packages: [{repo: pool, packages: [podman]}]\n',
    'a.yaml': 'repo-packages: [{repo: fedora, packages: [podman, skopeo]}]\n',
  });
  assert.equal(r.treefile['repo-packages'], [
    { repo: 'fedora', packages: ['skopeo'] },
    { repo: 'pool', packages: ['podman'] },
  ]);
});

test('legacy underscore keys are migrated; container: true and edition 2024 set defaults', () => {
  const r = flat({
    'manifest.yaml': 'gpg_key: ABCD\nboot_location: new\ninclude: c.yaml\n',
    'c.yaml': 'container: true\n',
  });
  assert.is(r.treefile['gpg-key'], 'ABCD');
  assert.is(r.treefile['boot-location'], 'new');
  assert.is(r.treefile.selinux, false);
  assert.equal(r.treefile['check-passwd'], { type: 'none' });
  const e = flat({ 'manifest.yaml': 'edition: "2024"\n' });
  assert.is(e.treefile['boot-location'], 'modules');
  assert.is(e.treefile['tmp-is-dir'], true);
});

test('JSON treefiles can be included; output keys follow rpm-ostree serialization order', () => {
  const r = flat({
    'manifest.yaml': 'recommends: false\nref: x\ninclude: base.json\n',
    'base.json': '{"packages": ["a"], "repos": ["fedora"]}',
  });
  assert.equal(Object.keys(r.treefile), ['packages', 'ref', 'basearch', 'repos', 'recommends']);
});

test('externals: postprocess-script, add-files and check-passwd resolve next to their file', () => {
  const r = flat({
    'manifest.yaml': 'include: sub/x.yaml\n',
    'sub/x.yaml':
      'postprocess-script: fix.sh\nadd-files: [[motd, /etc/motd]]\ncheck-passwd: {type: file, filename: passwd}\n',
    'sub/fix.sh': '#!/bin/sh\n',
    'sub/motd': 'hi\n',
    'sub/passwd': 'root:x:0:0::/root:/bin/bash\n',
  });
  assert.equal(
    r.externals.map((e) => `${e.role} ${e.path}`),
    ['postprocess-script /t/sub/fix.sh', 'add-files /t/sub/motd', 'check-passwd /t/sub/passwd'],
  );
});

test('conditions parse like rpm-ostree: quoted strings, digits, booleans; errors name the rule', () => {
  assert.equal(parseCondition('stream=="next"'), { variable: 'stream', op: '==', value: 'next' });
  assert.equal(parseCondition('  n >= 10 '), { variable: 'n', op: '>=', value: 10 });
  assert.equal((parseCondition('x == maybe') as { rule: string }).rule, 'condition-syntax');
  assert.equal((parseCondition('x === 1') as { rule: string }).rule, 'condition-operator');
  const vars = new Map<string, VarValue>([['b', true]]);
  assert.is(evaluateCondition('b != false', vars), true);
  assert.equal((evaluateCondition('b < true', vars) as { rule: string }).rule, 'condition-operator');
});

test('unknown keys list the known ones and suggest the dashed spelling', () => {
  const [i] = fails({ 'manifest.yaml': 'ref: x\nexclude_packages: [a]\n' });
  assert.is(i!.rule, 'unknown-key');
  assert.match(i!.message, "did you mean 'exclude-packages'?");
  assert.match(i!.message, 'known keys: add-commit-metadata, add-files,');
  assert.equal(
    fails({ 'manifest.yaml': 'toString: x\nconstructor: y\n' }).map((i) => i.rule),
    ['unknown-key', 'unknown-key'],
  );
});

test('schema: value types anywhere, inline treefiles of untaken conditions too, in YAML words', () => {
  const issues = fails({
    'manifest.yaml': [
      'variables: {prod: false, level: [1]}',
      'conditional-include:',
      '  - if: prod == true',
      '    include:',
      '      check-groups: {type: data, entries: {wheel: ten}}',
      '      rojig: {name: a, summary: b}',
      'check-passwd: {type: file}',
      'check-groups: {type: none, filename: group}',
      '',
    ].join('\n'),
  });
  assert.equal(
    issues.map((i) => `${i.line}:${i.col} ${i.rule} ${i.path}: ${i.message}`),
    [
      '1:33 type /variables/level: must be a boolean, an integer or a string',
      '5:51 type /conditional-include/0/include/check-groups/entries/wheel: must be an integer',
      "6:14 required /conditional-include/0/include/rojig: missing required key 'license'",
      "7:15 required /check-passwd: missing required key 'filename'",
      "8:28 additionalProperties /check-groups/filename: unknown key 'filename'",
    ],
  );
});

test('schema: serde aliases are accepted and printed by their variant name', () => {
  const r = flat({ 'manifest.yaml': 'opt-usrlocal: stateoverlay\nrpmdb: b-d-b\n' });
  assert.is(r.treefile['opt-usrlocal'], 'state-overlay');
  assert.is(r.treefile.rpmdb, 'bdb');
});

test('schema: describes exactly the keys treefile.ts merges, plus the legacy spellings', () => {
  const sorted = (a: string[]) => [...a].sort();
  assert.equal(
    sorted(Object.keys(schema.properties)),
    sorted([...Object.keys(treefileKeys), ...Object.keys(legacyKeys)]),
  );
});

// Citations of rpm-ostree read `<name> (rust/src/treefile.rs:<line> @d5ef5f0c)`, <name> being on
// that line. The lines are read from a git mirror when ROCK_UPSTREAM_GIT has one (as in
// test/artifacts/upstream-facts.test.ts); without it only the form is checked.
const RPM_OSTREE = 'd5ef5f0cb5ace53f40a8d92933cc87e69ad8c7f4';
const CITE = /([\w-]+) \(rust\/src\/treefile\.rs:(\d+) @d5ef5f0c\)/g;

test('every rpm-ostree citation in the schema and the treefile modules names what is on its line', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const mirror = join(process.env.ROCK_UPSTREAM_GIT ?? '', 'coreos+rpm-ostree', 'repo');
  const upstream =
    process.env.ROCK_UPSTREAM_GIT && existsSync(mirror)
      ? execFileSync('git', ['--git-dir', mirror, 'show', `${RPM_OSTREE}:rust/src/treefile.rs`], {
          encoding: 'utf8',
          maxBuffer: 64 << 20,
        }).split('\n')
      : undefined;
  // treefile.ts and the modules it was split into (treefile-keys, -check, -merge, -condition).
  const modules = readdirSync(join(root, 'pipeline/plan'))
    .filter((n) => /^treefile(-[a-z]+)?\.ts$/.test(n))
    .map((n) => `pipeline/plan/${n}`);
  assert.ok(modules.length >= 5, modules.join(', '));
  for (const f of ['pipeline/config/schema/treefile.schema.json', modules.join(' ')]) {
    // Comments wrap: join their lines first.
    const text = f
      .split(' ')
      .map((m) => readFileSync(join(root, m), 'utf8'))
      .join('\n')
      .replace(/\n\s*(\/\/|\*)\s*/g, ' ');
    const cites = [...text.matchAll(CITE)];
    assert.is(
      cites.length,
      [...text.matchAll(/treefile\.rs:\d/g)].length,
      `${f}: a citation of another form`,
    );
    assert.ok(cites.length >= 30, `${f}: ${cites.length} citations`);
    for (const [, name, line] of cites) {
      if (upstream)
        assert.ok(upstream[Number(line) - 1]?.includes(name!), `${f}: ${name} is not on line ${line}`);
    }
  }
});

test.run();
