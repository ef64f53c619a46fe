// Sensor profiles -> Ignition: every profile under manifests/profiles renders, for every spec,
// a config the real ignition-validate accepts without a word; the default spec matches the
// reviewed golden file (regenerate on purpose: UPDATE_GOLDEN=1); every bad profile under
// test/fixtures/profiles/bad fails with the rule and position its `# expect:` header names;
// systemd path escaping agrees with the real systemd-escape.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { followedTrust } from '../../pipeline/commands/ignition-glue.ts';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import {
  catalogFromProject,
  loadProfile,
  parseProfile,
  parseSshKeyFile,
  SPECS,
  sshKeyProblem,
} from '../../pipeline/config/profile.ts';
import { ConfigError, formatIssue } from '../../pipeline/errors.ts';
import {
  LINUX_DATA_GUID,
  mountUnitName,
  renderBaseConfig,
  renderIgnition,
  serializeIgnition,
  systemdEscapePath,
} from '../../pipeline/plan/ignition.ts';
import { trustFiles } from '../../pipeline/plan/trust.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';

const project = loadProject(projectPaths(repoRoot));
const catalog = catalogFromProject(project);
const keyFile = join(repoRoot, 'test/fixtures/profiles/test-keys.pub');
const keys = parseSshKeyFile(readFileSync(keyFile, 'utf8'), 'test/fixtures/profiles/test-keys.pub');
const profileDir = join(repoRoot, 'manifests/profiles');
const profiles = readdirSync(profileDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const load = (f: string) => loadProfile(join(profileDir, f), `manifests/profiles/${f}`, catalog, keys);
/** What `rock-image ignition` renders: with the followed stream's trust files. */
const render = (f: string, spec?: (typeof SPECS)[number]) => {
  const profile = load(f);
  return renderIgnition(profile, { spec, trust: followedTrust(project, profile, repoRoot) });
};
const scratch = mkdtempSync(join(tmpdir(), 'rock-ignition-test-'));

function validate(name: string, text: string): string {
  const bin = needTool('ignition-validate');
  const file = join(scratch, name);
  writeFileSync(file, text);
  const r = shResult(bin, [file]);
  return `${r.stdout}${r.stderr}`.trim() + (r.code === 0 ? '' : ` (exit ${r.code})`);
}

test('the required profiles exist, each with its $schema header', () => {
  for (const p of ['default.yaml', 'capture-heavy.yaml', 'separate-data-disk.yaml', 'minimal.yaml'])
    assert.ok(profiles.includes(p), p);
  for (const f of profiles)
    assert.is(
      readFileSync(join(profileDir, f), 'utf8').split('\n')[0],
      '# yaml-language-server: $schema=../../pipeline/config/schema/profile.schema.json',
      f,
    );
});

for (const f of profiles) {
  for (const spec of SPECS) {
    test(`${f} renders valid Ignition ${spec} (ignition-validate)`, () => {
      const text = serializeIgnition(render(f, spec));
      assert.is(validate(`${f}-${spec}.ign`, text), '');
      const base = serializeIgnition(renderBaseConfig(load(f), { spec }));
      assert.is(validate(`${f}-${spec}.base.ign`, base), '');
    });
  }
  test(`${f} matches its golden file`, () => {
    const name = f.replace(/\.yaml$/, '');
    for (const [suffix, text] of [
      ['ign', serializeIgnition(render(f))],
      ['base.ign', serializeIgnition(renderBaseConfig(load(f)))],
    ] as const) {
      const path = join(repoRoot, 'test/golden/ignition', `${name}.${suffix}`);
      if (process.env.UPDATE_GOLDEN === '1') {
        mkdirSync(join(repoRoot, 'test/golden/ignition'), { recursive: true });
        writeFileSync(path, text);
      }
      assert.ok(existsSync(path), `missing ${path}; run with UPDATE_GOLDEN=1 and review it`);
      assert.fixture(text, readFileSync(path, 'utf8'));
    }
  });
}

test('default profile: root resized, partitions labelled and typed, mounts and ordering', () => {
  const cfg = renderIgnition(load('default.yaml'));
  const parts = cfg.storage!.disks![0]!.partitions;
  assert.equal(parts[0], { number: 4, label: 'root', sizeMiB: 16384, resize: true });
  assert.is(cfg.storage!.disks![0]!.device, '/dev/disk/by-id/coreos-boot-disk');
  assert.is(cfg.storage!.disks![0]!.wipeTable, false);
  assert.equal(
    parts.slice(1).map((p) => [p.number, p.label]),
    [
      [5, 'var'],
      [6, 'rock-fsf'],
      [7, 'rock-suricata'],
      [8, 'rock-zeek-logs'],
      [9, 'rock-zeek-spool'],
      [10, 'rock-elasticsearch'],
      [11, 'rock-kafka'],
      [12, 'rock-docket'],
      [13, 'rock-stenographer'],
    ],
  );
  for (const p of parts.slice(1)) {
    assert.is(p.typeGuid, LINUX_DATA_GUID);
    assert.is(p.wipePartitionEntry, false);
    assert.is(p.startMiB, undefined);
  }
  assert.is(parts.at(-1)!.sizeMiB, 0, 'stenographer takes the rest');
  for (const fs of cfg.storage!.filesystems!) {
    assert.is(fs.format, 'xfs');
    assert.is(fs.wipeFilesystem, false);
    assert.ok(fs.label.length <= 12);
  }
  const units = cfg.systemd!.units;
  const mount = units.find((u) => u.name === 'var-lib-stenographer.mount')!;
  assert.match(mount.contents!, /^What=\/dev\/disk\/by-partlabel\/rock-stenographer$/m);
  assert.match(mount.contents!, /^Where=\/var\/lib\/stenographer$/m);
  assert.match(mount.contents!, /^\[Install\]\nRequiredBy=local-fs\.target$/m);
  assert.match(
    mount.contents!,
    /^Requires=systemd-fsck@dev-disk-by\\x2dpartlabel-rock\\x2dstenographer\.service$/m,
  );
  const zeek = units.find((u) => u.name === 'rocknsm-zeek.service')!;
  assert.match(zeek.dropins![0]!.contents, /^RequiresMountsFor=\/var\/log\/bro \/var\/spool\/bro$/m);
  assert.equal(cfg.passwd!.users[0]!.name, 'core');
  assert.is(cfg.passwd!.users[0]!.groups, undefined, 'core keeps its own groups');
});

test('spec versions: resize only from 3.2.0; before it the first partition is pinned after root', () => {
  const p = load('default.yaml');
  for (const spec of SPECS) {
    const parts = renderIgnition(p, { spec }).storage!.disks![0]!.partitions;
    const old = spec === '3.0.0' || spec === '3.1.0';
    assert.is(
      parts.some((x) => x.resize !== undefined),
      !old,
      spec,
    );
    assert.is(parts[0]!.label, old ? 'var' : 'root', spec);
    if (old) assert.is(parts[0]!.startMiB, 513 + 16384);
  }
});

test('minimal profile masks disabled services; separate-data-disk leaves root alone', () => {
  const mini = renderIgnition(load('minimal.yaml'));
  const masked = mini.systemd!.units.filter((u) => u.mask).map((u) => u.name);
  assert.equal(masked.sort(), [
    'rocknsm-docket.service',
    'rocknsm-elasticsearch.service',
    'rocknsm-fsf.service',
    'rocknsm-kafka.service',
    'rocknsm-stenographer.service',
  ]);
  const sep = renderIgnition(load('separate-data-disk.yaml'));
  const disk = sep.storage!.disks![0]!;
  assert.is(disk.device, '/dev/disk/by-id/virtio-rocknsm-data');
  assert.ok(!disk.partitions.some((x) => x.label === 'root' || x.resize !== undefined));
  assert.is(disk.partitions[0]!.number, 1);
  assert.equal(sep.passwd!.users[0], {
    name: 'rockadmin',
    groups: ['wheel', 'sudo'],
    sshAuthorizedKeys: keys.map((k) => k.key),
  });
  assert.ok(sep.systemd!.units.some((u) => u.name === 'vmtoolsd.service' && u.mask));
});

test('fields a spec lacks are never emitted (kernelArguments from 3.3.0)', () => {
  const text = `hostname: s1\nfollows: ghcr.io/rocknsm/rocknsm-coreos:stable\nroot-size: 16GiB\npartitions:\n  var:\n    size: rest\nkernel-arguments: [isolcpus=2-3]\n`;
  const p = parseProfile(text, 'k.yaml', catalog, keys);
  const cfg = renderIgnition(p, { spec: '3.3.0' });
  assert.equal(cfg.kernelArguments, { shouldExist: ['isolcpus=2-3'] });
  assert.is(validate('k.ign', serializeIgnition(cfg)), '');
  assert.throws(
    () => renderIgnition(p, { spec: '3.2.0' }),
    (e: ConfigError) => e.issues[0]!.rule === 'spec-field',
  );
});

test('ssh key checks', () => {
  assert.is(sshKeyProblem(keys[0]!.key), undefined);
  assert.match(sshKeyProblem('ssh-ed25519')!, /missing/);
  assert.match(sshKeyProblem('ecdsa-sha2-nistp256 AAAAC3NzaC1lZDI1NTE5AAAAIAcH')!, /does not hold/);
  const real = shResult(needTool('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-f', join(scratch, 'k')]);
  assert.is(real.code, 0, real.stderr);
  assert.is(sshKeyProblem(readFileSync(join(scratch, 'k.pub'), 'utf8')), undefined);
  const rsa = shResult('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', join(scratch, 'r')]);
  assert.is(rsa.code, 0, rsa.stderr);
  assert.is(sshKeyProblem(readFileSync(join(scratch, 'r.pub'), 'utf8')), undefined);
});

