// Lockfiles in fedora-coreos-config's format, overrides, autolock, rpmvercmp and the package diff.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../pipeline/errors.ts';
import {
  autolock,
  coarseTimestamp,
  mergeLockfiles,
  parseLockfile,
  parseOverrides,
  serializeLockfile,
} from '../../pipeline/plan/lockfile.ts';
import { diffLockfiles, formatDiff } from '../../pipeline/plan/lockfile-diff.ts';
import { compareEvr, rpmvercmp } from '../../pipeline/plan/rpm-version.ts';

const at = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const text = (p: string) => readFileSync(at(p), 'utf8');

test('round trip: the committed lockfiles re-serialize byte for byte', () => {
  for (const f of [
    'manifests/compose/manifest-lock.x86_64.json',
    'manifests/compose/manifest-lock.aarch64.json',
    'test/fixtures/lockfile/manifest-lock.2024-12.x86_64.json',
  ]) {
    assert.fixture(serializeLockfile(parseLockfile(text(f), f)), text(f));
  }
});

test('serialize sorts packages and keeps evra/evr, digest, metadata order', () => {
  const out = serializeLockfile({
    packages: {
      zsh: { metadata: { sourcerpm: 'zsh' }, evra: '5.9-15.fc41.x86_64' },
      bash: { evr: '5.2.32-1.fc41', digest: 'sha256:ab' },
    },
    metadata: { generated: coarseTimestamp(Date.UTC(2025, 0, 14, 17, 3)) },
  });
  assert.is(
    out,
    '{\n  "packages": {\n    "bash": {\n      "evr": "5.2.32-1.fc41",\n      "digest": "sha256:ab"\n    },\n    "zsh": {\n      "evra": "5.9-15.fc41.x86_64",\n      "metadata": {\n        "sourcerpm": "zsh"\n      }\n    }\n  },\n  "metadata": {\n    "generated": "2025-01-14T00:00:00Z"\n  }\n}\n',
  );
});

test('parse rejects what rpm-ostree rejects: unknown keys, both evr and evra, malformed evra', () => {
  const bad = (t: string) => {
    try {
      parseLockfile(t, 'l.json');
    } catch (e) {
      return (e as ConfigError).issues.map((i) => `${i.line}:${i.rule}`);
    }
    return [];
  };
  assert.equal(bad('{"packages": {}, "unknown-field": "true"}'), ['1:unknown-key']);
  assert.equal(bad('{"metadata": {}}'), ['1:required']);
  assert.equal(bad('{\n"packages": {\n"a": {"evra": "1.0-1"}}}'), ['3:evra']);
  assert.equal(bad('{\n"packages": {\n"a": {"evr": "1-1", "evra": "1-1.x86_64"}}}'), ['3:evr']);
});

test('overrides: the committed file is valid; every entry needs a reason URL and a type', () => {
  const f = 'manifests/compose/manifest-lock.overrides.yaml';
  assert.equal(Object.keys(parseOverrides(text(f), f).packages), ['podman', 'kernel']);
  try {
    parseOverrides(text('test/fixtures/lockfile/bad-overrides.yaml'), 'bad-overrides.yaml');
    assert.unreachable();
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.equal(
      (e as ConfigError).issues.map((i) => `${i.file}:${i.line}:${i.col} ${i.rule}`),
      [
        'bad-overrides.yaml:12:5 evr',
        'bad-overrides.yaml:5:7 override-reason',
        'bad-overrides.yaml:9:15 override-reason',
      ],
    );
  }
});

