// The real rocknsm-purge-data and rocknsm-factory-reset scripts, run with --root against a
// sensor-shaped tree built in a temp directory: data paths with files and dotfiles, /etc
// differing from the pristine /usr/etc, machine state under /var. Nothing is faked: the
// scripts run with bash and coreutils/findutils exactly as on a sensor (only systemctl,
// mount and reboot are never reached, because --root is not the running system).
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';

const bin = join(repoRoot, 'overlays/20sensor-tools/usr/bin');
const purge = join(bin, 'rocknsm-purge-data');
const reset = join(bin, 'rocknsm-factory-reset');

const dataPaths: [string, string][] = [
  ['stenographer', '/var/lib/stenographer'],
  ['fsf', '/var/log/fsf'],
  ['suricata', '/var/log/suricata'],
  ['zeek-logs', '/var/log/bro'],
  ['zeek-spool', '/var/spool/bro'],
  ['elasticsearch', '/var/lib/elasticsearch'],
  ['kafka', '/var/lib/kafka'],
  ['docket', '/var/spool/docket'],
];

const roots: string[] = [];
function put(root: string, path: string, content: string, mode = 0o644) {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
  chmodSync(p, mode);
}

/** A sensor root as the image and a few weeks of use leave it. */
function sensorRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'rock-sensor-'));
  roots.push(root);
  put(root, 'usr/lib/rocknsm/data-paths', dataPaths.map(([id, p]) => `${id} ${p}\n`).join(''));
  put(root, 'usr/bin/rocknsm-purge-data', '#!/bin/sh\n', 0o755);
  // The image's /etc (pristine copy) ...
  put(root, 'usr/etc/hostname', 'localhost\n');
  put(root, 'usr/etc/rocknsm/rocknsm.env', 'ROCKNSM_MONITOR_INTERFACE=\n');
  put(root, 'usr/etc/ssh/sshd_config', 'PermitRootLogin no\n', 0o600);
  put(root, 'usr/etc/ssh/sshd_config.d/40-rocknsm.conf', 'PasswordAuthentication no\n');
  put(root, 'usr/etc/profile.d/rocknsm-host-guard.sh', 'alias yum=...\n');
  symlinkSync('../usr/share/zoneinfo/UTC', join(root, 'usr/etc/localtime'));
  // ... and the machine's /etc: some identical, some modified, added and deleted.
  put(root, 'etc/hostname', 'sensor-17\n'); // modified
  put(root, 'etc/rocknsm/rocknsm.env', 'ROCKNSM_MONITOR_INTERFACE=ens1f0\n'); // modified
  put(root, 'etc/ssh/sshd_config', 'PermitRootLogin no\n', 0o644); // mode changed
  // sshd_config.d/40-rocknsm.conf deleted
  put(root, 'etc/profile.d/rocknsm-host-guard.sh', 'alias yum=...\n'); // identical
  put(root, 'etc/systemd/system/var-lib-stenographer.mount', '[Mount]\nWhat=/dev/sdb1\n'); // added
  put(root, 'etc/systemd/system/local-fs.target.wants/.keep', ''); // added tree
  put(root, 'etc/.updated', 'TIMESTAMP_NSEC=1\n'); // added dotfile
  symlinkSync('../usr/share/zoneinfo/Europe/Berlin', join(root, 'etc/localtime')); // retargeted
  put(root, 'etc/machine-id', '0123456789abcdef0123456789abcdef\n');
  // Sensor data, dotfiles and nested trees included.
  for (const [id, p] of dataPaths) {
    put(root, `${p}/${id}.dat`, `${id} data\n`);
    put(root, `${p}/.${id}.hidden`, 'dot\n');
    put(root, `${p}/sub/.deeper/file`, 'deep\n');
  }
  // Non-data state under /var, next to and above the data paths.
  put(root, 'var/lib/containers/storage/overlay/l/abc', 'layer\n');
  put(root, 'var/lib/systemd/random-seed', 'seed\n');
  put(root, 'var/log/journal/0123/system.journal', 'journal\n');
  put(root, 'var/log/messages', 'old\n');
  put(root, 'var/spool/mail/core', '');
  put(root, 'var/home/core/.ssh/authorized_keys', 'ssh-ed25519 AAAA core\n');
  put(root, 'var/tmp/x', '');
  symlinkSync('../run', join(root, 'var/run'));
  mkdirSync(join(root, 'boot'));
  put(root, 'boot/loader/entries/ostree-1.conf', 'title Fedora CoreOS\n');
  return root;
}