const tricky = [
  '/',
  '/var',
  '/var/lib/stenographer',
  '/var/log/bro',
  '/var/spool/docket',
  '/var/lib/a b',
  '//var///x/',
  '/.hidden',
  '/var/.h',
  '/a-b-c',
  '/ü/snow☃',
  '/var/./x',
  '/x/.',
  '/a\\b',
  '/a:b_c.d',
  '/tab\there',
  '/100%',
  '/a~b+c=d,e@f#g',
  '/-leading-dash',
  '/trailing.',
  '/var/lib/..hidden..',
];
test('systemdEscapePath equals the real systemd-escape --path', () => {
  const bin = needTool('systemd-escape');
  for (const p of tricky) {
    const r = shResult(bin, ['--path', '--', p]);
    assert.is(r.code, 0, `${p}: ${r.stderr}`);
    assert.is(systemdEscapePath(p), r.stdout.replace(/\n$/, ''), JSON.stringify(p));
  }
  for (const p of ['/var/../x', '/x/..']) {
    assert.is(shResult(bin, ['--path', '--', p]).code, 1, p);
    assert.throws(() => systemdEscapePath(p), /not a normalized/);
  }
  for (const d of catalog.dataPaths) {
    const r = shResult(bin, ['--path', '--suffix=mount', '--', d.path]);
    assert.is(mountUnitName(d.path), r.stdout.trim());
  }
});