test("overrides: fedora-coreos-config's rules (ci/overrides.py @2d0fce6d): pins need a reason URL, fast-tracks of FCOS-specific packages may do with their Bodhi URL", () => {
  const rules = (yaml: string, locked?: Set<string>) => {
    try {
      parseOverrides(yaml, 'o.yaml', locked);
      return [];
    } catch (e) {
      return (e as ConfigError).issues.map((i) => `${i.line}:${i.col} ${i.rule}`);
    }
  };
  const entry = (name: string, meta: string) =>
    `packages:\n  ${name}:\n    evr: 1-1.fc41\n    metadata:\n${meta
      .split(',')
      .filter(Boolean)
      .map((m) => `      ${m}\n`)
      .join('')}`;
  const bodhi = 'bodhi: https://bodhi.fedoraproject.org/updates/FEDORA-2024-35ebfcbeef';
  const reason = 'reason: https://github.com/coreos/fedora-coreos-tracker/issues/1809';
  // As upstream's own file has them (manifest-lock.overrides.yaml @2d0fce6d: ignition, no reason).
  assert.equal(rules(entry('ignition', `${bodhi},type: fast-track`)), []);
  // Binary packages of the Rust sources (rust-afterburn builds afterburn-dracut).
  assert.equal(rules(entry('afterburn-dracut', `${bodhi},type: fast-track`)), []);
  assert.equal(rules(entry('rpm-ostree-libs', `${bodhi},type: fast-track`)), []);
  // Not FCOS-specific: the tool refuses a fast-track without --reason (:96-99).
  assert.equal(rules(entry('podman', `${bodhi},type: fast-track`)), ['5:7 override-reason']);
  assert.equal(rules(entry('podman', `${bodhi},${reason},type: fast-track`)), []);
  // FCOS-specific but neither a Bodhi update nor a reason: nothing says why.
  assert.equal(rules(entry('ignition', 'type: fast-track')), ['5:7 override-reason']);
  // A pin always needs its reason (:69 required=True), and it must be a URL (:359-362).
  assert.equal(rules(entry('ignition', 'type: pin')), ['5:7 override-reason']);
  assert.equal(rules(entry('kernel', 'reason: see chat,type: pin')), ['5:15 override-reason']);
  assert.equal(rules(entry('kernel', `${reason},type: pin`)), []);
  assert.equal(rules(entry('podman', `bodhi: FEDORA-2024-1,${reason},type: fast-track`)), [
    '5:14 override-bodhi',
  ]);
  // Only the two types upstream writes.
  assert.equal(rules(entry('kernel', `${reason},type: hold`)), ['6:13 override-type']);
  // What the user reads: the file as given, line and column of the value, the rule and the value.
  const f = 'manifests/compose/manifest-lock.overrides.yaml';
  assert.throws(
    () => parseOverrides(entry('kernel', `${reason},type: hold`), f),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        `1 problem in configuration:\n  ${f}:6:13: override-type at /packages/kernel/metadata/type: metadata.type must be "pin" or "fast-track" (got "hold")`,
  );
  assert.equal(rules('packages:\n  kernel:\n    evr: 1-1.fc41\n'), ['2:3 override-type']);
  // With the base lockfiles' packages: an override replaces a locked package (:233-267).
  const locked = new Set(['kernel', 'podman']);
  assert.equal(rules(entry('kernel', `${reason},type: pin`), locked), []);
  assert.equal(rules(entry('kernal', `${reason},type: pin`), locked), ['2:3 override-unlocked']);
});

test('later lockfiles win, like repeated --lockfile (overrides after the base)', () => {
  const base = parseLockfile(text('manifests/compose/manifest-lock.x86_64.json'), 'x');
  const ov = parseOverrides(text('manifests/compose/manifest-lock.overrides.yaml'), 'o');
  const m = mergeLockfiles(base, ov);
  assert.equal(m.packages.podman, ov.packages.podman);
  assert.is(m.packages.kernel!.evr, '6.11.11-300.fc41');
  assert.is(m.packages.crun!.evra, '1.19.1-1.fc41.x86_64');
});

