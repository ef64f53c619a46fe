// The real `rock-image build` (the bin, real buildah and skopeo, private storage) against
// FCOS-shaped bases the test makes for both arches; the resulting images are unpacked with
// umoci and inspected with skopeo.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { recordProblems } from '../../pipeline/records.ts';
import { cacheDir, fcosBase, KVER, repoRoot } from '../world/fcos-base.ts';
import { cpioFile, needTool, sh, shResult } from '../world/tools.ts';

const work = join(cacheDir, `build-${process.pid}`);
const VERSION = '41.20261122.3.0';
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { env: { CI: 'true', ...env } });

function buildArgs(out: string, storage: string, variant: 'plain' | 'tools', extra: string[] = []): string[] {
  return [
    'build',
    '--stream',
    'stable',
    '--base',
    `x86_64=${fcosBase('x86_64', variant)}`,
    '--base',
    `aarch64=${fcosBase('aarch64', variant)}`,
    '--output',
    out,
    '--storage',
    storage,
    ...extra,
  ];
}

/** One file of an uncompressed newc initramfs (the dracut stand-in writes those). */
/** Unpacks an OCI archive's rootfs with umoci. */
function unpack(archive: string, ref: string, dest: string): string {
  needTool('umoci');
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(`${dest}/layout`, { recursive: true });
  sh('tar', ['-xf', archive, '-C', `${dest}/layout`]);
  sh('umoci', ['unpack', '--image', `${dest}/layout:${ref}`, `${dest}/bundle`]);
  return `${dest}/bundle/rootfs`;
}

const out = join(work, 'out');
const meta = (arch: string) =>
  JSON.parse(readFileSync(join(out, 'builds', VERSION, arch, 'meta.json'), 'utf8'));

test.before(() => {
  needTool('buildah');
  needTool('skopeo');
  rmSync(work, { recursive: true, force: true });
});
test.after(() => {
  // Storage holds overlay mounts only while buildah runs; the tree can go.
  rmSync(work, { recursive: true, force: true });
});