/** Every entry of a tree: type, mode, size and content hash or link target. */
function listing(root: string, under = ''): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = join(root, rel);
    const st = lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${rel} l ${readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.push(`${rel}/ d ${mode}`);
      for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e);
    } else
      out.push(`${rel} f ${mode} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 12)}`);
  };
  walk(under);
  return out;
}

const run = (script: string, args: string[], input = '') =>
  shResult('bash', [script, ...args], { input, env: { LC_ALL: 'C' } });
/** True when a listing line is an entry below data path `p` (not the directory itself). */
const isInside = (line: string, p: string) => {
  const rel = line.split(' ')[0]!.replace(/\/$/, '');
  return rel.startsWith(`${p.slice(1)}/`);
};
const children = (root: string, p: string) => readdirSync(join(root, p));

test('both scripts pass bash -n and shellcheck, and are executable in git', () => {
  needTool('shellcheck');
  for (const s of [purge, reset]) {
    assert.is(shResult('bash', ['-n', s]).code, 0, `bash -n ${s}`);
    assert.ok((statSync(s).mode & 0o111) === 0o111, `${s} is 0755`);
    assert.match(readFileSync(s, 'utf8'), /^#!\/bin\/bash\n[\s\S]*\nset -euo pipefail\n/);
  }
  const sc = shResult('shellcheck', ['--severity=style', purge, reset]);
  assert.is(sc.code, 0, sc.stdout + sc.stderr);
  const modes = shResult('git', ['ls-files', '-s', 'overlays/20sensor-tools/usr/bin'], { cwd: repoRoot });
  for (const line of modes.stdout.trim().split('\n')) assert.match(line, /^100755 /, line);
});

test('--help describes the options and lists the data paths', () => {
  const root = sensorRoot();
  const h = run(purge, ['--help', '--root', root]);
  assert.is(h.code, 0, h.stderr);
  for (const w of ['--yes', '--dry-run', '--only', '--root', '/var/lib/stenographer', 'zeek-spool'])
    assert.ok(h.stdout.includes(w), w);
  const r = run(reset, ['--help']);
  assert.is(r.code, 0);
  for (const w of ['--yes', '--dry-run', '--no-reboot', '--root', 'ignition.firstboot', '/usr/etc'])
    assert.ok(r.stdout.includes(w), w);
  assert.is(run(purge, ['--bogus', '--root', root]).code, 64);
  assert.is(run(reset, ['--root']).code, 64);
});

test('purge --dry-run prints every data path and changes nothing', () => {
  const root = sensorRoot();
  const before = listing(root);
  const r = run(purge, ['--dry-run', '--root', root]);
  assert.is(r.code, 0, r.stderr);
  for (const [, p] of dataPaths) assert.ok(r.stdout.includes(`inside ${p}`), p);
  assert.match(r.stdout, /nothing was changed/);
  assert.equal(listing(root), before);
});

test('purge without a terminal and without --yes refuses with exit 2 and changes nothing', () => {
  const root = sensorRoot();
  const before = listing(root);
  const r = run(purge, ['--root', root], 'purge\n');
  assert.is(r.code, 2);
  assert.match(r.stderr, /not a terminal; pass --yes/);
  assert.equal(listing(root), before);
});

test('purge --yes empties every data path (dotfiles too), keeps the directories and nothing else', () => {
  const root = sensorRoot();
  const before = listing(root);
  const r = run(purge, ['--yes', '--root', root]);
  assert.is(r.code, 0, r.stderr);
  for (const [, p] of dataPaths) {
    assert.ok(statSync(join(root, p)).isDirectory(), `${p} kept`);
    assert.equal(children(root, p), [], `${p} empty`);
  }
  const inData = (line: string) => dataPaths.some(([, p]) => isInside(line, p));
  const after = listing(root);
  assert.equal(
    after,
    before.filter((l) => !inData(l)),
  );
  assert.match(r.stdout, /purged 8 data path\(s\), 40 entries deleted/);
});

test('purge --only purges just the chosen ids; unknown ids are a usage error', () => {
  const root = sensorRoot();
  const before = listing(root);
  const r = run(purge, ['--yes', '--only', 'zeek-logs,docket', '--root', root]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(children(root, 'var/log/bro'), []);
  assert.equal(children(root, 'var/spool/docket'), []);
  const purged = (l: string) => isInside(l, '/var/log/bro') || isInside(l, '/var/spool/docket');
  assert.equal(
    listing(root),
    before.filter((l) => !purged(l)),
  );
  const bad = run(purge, ['--yes', '--only', 'zeek,nope', '--root', root]);
  assert.is(bad.code, 64);
  assert.match(bad.stderr, /unknown data path id 'zeek'/);
});

test('purge refuses a data-path list that points outside /var', () => {
  const root = sensorRoot();
  put(root, 'usr/lib/rocknsm/data-paths', 'evil /usr\n');
  const before = listing(root);
  const r = run(purge, ['--yes', '--root', root]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /not below \/var/);
  assert.equal(listing(root), before);
});

test('purge keeps a data path nested in another one when only the outer one is chosen', () => {
  const root = sensorRoot();
  put(
    root,
    'usr/lib/rocknsm/data-paths',
    'outer /var/lib/elasticsearch\ninner /var/lib/elasticsearch/snapshots/repo\n',
  );
  put(root, 'var/lib/elasticsearch/snapshots/repo/snap.dat', 'snap\n');
  const r = run(purge, ['--yes', '--only', 'outer', '--root', root]);
  assert.is(r.code, 0, r.stderr);
  assert.equal(children(root, 'var/lib/elasticsearch'), ['snapshots']);
  assert.equal(children(root, 'var/lib/elasticsearch/snapshots/repo'), ['snap.dat']);
});

test('factory-reset --dry-run prints the actions and changes nothing', () => {
  const root = sensorRoot();
  const before = listing(root);
  const r = run(reset, ['--dry-run', '--root', root]);
  assert.is(r.code, 0, r.stderr);
  for (const w of [
    'remove /etc/systemd (not in the image)',
    'restore /etc/hostname (modified)',
    'restore /etc/ssh/sshd_config.d (deleted)',
    'restore /etc/localtime (modified)',
    'remove /var/lib/containers',
    "would reset /etc/machine-id to 'uninitialized'",
    'boot/ignition.firstboot',
    'dry run',
  ])
    assert.ok(r.stdout.includes(w), w);
  assert.not.ok(r.stdout.includes('Rebooting'));
  assert.equal(listing(root), before);
});

test('factory-reset without a terminal and without --yes refuses with exit 2 and changes nothing', () => {
  const root = sensorRoot();
  const before = listing(root);
  const r = run(reset, ['--root', root], 'reset\n');
  assert.is(r.code, 2);
  assert.equal(listing(root), before);
});

test('factory-reset --yes: data purged, /etc reverted, /var cleared, machine-id uninitialized, firstboot set', () => {
  const root = sensorRoot();
  const usrBefore = listing(root, 'usr');
  const bootBefore = listing(root, 'boot');
  const r = run(reset, ['--yes', '--root', root]);
  assert.is(r.code, 0, r.stdout + r.stderr);

  // /etc equals /usr/etc, except machine-id, which says `uninitialized` (systemd's first boot).
  const etc = listing(root, 'etc').map((l) => l.replace(/^etc/, ''));
  const usrEtc = listing(root, 'usr/etc').map((l) => l.replace(/^usr\/etc/, ''));
  assert.equal(
    etc.filter((l) => !l.startsWith('/machine-id ')),
    usrEtc,
  );
  assert.is(readFileSync(join(root, 'etc/machine-id'), 'utf8'), 'uninitialized\n');
  assert.is(readlinkSync(join(root, 'etc/localtime')), '../usr/share/zoneinfo/UTC');
  assert.is(statSync(join(root, 'etc/ssh/sshd_config')).mode & 0o777, 0o600);
  assert.not.ok(existsSync(join(root, 'etc/systemd')));
  assert.not.ok(existsSync(join(root, 'etc/.updated')));

  // Data directories (mount points on a sensor) kept and empty; nothing else left in /var.
  for (const [, p] of dataPaths) assert.equal(children(root, p), [], p);
  assert.equal(listing(root, 'var'), [
    'var/ d 755',
    'var/lib/ d 755',
    'var/lib/elasticsearch/ d 755',
    'var/lib/kafka/ d 755',
    'var/lib/stenographer/ d 755',
    'var/log/ d 755',
    'var/log/bro/ d 755',
    'var/log/fsf/ d 755',
    'var/log/suricata/ d 755',
    'var/spool/ d 755',
    'var/spool/bro/ d 755',
    'var/spool/docket/ d 755',
  ]);

  // Ignition runs again; /boot otherwise and /usr untouched; no reboot with --root.
  assert.ok(existsSync(join(root, 'boot/ignition.firstboot')));
  assert.equal(
    listing(root, 'boot').filter((l) => !l.startsWith('boot/ignition.firstboot ')),
    bootBefore,
  );
  assert.equal(listing(root, 'usr'), usrBefore);
  assert.match(r.stdout, /Factory reset summary:/);
  assert.match(r.stdout, /2 added entries removed, 5 entries restored from \/usr\/etc/, r.stdout);
  assert.not.ok(r.stdout.includes('Rebooting'));

  // Running it again finds nothing left to revert.
  const again = run(reset, ['--yes', '--root', root]);
  assert.is(again.code, 0, again.stderr);
  assert.match(again.stdout, /0 added entries removed, 0 entries restored/);
});

test('factory-reset refuses a root without /usr/etc before changing anything', () => {
  const root = sensorRoot();
  rmSync(join(root, 'usr/etc'), { recursive: true });
  const before = listing(root);
  const r = run(reset, ['--yes', '--root', root]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /not an ostree deployment/);
  assert.equal(listing(root), before);
});

test('interactive confirmation on a terminal: the exact word proceeds, anything else aborts', () => {
  needTool('script');
  const root = sensorRoot();
  const before = listing(root);
  // script(1) gives the command a pseudo-terminal as stdin and feeds it our input.
  const onTty = (cmd: string, input: string) =>
    shResult('script', ['-qec', cmd, '/dev/null'], { input, env: { LC_ALL: 'C' } });
  const no = onTty(`bash ${purge} --root ${root}`, 'yes\n');
  assert.is(no.code, 1, no.stdout);
  assert.match(no.stdout, /Type 'purge'/);
  assert.equal(listing(root), before);
  const noReset = onTty(`bash ${reset} --root ${root}`, 'purge\n');
  assert.is(noReset.code, 1, noReset.stdout);
  assert.equal(listing(root), before);
  const yes = onTty(`bash ${purge} --root ${root} --only kafka`, 'purge\n');
  assert.is(yes.code, 0, yes.stdout);
  assert.equal(children(root, 'var/lib/kafka'), []);
});

test.after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

test.run();