/** The bytes of an Ignition data URL, as Ignition decodes it (RFC 2397: percent-encoded or base64). */
function dataBytes(source: string): Buffer {
  const m = /^data:([^,]*),(.*)$/s.exec(source);
  assert.ok(m, source.slice(0, 40));
  return m![1]!.endsWith(';base64')
    ? Buffer.from(m![2]!, 'base64')
    : Buffer.from(decodeURIComponent(m![2]!), 'utf8');
}

test("trust: the followed stream's policy, registries.d and key written by Ignition, asserted by the follow unit", () => {
  for (const f of profiles) {
    const profile = load(f);
    const cfg = render(f);
    const stream = resolveStream(project, profile.follows.split(':').at(-1)!, repoRoot);
    const expected = trustFiles(stream);
    assert.equal(
      expected.map((t) => t.path),
      [
        '/etc/containers/policy.json',
        '/etc/containers/registries.d/rocknsm-coreos.yaml',
        '/etc/pki/containers/rocknsm-coreos.gpg',
      ],
      f,
    );
    // Byte for byte what the image carries (so after the rebase the files match the image's).
    for (const t of expected) {
      const file = cfg.storage!.files!.find((x) => x.path === t.path);
      assert.ok(file, `${f}: ${t.path} written`);
      assert.is(file!.mode, 0o644);
      assert.is(file!.overwrite, true);
      const want = t.content !== undefined ? Buffer.from(t.content) : readFileSync(t.source!);
      assert.ok(dataBytes(file!.contents.source).equals(want), `${f}: ${t.path} bytes`);
    }
    const unit = cfg.systemd!.units.find((u) => u.name === 'rocknsm-follow.service')!;
    const lines = unit.contents!.split('\n');
    const exec = lines.findIndex((l) =>
      l.startsWith('ExecStart=/usr/bin/bootc switch --enforce-container-sigpolicy '),
    );
    assert.ok(exec > 0, unit.contents);
    // Every trust file asserted in [Unit], before [Service] and its ExecStart.
    const service = lines.indexOf('[Service]');
    for (const t of expected) {
      const at = lines.indexOf(`AssertPathExists=${t.path}`);
      assert.ok(at > lines.indexOf('[Unit]') && at < service, `${f}: asserts ${t.path}`);
    }
    // The ExecStartPre check runs before the switch and passes on the policy Ignition writes,
    // and only on one naming our keyring.
    const pre = lines.findIndex((l) => l.startsWith('ExecStartPre='));
    assert.ok(pre > service && pre < exec);
    const needle = /^ExecStartPre=\/usr\/bin\/grep -qF '(.+)' \/etc\/containers\/policy\.json$/.exec(
      lines[pre]!,
    );
    assert.ok(needle, lines[pre]);
    const policy = dataBytes(
      cfg.storage!.files!.find((x) => x.path === '/etc/containers/policy.json')!.contents.source,
    );
    assert.ok(policy.toString().includes(needle![1]!), 'the check passes on our policy');
    assert.not.ok(
      JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }, null, 2).includes(needle![1]!),
    );
  }
});

