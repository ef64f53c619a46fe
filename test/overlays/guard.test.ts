// The host-package guard (/etc/profile.d/rocknsm-host-guard.sh) in real shells: interactive
// bash and dash (POSIX sh) get the toolbox reminder from yum/dnf/dnf5 and a non-zero status;
// `\dnf` and `command dnf` reach the real program; scripts (non-interactive) are untouched.
// The "real" dnf/yum are stand-in scripts on PATH, since no package manager may run here.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';

const guard = join(repoRoot, 'overlays/15host-guard/etc/profile.d/rocknsm-host-guard.sh');
const work = mkdtempSync(join(tmpdir(), 'rock-guard-'));
const fakeBin = join(work, 'bin');
mkdirSync(fakeBin);
for (const name of ['dnf', 'yum', 'dnf5']) {
  writeFileSync(join(fakeBin, name), `#!/bin/sh\necho "REAL-${name} $*"\nexit 0\n`);
  chmodSync(join(fakeBin, name), 0o755);
}
const env = { PATH: `${fakeBin}:/usr/bin:/bin`, HOME: work, TERM: 'dumb', LC_ALL: 'C' };

/** An interactive bash that sources the guard as a login shell's profile.d would. */
function bashInteractive(commands: string) {
  return shResult(
    'env',
    [
      '-i',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      'bash',
      '--noprofile',
      '--rcfile',
      guard,
      '-i',
    ],
    {
      input: commands,
    },
  );
}
/** An interactive POSIX sh (dash), which reads $ENV at start-up. */
function dashInteractive(commands: string) {
  return shResult(
    'env',
    ['-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), `ENV=${guard}`, 'dash', '-i'],
    {
      input: commands,
    },
  );
}

test('the guard is valid POSIX sh (dash -n, bash -n, shellcheck -s sh)', () => {
  needTool('dash');
  needTool('shellcheck');
  assert.is(shResult('dash', ['-n', guard]).code, 0);
  assert.is(shResult('bash', ['-n', guard]).code, 0);
  const sc = shResult('shellcheck', ['-s', 'sh', '--severity=style', guard]);
  assert.is(sc.code, 0, sc.stdout);
});

test('interactive bash: yum, dnf and dnf5 print the toolbox reminder and fail', () => {
  for (const cmd of ['yum', 'dnf', 'dnf5']) {
    const r = bashInteractive(`${cmd} install htop\necho "status=$?"\n`);
    assert.match(r.stdout, /status=1/, `${cmd}: ${r.stdout}`);
    assert.not.ok(r.stdout.includes('REAL-'), `${cmd} must not run`);
    assert.match(r.stderr, /toolbox create && toolbox enter/);
    assert.match(r.stderr, /rpm-ostree install/);
    assert.ok(r.stderr.includes(`\\${cmd} ...`), `${cmd}: names its own bypass`);
  }
});

test('interactive bash: \\dnf and command dnf reach the real program with all arguments', () => {
  const r = bashInteractive('\\dnf install -y htop\necho "status=$?"\ncommand yum list\n\\dnf5 --version\n');
  assert.match(r.stdout, /REAL-dnf install -y htop\nstatus=0/);
  assert.match(r.stdout, /REAL-yum list/);
  assert.match(r.stdout, /REAL-dnf5 --version/);
  assert.not.ok(r.stderr.includes('toolbox create'));
});

test('interactive POSIX sh (dash): the same guard and bypass', () => {
  needTool('dash');
  const r = dashInteractive('dnf install htop\necho "status=$?"\n\\yum install htop\necho "status=$?"\n');
  assert.match(r.stderr, /toolbox create && toolbox enter/);
  assert.match(r.stdout, /status=1[\s\S]*REAL-yum install htop\n[\s\S]*status=0/);
});

test('non-interactive shells and ROCKNSM_NO_HOST_GUARD are left alone', () => {
  const script = shResult('env', ['-i', `PATH=${env.PATH}`, 'bash', '-c', `. ${guard}\ndnf install htop`]);
  assert.is(script.code, 0);
  assert.is(script.stdout, 'REAL-dnf install htop\n');
  const sh = shResult('env', ['-i', `PATH=${env.PATH}`, 'dash', '-c', `. ${guard}\nyum check-update`]);
  assert.is(sh.stdout, 'REAL-yum check-update\n');
  const optOut = shResult(
    'env',
    [
      '-i',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      'ROCKNSM_NO_HOST_GUARD=1',
      'bash',
      '--noprofile',
      '--rcfile',
      guard,
      '-i',
    ],
    { input: 'dnf upgrade\n' },
  );
  assert.match(optOut.stdout, /REAL-dnf upgrade/);
});

test.after(() => rmSync(work, { recursive: true, force: true }));

test.run();