test('autolock: arch-ful entries become evr, noarch entries stay; optional restriction to shared names', () => {
  const primary = parseLockfile(text('manifests/compose/manifest-lock.x86_64.json'), 'x');
  const lf = autolock(primary);
  assert.equal(lf.packages.podman, { evr: '5:5.3.1-1.fc41' });
  assert.equal(lf.packages['linux-firmware'], {
    evra: '20241210-1.fc41.noarch',
    metadata: { sourcerpm: 'linux-firmware' },
  });
  assert.ok('microcode_ctl' in lf.packages);
  const secondary = parseLockfile(text('manifests/compose/manifest-lock.aarch64.json'), 'a');
  const shared = autolock(primary, Object.keys(secondary.packages));
  assert.not.ok('microcode_ctl' in shared.packages);
  assert.equal(shared.packages['grub2-tools'], { evr: '1:2.12-10.fc41' });
  assert.is(Object.keys(shared.packages).length, 68);
});

test('rpmvercmp: rpm semantics for numbers, letters, separators, tilde and caret', () => {
  const cases: [string, string, number][] = [
    ['1.0', '1.0', 0],
    ['1.0', '2.0', -1],
    ['2.0.1', '2.0', 1],
    ['10', '9', 1],
    ['1.010', '1.9', 1],
    ['1.05', '1.5', 0],
    ['1.0a', '1.0', 1],
    ['a', '1', -1],
    ['1.a', '1.1', -1],
    ['5.5p1', '5.5p10', -1],
    ['xyz10', 'xyz10.1', -1],
    ['1_0', '1.0', 0],
    ['1.0~rc1', '1.0', -1],
    ['1.0~rc1', '1.0~rc2', -1],
    ['1.0~rc1~git1', '1.0~rc1', -1],
    ['1.0^', '1.0', 1],
    ['1.0^git1', '1.0.1', -1],
    ['1.0^git1', '1.0^git2', -1],
    ['1.0^git1~pre', '1.0^git1', -1],
    ['1.0~rc1^git1', '1.0~rc1', 1],
    ['fc41', 'fc41.1', -1],
  ];
  for (const [a, b, want] of cases) {
    assert.is(rpmvercmp(a, b), want, `${a} vs ${b}`);
    assert.is(rpmvercmp(b, a), -want as -1 | 0 | 1, `${b} vs ${a}`);
  }
  assert.is(compareEvr('1:1.0-1', '2.0-1'), 1);
  assert.is(compareEvr('0:2.0-1', '2.0-1'), 0);
  assert.is(compareEvr('9.8p1-3.fc41', '9.8p1-3.fc41.1'), -1);
});

test('package diff between two real composes, as text and JSON', () => {
  const a = parseLockfile(text('test/fixtures/lockfile/manifest-lock.2024-12.x86_64.json'), 'old');
  const b = parseLockfile(text('test/fixtures/lockfile/manifest-lock.2025-01.x86_64.json'), 'new');
  const d = diffLockfiles(a, b);
  assert.equal(
    d.upgraded.map((c) => c.name),
    [
      'kernel',
      'kernel-core',
      'kernel-modules',
      'linux-firmware',
      'openssh-clients',
      'openssh-server',
      'podman',
      'systemd',
      'systemd-udev',
    ],
  );
  assert.equal(d.downgraded, [
    { name: 'ignition', from: '2.20.0-3.fc41', to: '2.20.0-2.fc41', source: 'ignition' },
  ]);
  assert.equal(
    d.added.map((c) => c.name),
    ['intel-cmt-cat', 'toolbox'],
  );
  assert.equal(d.removed, [{ name: 'iptables-legacy', from: '1.8.10-13.fc41', source: 'iptables' }]);
  assert.is(d.unchanged, 63);
  const t = formatDiff(d, 'x86_64 2024-12 -> 2025-01');
  assert.ok(
    t.startsWith('x86_64 2024-12 -> 2025-01: 9 upgraded, 1 downgraded, 2 added, 1 removed, 63 unchanged\n'),
  );
  assert.match(t, '\nUpgraded:\n  kernel 6.11.10-300.fc41 -> 6.11.11-300.fc41\n');
  assert.match(t, '\nRemoved:\n  iptables-legacy 1.8.10-13.fc41\n');
  assert.equal(JSON.parse(JSON.stringify(d)).added[1], {
    name: 'toolbox',
    to: '0.1.1-1.fc41',
    source: 'toolbox',
  });
});

test.run();