test('build: both arches from FCOS-shaped bases with dracut and bootc', () => {
  const r = cli(buildArgs(out, join(work, 'st1'), 'tools', ['--version', VERSION]));
  assert.is(r.code, 0, r.stderr);
  const builds = JSON.parse(readFileSync(join(out, 'builds/builds.json'), 'utf8'));
  assert.is(builds['schema-version'], '1.0.0');
  assert.equal(builds.builds, [{ id: VERSION, arches: ['aarch64', 'x86_64'] }]);
  assert.match(builds.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // The real records match their schemas (pipeline/records/schema/).
  assert.equal(recordProblems('builds', builds), []);
  for (const arch of ['x86_64', 'aarch64']) {
    const m = meta(arch);
    assert.equal(recordProblems('meta', m), [], arch);
    assert.is(m.buildid, VERSION);
    assert.is(m.name, 'rocknsm-coreos');
    assert.is(m['coreos-assembler.basearch'], arch);
    assert.match(m['rocknsm.input-hash'], /^[0-9a-f]{64}$/);
    assert.match(m['base-oscontainer'].digest, /^sha256:[0-9a-f]{64}$/);
    const file = join(out, 'builds', VERSION, arch, m.images.ostree.path);
    assert.is(m.images.ostree.path, `rocknsm-coreos-${VERSION}-ostree.${arch}.ociarchive`);
    assert.is(statSync(file).size, m.images.ostree.size);
    assert.is(sh('sha256sum', [file]).split(' ')[0], m.images.ostree.sha256);
  }
});

test('build: labels, arch and digest of each image (skopeo)', () => {
  for (const [arch, oci] of [
    ['x86_64', 'amd64'],
    ['aarch64', 'arm64'],
  ] as const) {
    const m = meta(arch);
    const ref = `oci-archive:${join(out, 'builds', VERSION, arch, m.images.ostree.path)}:${VERSION}`;
    const config = JSON.parse(sh('skopeo', ['inspect', '--config', ref]));
    assert.is(config.architecture, oci);
    const labels = config.config.Labels;
    assert.is(labels['containers.bootc'], '1');
    assert.is(labels['ostree.bootable'], '1');
    assert.is(labels['com.coreos.stream'], 'stable');
    assert.is(labels['com.coreos.osname'], 'rocknsm-coreos');
    assert.is(labels['com.coreos.inputhash'], m['rocknsm.input-hash']);
    assert.is(labels['org.opencontainers.image.version'], VERSION);
    assert.is(labels['org.opencontainers.image.source'], 'https://github.com/rocknsm/rocknsm-coreos');
    assert.is(labels['org.opencontainers.image.base.digest'], m['base-oscontainer'].digest);
    for (const k of ['title', 'description', 'revision', 'created'])
      assert.ok(labels[`org.opencontainers.image.${k}`], k);
    const raw = sh('skopeo', ['inspect', '--raw', ref]).trim();
    assert.is(`sha256:${sh('sha256sum', [], { input: raw }).split(' ')[0]}`, m['rocknsm.image-digest']);
  }
});

test('build: files inside the image (umoci)', () => {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const m = meta(arch);
    const root = unpack(
      join(out, 'builds', VERSION, arch, m.images.ostree.path),
      VERSION,
      join(work, `unpack-${arch}`),
    );
    const osr = readFileSync(join(root, 'usr/lib/os-release'), 'utf8');
    assert.match(osr, /^VARIANT_ID=rocknsm$/m);
    assert.match(osr, /^VARIANT="RockNSM Sensor"$/m);
    assert.match(osr, /^ID=fedora$/m);
    assert.match(osr, /^VERSION_ID=41$/m);
    assert.match(osr, new RegExp(`^IMAGE_VERSION=${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(
      readFileSync(join(root, 'usr/lib/ostree/prepare-root.conf'), 'utf8'),
      /^\[composefs\]\nenabled = true$/m,
    );
    // dracut ran after prepare-root.conf was in place (the stand-in packed it), asked for ostree's
    // module as derived-image builds must (the real dracut is run by test/sensor/).
    const img = join(root, `usr/lib/modules/${KVER[arch]}/initramfs.img`);
    const record = cpioFile(img, 'dracut.record');
    assert.match(
      record,
      new RegExp(
        `^dracut --no-hostonly --kver ${KVER[arch]} --reproducible --add ostree -f /usr/lib/modules/${KVER[arch]}/initramfs.img$`,
        'm',
      ),
    );
    assert.match(record, /enabled = true/);
    assert.is(
      cpioFile(img, 'usr/lib/ostree/prepare-root.conf'),
      readFileSync(join(root, 'usr/lib/ostree/prepare-root.conf'), 'utf8'),
    );
    assert.is((statSync(img).mode & 0o777).toString(8), '600');
    assert.is(readFileSync(join(root, 'usr/lib/bootc-lint-ran'), 'utf8'), 'bootc container lint\n');
    const tmpfiles = readFileSync(join(root, 'usr/lib/tmpfiles.d/rocknsm-data.conf'), 'utf8');
    for (const p of [
      '/var/lib/stenographer',
      '/var/log/fsf',
      '/var/log/suricata',
      '/var/log/bro',
      '/var/spool/bro',
      '/var/lib/elasticsearch',
      '/var/lib/kafka',
      '/var/spool/docket',
    ]) {
      assert.match(tmpfiles, new RegExp(`^d ${p} 0[0-7]{3} \\S+ \\S+ -$`, 'm'));
      assert.not.ok(existsSync(join(root, p)), `${p} must not be image content`);
    }
    assert.is(sh('readlink', [join(root, 'data/stenographer')]).trim(), '/var/lib/stenographer');
    assert.is(sh('readlink', [join(root, 'data/bro/logs')]).trim(), '/var/log/bro');
    assert.match(
      readFileSync(join(root, 'usr/lib/systemd/system/rocknsm.target.d/10-services.conf'), 'utf8'),
      /^Wants=rocknsm-zeek\.service .*rocknsm-docket\.service$/m,
    );
    const qga = readFileSync(
      join(root, 'usr/share/containers/systemd/rocknsm-agent-qemu-guest-agent.container'),
      'utf8',
    );
    assert.match(qga, /^ConditionVirtualization=\|kvm$/m);
    assert.match(qga, /^Image=ghcr\.io\/rocknsm\/agents\/qemu-guest-agent:/m);
    assert.match(
      readFileSync(join(root, 'usr/share/containers/systemd/rocknsm-agent-open-vm-tools.container'), 'utf8'),
      /^ConditionVirtualization=\|vmware$/m,
    );
    // Nothing new under /var: the base's four directories only.
    assert.equal(
      sh('find', [join(root, 'var')])
        .trim()
        .split('\n')
        .map((p) => p.slice(root.length))
        .sort(),
      ['/var', '/var/lib', '/var/log', '/var/spool', '/var/tmp'],
    );
  }
});

test('build: Ignition base config baked before dracut; every profile published, valid', () => {
  const base = cli(['ignition', '--profile', 'default', '--base']);
  assert.is(base.code, 0, base.stderr);
  for (const arch of ['x86_64', 'aarch64'] as const) {
    const root = join(work, `unpack-${arch}`, 'bundle/rootfs');
    // The base config rides in the image's dracut module, and only there (Ignition reads base
    // configs in the initramfs only).
    const moduleDir = join(root, 'usr/lib/dracut/modules.d/50rocknsm-ignition-base');
    const baked = readFileSync(join(moduleDir, '30-rocknsm-storage.ign'), 'utf8');
    assert.is(baked, base.stdout);
    assert.match(baked, /"label": "rock-stenographer"/);
    assert.not.ok(existsSync(join(root, 'usr/lib/ignition/base.d')), 'no base config in the root filesystem');
    assert.match(
      readFileSync(join(moduleDir, 'module-setup.sh'), 'utf8'),
      /inst_simple "\$moddir\/30-rocknsm-storage\.ign" "\/usr\/lib\/ignition\/base\.d\/30-rocknsm-storage\.ign"/,
    );
    assert.ok(statSync(join(moduleDir, 'module-setup.sh')).mode & 0o100, 'module-setup.sh executable');
    // It was in place when the initramfs was made: the dracut stand-in packed it.
    const img = join(root, `usr/lib/modules/${KVER[arch]}/initramfs.img`);
    assert.is(cpioFile(img, 'usr/lib/ignition/base.d/30-rocknsm-storage.ign'), baked);
    const m = meta(arch);
    const published = Object.keys(m.images)
      .filter((k) => k.startsWith('ignition-'))
      .sort();
    assert.equal(published, [
      'ignition-capture-heavy',
      'ignition-default',
      'ignition-minimal',
      'ignition-separate-data-disk',
    ]);
    for (const key of published) {
      const entry = m.images[key];
      const file = join(out, 'builds', VERSION, arch, entry.path);
      assert.is(entry.path, `rocknsm-coreos-${VERSION}-${key.slice('ignition-'.length)}.ign`);
      assert.is(sh('sha256sum', [file]).split(' ')[0], entry.sha256);
      assert.is(statSync(file).size, entry.size);
      const v = shResult(needTool('ignition-validate'), [file]);
      assert.is(v.code, 0, `${entry.path}: ${v.stdout}${v.stderr}`);
      const config = JSON.parse(readFileSync(file, 'utf8'));
      // Published for merging: the admin user is there, the keys come from the site's config.
      assert.is(config.passwd.users.length, 1);
      assert.match(config.passwd.users[0].name, /^[a-z_][a-z0-9_-]*$/);
      assert.is(config.passwd.users[0].sshAuthorizedKeys, undefined);
    }
  }
});

test('build: unchanged inputs skip the build', () => {
  const before = readFileSync(join(out, 'builds/builds.json'), 'utf8');
  const r = cli(buildArgs(out, join(work, 'st1'), 'tools'));
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /inputs unchanged since build 41\.20261122\.3\.0/);
  assert.not.match(r.stderr, /buildah build/);
  assert.is(readFileSync(join(out, 'builds/builds.json'), 'utf8'), before);
});

test('build: reproducible, same digests from a fresh storage and output', () => {
  const out2 = join(work, 'out2');
  const r = cli(buildArgs(out2, join(work, 'st2'), 'tools', ['--version', VERSION]));
  assert.is(r.code, 0, r.stderr);
  for (const arch of ['x86_64', 'aarch64']) {
    const again = JSON.parse(readFileSync(join(out2, 'builds', VERSION, arch, 'meta.json'), 'utf8'));
    assert.is(again['rocknsm.image-digest'], meta(arch)['rocknsm.image-digest'], arch);
    assert.is(again['rocknsm.input-hash'], meta(arch)['rocknsm.input-hash'], arch);
  }
});

test('build: a base without dracut or bootc gets no RUN steps', () => {
  const out3 = join(work, 'out3');
  const r = cli(buildArgs(out3, join(work, 'st1'), 'plain', ['--arch', 'aarch64']));
  assert.is(r.code, 0, r.stderr);
  const builds = JSON.parse(readFileSync(join(out3, 'builds/builds.json'), 'utf8'));
  const cf = readFileSync(join(out3, 'builds', builds.builds[0].id, 'aarch64', 'Containerfile'), 'utf8');
  assert.not.match(cf, /^RUN /m);
  assert.match(cf, /^FROM localhost\/rocknsm-base@sha256:[0-9a-f]{64}$/m);
  assert.match(builds.builds[0].id, /^41\.\d{8}\.3\.0$/);
});

test('build: invalid configuration exits 65 before any work, naming file:line:col', () => {
  const r = cli(['build', '--stream', 'nope', '--output', join(work, 'out4')]);
  assert.is(r.code, 65, r.stderr);
  assert.match(r.stderr, /no stream 'nope'/);
  assert.not.ok(existsSync(join(work, 'out4/builds')));
});

test('build: usage errors exit 64', () => {
  assert.is(cli(['build']).code, 64);
  assert.is(cli(['build', '--stream', 'stable', '--arch', 'sparc']).code, 64);
  assert.is(cli(['build', '--stream', 'stable', '--base', '/no/transport']).code, 64);
  assert.is(cli(['frobnicate']).code, 64);
});

test.run();
