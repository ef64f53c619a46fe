// .github/scripts/site-branch.sh against real git: a bare repository stands in for GitHub.
// First publish makes the orphan gh-pages branch; two streams publishing at once both land
// (the second push is rejected, rebased and pushed again); files over 95 MiB stay out.
import { existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { needTool, sh, shResult } from '../world/tools.ts';
import { loadWorkflow } from './load.ts';

const work = join(cacheDir, `site-branch-${process.pid}`);
const script = join(repoRoot, '.github/scripts/site-branch.sh');
const origin = join(work, 'origin.git');
const gitEnv = {
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.org',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.org',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

/** A runner's checkout of main (shallow, as actions/checkout makes it). */
function checkout(name: string): string {
  const dir = join(work, name);
  sh('git', ['clone', '--quiet', '--depth=1', `file://${origin}`, dir], { env: gitEnv });
  return dir;
}
const site = (cwd: string, ...args: string[]) => shResult('bash', [script, ...args], { cwd, env: gitEnv });
const show = (path: string) => sh('git', ['--git-dir', origin, 'show', `gh-pages:${path}`]);

test.before(() => {
  needTool('git');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  sh('git', ['init', '--quiet', '--bare', '--initial-branch=main', origin]);
  const seed = join(work, 'seed');
  sh('git', ['init', '--quiet', '--initial-branch=main', seed]);
  writeFileSync(join(seed, 'README.md'), 'main\n');
  sh('git', ['-C', seed, 'add', '.'], { env: gitEnv });
  sh('git', ['-C', seed, 'commit', '--quiet', '-m', 'main'], { env: gitEnv });
  sh('git', ['-C', seed, 'push', '--quiet', origin, 'main'], { env: gitEnv });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('first publish: an orphan gh-pages with only the site; big files left out with a warning', () => {
  const runner = checkout('run1');
  const c = site(runner, 'checkout', 'site');
  assert.is(c.code, 0, c.stderr);
  assert.not.ok(existsSync(join(runner, 'site', 'README.md')), 'main files must not be on the site');
  mkdirSync(join(runner, 'site/streams'), { recursive: true });
  writeFileSync(join(runner, 'site/streams/stable.json'), '{"stream":"stable"}\n');
  mkdirSync(join(runner, 'site/prod'), { recursive: true });
  const big = join(runner, 'site/prod/disk.raw.xz');
  writeFileSync(big, '');
  truncateSync(big, 96 * 1048576);
  const p = site(runner, 'push', 'site', 'stable 41.20261123.3.0');
  assert.is(p.code, 0, p.stderr);
  assert.match(p.stdout, /::warning::prod\/disk\.raw\.xz is over 95 MiB/);
  assert.is(show('streams/stable.json'), '{"stream":"stable"}\n');
  const files = sh('git', ['--git-dir', origin, 'ls-tree', '-r', '--name-only', 'gh-pages'])
    .trim()
    .split('\n');
  assert.equal(files.sort(), ['.gitignore', '.nojekyll', 'streams/stable.json']);
  // gh-pages shares no history with main.
  assert.is(sh('git', ['--git-dir', origin, 'rev-list', '--count', 'gh-pages']).trim(), '1');
  assert.is(shResult('git', ['--git-dir', origin, 'merge-base', 'main', 'gh-pages']).code, 1);
});

test('two streams publishing at once: the later push rebases and both land', () => {
  const a = checkout('run-testing');
  const b = checkout('run-next');
  for (const r of [a, b]) assert.is(site(r, 'checkout', 'site').code, 0);
  writeFileSync(join(a, 'site/streams/testing.json'), '{"stream":"testing"}\n');
  writeFileSync(join(b, 'site/streams/next.json'), '{"stream":"next"}\n');
  assert.is(site(a, 'push', 'site', 'testing 1').code, 0);
  const late = site(b, 'push', 'site', 'next 1');
  assert.is(late.code, 0, late.stderr);
  assert.match(late.stdout, /push rejected \(attempt 1\): rebasing/);
  assert.is(show('streams/testing.json'), '{"stream":"testing"}\n');
  assert.is(show('streams/next.json'), '{"stream":"next"}\n');
  assert.is(show('streams/stable.json'), '{"stream":"stable"}\n');
  const log = sh('git', ['--git-dir', origin, 'log', '--format=%s', 'gh-pages']).trim().split('\n');
  assert.equal(log, ['next 1', 'testing 1', 'stable 41.20261123.3.0']);
});

test('nothing changed: no commit; a bad command is a usage error', () => {
  const r = checkout('run-same');
  assert.is(site(r, 'checkout', 'site').code, 0);
  const before = sh('git', ['--git-dir', origin, 'rev-parse', 'gh-pages']);
  const p = site(r, 'push', 'site', 'same');
  assert.is(p.code, 0, p.stderr);
  assert.match(p.stdout, /site unchanged/);
  assert.is(sh('git', ['--git-dir', origin, 'rev-parse', 'gh-pages']), before);
  assert.is(site(r, 'publish', 'site').code, 64);
  assert.is(readFileSync(join(r, 'site/streams/stable.json'), 'utf8'), '{"stream":"stable"}\n');
});

test('before a promote, the files kept off the branch come back from the GitHub release', () => {
  // gh cannot talk to GitHub here: a stand-in records its argv and writes the asset it was asked for.
  const bin = join(work, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  const calls = join(work, 'gh-calls');
  writeFileSync(
    join(bin, 'gh'),
    `#!/bin/bash\nprintf '%s\\n' "$*" >>${calls}\nfor ((i = 1; i <= $#; i++)); do\n  case \${!i} in --pattern) j=$((i + 1)); p=\${!j} ;; --dir) j=$((i + 1)); d=\${!j} ;; esac\ndone\necho "asset $p" >"$d/$p"\n`,
    { mode: 0o755 },
  );
  const V = '41.20261123.2.0';
  const build = join(work, 'promote-out');
  const siteDir = join(work, 'promote-site');
  for (const arch of ['x86_64', 'aarch64']) {
    const images = {
      ostree: { path: `rocknsm-coreos-${V}-ostree.${arch}.ociarchive` },
      metal: { path: `rocknsm-coreos-${V}-metal.${arch}.raw.xz` },
      'ignition-default': { path: `rocknsm-coreos-${V}-default.ign` },
    };
    mkdirSync(join(build, 'builds', V, arch), { recursive: true });
    writeFileSync(join(build, 'builds', V, arch, 'meta.json'), JSON.stringify({ images }));
    const dest = join(siteDir, 'prod/streams/testing/builds', V, arch);
    mkdirSync(dest, { recursive: true });
    writeFileSync(join(dest, images['ignition-default'].path), '{}\n');
  }
  const step = loadWorkflow('release.yml').jobs.promote!.steps!.find((s) =>
    s.run?.includes('site-fill-from-release'),
  )!;
  assert.is(step.run, '.github/scripts/site-fill-from-release.sh "$FROM" "$VERSION" out site');
  const r = shResult(
    'bash',
    [join(repoRoot, '.github/scripts/site-fill-from-release.sh'), 'testing', V, build, siteDir],
    {
      env: { PATH: `${bin}:${process.env.PATH}` },
    },
  );
  assert.is(r.code, 0, r.stderr);
  const argv = readFileSync(calls, 'utf8').trim().split('\n').sort();
  const want = ['aarch64', 'x86_64'].flatMap((arch) =>
    ['ostree', 'metal'].map((kind) => {
      const file = `rocknsm-coreos-${V}-${kind}.${arch}.${kind === 'ostree' ? 'ociarchive' : 'raw.xz'}`;
      return `release download v${V} --pattern ${file} --dir ${join(siteDir, 'prod/streams/testing/builds', V, arch)}`;
    }),
  );
  assert.equal(argv, want.sort());
  const x = join(siteDir, 'prod/streams/testing/builds', V, 'x86_64');
  assert.is(
    readFileSync(join(x, `rocknsm-coreos-${V}-metal.x86_64.raw.xz`), 'utf8'),
    `asset rocknsm-coreos-${V}-metal.x86_64.raw.xz\n`,
  );
  assert.is(readFileSync(join(x, `rocknsm-coreos-${V}-default.ign`), 'utf8'), '{}\n');
  // The release tag is the one publish creates.
  assert.match(
    readFileSync(join(repoRoot, 'pipeline/commands/publish.ts'), 'utf8'),
    /tag: `v\$\{t\.version\}`/,
  );
});

test.run();
