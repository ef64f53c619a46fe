// The CLI under GitHub Actions (GITHUB_ACTIONS=true), through the real bin: config errors become
// `::error file=..,line=..,col=..::` annotations with exit 65 and no step outputs written, each
// sequential stage is a `::group::`, and GITHUB_TOKEN / REGISTRY_PASSWORD never reach the log.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheDir, fcosBase, repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';

const work = join(cacheDir, `actions-mode-${process.pid}`);

function gha(args: string[], env: NodeJS.ProcessEnv = {}) {
  const outputs = join(work, 'github-output');
  writeFileSync(outputs, '');
  const r = shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], {
    cwd: work,
    env: { GITHUB_ACTIONS: 'true', GITHUB_OUTPUT: outputs, ...env },
  });
  return { ...r, outputs: readFileSync(outputs, 'utf8') };
}

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('a bad stream file: ::error with file, line and column; exit 65; no outputs written', () => {
  const project = join(work, 'project');
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  cpSync(
    join(repoRoot, 'test/fixtures/config/streams-bad/01-unknown-key.yaml'),
    join(project, 'manifests/streams/bad.yaml'),
  );
  const r = gha(['ci-plan', '--project', project, '--stream', 'bad']);
  assert.is(r.code, 65, r.stderr);
  assert.ok(
    r.stderr.includes(
      "::error file=manifests/streams/bad.yaml,line=8,col=1::additionalProperties at /colour: unknown key 'colour'",
    ),
    r.stderr,
  );
  assert.ok(r.stderr.includes('::error::configuration invalid: 1 problem(s); nothing was built'));
  assert.is(r.outputs, '');
  assert.is(r.stdout, '');
});

test("ci-plan refuses an artifact list the stream's backend cannot make, before pulling anything", () => {
  const project = join(work, 'project-isos');
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  writeFileSync(
    join(project, 'manifests/streams/isos.yaml'),
    readFileSync(join(repoRoot, 'manifests/streams/stable.yaml'), 'utf8')
      .replace(/^stream: stable$/m, 'stream: isos')
      .replace(/^artifacts: .*$/m, 'artifacts: [ostree, metal, live-iso]')
      .replace(/^artifact-backend: .*$/m, ''),
  );
  const r = gha(['ci-plan', '--project', project, '--stream', 'isos', '--output', join(work, 'isos')]);
  assert.is(r.code, 65, r.stderr);
  assert.match(
    r.stderr,
    /^::error file=manifests\/streams\/isos\.yaml::artifact-backend at \/artifacts: the native backend cannot make 'iso': /m,
  );
  assert.not.match(r.stderr, /resolve bases/);
  assert.is(r.outputs, '');
});

test('each sequential stage is a collapsible ::group::', () => {
  needTool('buildah');
  const r = gha([
    'ci-plan',
    '--stream',
    'stable',
    '--arch',
    'x86_64',
    '--base',
    `x86_64=${fcosBase('x86_64')}`,
    '--output',
    join(work, 'out'),
    '--storage',
    join(work, 'storage'),
  ]);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const open = lines.indexOf('::group::resolve bases');
  assert.ok(open >= 0, r.stderr);
  const close = lines.indexOf('::endgroup::', open);
  assert.ok(close > open);
  assert.match(lines[close - 1]!, /^✓ resolve bases \(\d+\.\ds\)$/);
  assert.match(r.outputs, /^changed=true$/m);
});

test('tokens and registry passwords are masked in every message', () => {
  const token = 'ghs_s3cr3tT0kenValue';
  const password = 'regPassw0rdValue';
  const r = gha(['summary', '--build', join(work, token, password)], {
    GITHUB_TOKEN: token,
    REGISTRY_PASSWORD: password,
  });
  assert.is(r.code, 64);
  assert.match(r.stderr, /^::error::.*\/\*\*\*\/\*\*\*\/builds\/builds\.json: not found/m);
  assert.not.ok(r.stderr.includes(token) || r.stderr.includes(password), r.stderr);
});

test.run();