test('trust: a profile following an unsigned stream gets no trust files; one following another repository is refused', () => {
  const dir = mkdtempSync(join(scratch, 'unsigned-'));
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(dir, d), { recursive: true });
  const streamFile = join(dir, 'manifests/streams/stable.yaml');
  writeFileSync(
    streamFile,
    readFileSync(streamFile, 'utf8').replace(/^ {2}trust:\n( {4}.*\n)*/m, '  unsigned: lab only\n'),
  );
  const unsignedProject = loadProject(projectPaths(dir));
  const profile = loadProfile(
    join(profileDir, 'default.yaml'),
    'manifests/profiles/default.yaml',
    catalog,
    keys,
  );
  assert.equal(followedTrust(unsignedProject, profile, dir), []);
  const cfg = renderIgnition(profile, { trust: [] });
  const unit = cfg.systemd!.units.find((u) => u.name === 'rocknsm-follow.service')!;
  assert.not.match(unit.contents!, 'AssertPathExists');
  assert.not.ok(cfg.storage!.files!.some((x) => x.path.startsWith('/etc/containers/')));

  const elsewhere = parseProfile(
    'hostname: s1\nfollows: quay.io/someone/else:stable\npartitions: {}\n',
    'bad/elsewhere.yaml',
    catalog,
    keys,
  );
  try {
    followedTrust(project, elsewhere, repoRoot);
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, ConfigError);
    const issue = (e as ConfigError).issues[0]!;
    assert.is(issue.rule, 'follows-trusted');
    assert.is(issue.file, 'bad/elsewhere.yaml');
    assert.is(issue.line, 2);
    assert.match(issue.message, 'ghcr.io/rocknsm/rocknsm-coreos');
  }
});

const badDir = join(repoRoot, 'test/fixtures/profiles/bad');
const badFiles = readdirSync(badDir).sort();
test('at least 22 bad profiles', () => assert.ok(badFiles.length >= 22, String(badFiles.length)));
for (const f of badFiles) {
  test(`bad profile ${f}`, () => {
    const text = readFileSync(join(badDir, f), 'utf8');
    const m = /^# expect: (\S+) (\d+):(\d*) ?(.*)$/m.exec(text);
    assert.ok(m, 'fixture has an # expect: header');
    const [, rule, line, col, words] = m!;
    const withKeys = /^# keys: none$/m.test(text) ? [] : keys;
    let err: ConfigError | undefined;
    try {
      renderIgnition(parseProfile(text, `bad/${f}`, catalog, withKeys));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      err = e;
    }
    assert.ok(err, 'expected a ConfigError');
    const hit = err!.issues.find(
      (i) => i.rule === rule && i.line === Number(line) && (!col || i.col === Number(col)),
    );
    assert.ok(hit, `expected ${rule} at ${line}:${col}, got:\n${err!.issues.map(formatIssue).join('\n')}`);
    if (words) assert.ok(hit!.message.includes(words), `message '${hit!.message}' lacks '${words}'`);
    assert.is(hit!.file, `bad/${f}`);
  });
}

test.run();
