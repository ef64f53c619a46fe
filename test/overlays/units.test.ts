// Every systemd unit and quadlet in overlays/ parses cleanly with the strict unit parser (the
// image lint uses the same parser on the built image), the quadlets carry what a sensor
// service needs, and the parser rejects the mistakes systemd and quadlet would reject.
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { parseUnitFile, unitType } from '../../pipeline/lint/unit-file.ts';
import { repoRoot } from '../world/fcos-base.ts';

const overlaysDir = join(repoRoot, 'overlays');
const manifest = parseYaml(readFileSync(join(repoRoot, 'manifests/image.yaml'), 'utf8')) as {
  services: Record<string, { image: string }>;
  'data-paths': Record<string, { path: string }>;
};

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

/** Renders an overlay template the way the build does, with dummy values for every key. */
function render(text: string): string {
  return text.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (_m, key: string) => {
    const svc = /^services\.([a-z-]+)\.image$/.exec(key);
    if (svc) return `registry.example/rocknsm/${svc[1]}:test`;
    if (/^services\.([a-z-]+)\.image-note$/.test(key)) return 'registry.example/rocknsm/svc:test by tag';
    if (['name', 'osname', 'stream'].includes(key)) return `dummy-${key}`;
    throw new Error(`template key '${key}' is not one the build provides`);
  });
}

const unitPattern =
  /\/(systemd\/system|containers\/systemd)\/.*\.(service|target|mount|socket|timer|path|container|volume|network|pod|kube|image|build)(\.in)?$|\.[a-z]+\.d\/[^/]+\.conf$/;
const units = walk(overlaysDir)
  .filter((p) => unitPattern.test(p) && !lstatSync(p).isSymbolicLink())
  .map((p) => {
    const name = relative(overlaysDir, p).replace(/\.in$/, '');
    const raw = readFileSync(p, 'utf8');
    return { name, text: p.endsWith('.in') ? render(raw) : raw };
  });
const services = Object.keys(manifest.services);

test('the overlays ship rocknsm.target, the boot report and one quadlet per service in the manifest', () => {
  const names = units.map((u) => u.name).sort();
  assert.ok(names.includes('40services/usr/lib/systemd/system/rocknsm.target'));
  assert.ok(names.includes('05identity/usr/lib/systemd/system/rocknsm-boot-report.service'));
  for (const s of services)
    assert.ok(
      names.includes(`40services/usr/share/containers/systemd/rocknsm-${s}.container`),
      `quadlet for ${s}`,
    );
  assert.is(names.length, services.length + 2);
});

test('every unit and quadlet in the overlays parses without issues', () => {
  for (const u of units) {
    const { issues } = parseUnitFile(u.text, u.name);
    assert.equal(issues, [], `${u.name}: ${issues.map((i) => `${i.line}: ${i.message}`).join('; ')}`);
  }
});

test('rocknsm.target is enabled through a relative symlink and waits for the network', () => {
  const link = join(overlaysDir, '40services/usr/lib/systemd/system/multi-user.target.wants/rocknsm.target');
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.is(readlinkSync(link), '../rocknsm.target');
  const target = units.find((u) => u.name.endsWith('/rocknsm.target'))!;
  const s = parseUnitFile(target.text, target.name).sections;
  const unit = Object.fromEntries(s.get('Unit')!.map(([k, v]) => [k, v]));
  assert.is(unit.After, 'network-online.target');
  assert.is(unit.Wants, 'network-online.target');
  assert.ok(unit.Description && unit.Documentation);
  assert.equal(
    s.get('Install')!.map(([k, v]) => [k, v]),
    [['WantedBy', 'multi-user.target']],
  );
});

test('each quadlet: its image key, data mounts, journald, no auto-update, restart, no [Install]', () => {
  const dataPaths = Object.values(manifest['data-paths']).map((d) => d.path);
  const expectMounts: Record<string, string[]> = {
    zeek: ['/var/log/bro', '/var/spool/bro'],
    suricata: ['/var/log/suricata'],
    stenographer: ['/var/lib/stenographer'],
    fsf: ['/var/log/fsf'],
    kafka: ['/var/lib/kafka'],
    elasticsearch: ['/var/lib/elasticsearch'],
    docket: ['/var/spool/docket', '/var/lib/stenographer'],
  };
  const capture = ['zeek', 'suricata', 'stenographer'];
  for (const svc of services) {
    const path = join(overlaysDir, `40services/usr/share/containers/systemd/rocknsm-${svc}.container.in`);
    const raw = readFileSync(path, 'utf8');
    assert.ok(raw.includes(`Image={{services.${svc}.image}}`), `${svc} image comes from the manifest`);
    const s = parseUnitFile(render(raw), `rocknsm-${svc}.container`).sections;
    const all = (sec: string, key: string) =>
      (s.get(sec) ?? []).filter(([k]) => k === key).flatMap(([, v]) => v.split(/\s+/));
    const one = (sec: string, key: string) => all(sec, key).join(' ');
    assert.not.ok(s.has('Install'), `${svc}: pulled in by rocknsm.target, no [Install]`);
    assert.is(one('Unit', 'PartOf'), 'rocknsm.target');
    assert.ok(one('Unit', 'Description') && one('Unit', 'Documentation'));
    assert.equal(all('Unit', 'RequiresMountsFor').sort(), expectMounts[svc]!.sort(), svc);
    for (const p of expectMounts[svc]!) assert.ok(dataPaths.includes(p), `${p} is a manifest data path`);
    const volumes = all('Container', 'Volume');
    for (const p of expectMounts[svc]!)
      assert.ok(
        volumes.some((v) => v.startsWith(`${p}:`) && /:(ro,)?z$/.test(v)),
        `${svc} mounts ${p} with an SELinux label`,
      );
    assert.ok(
      volumes.some((v) => v.startsWith(`/etc/rocknsm/${svc}`) && v.endsWith(':ro,z')),
      `${svc} mounts its configuration read-only`,
    );
    assert.is(one('Container', 'ContainerName'), `rocknsm-${svc}`);
    assert.is(one('Container', 'EnvironmentFile'), '/etc/rocknsm/rocknsm.env');
    // No auto-update: the image changes with the OS image (podman auto-update compares the remote
    // digest of the container's image name, pkg/autoupdate/autoupdate.go:283-305, and a digest
    // reference never moves).
    assert.is(one('Container', 'AutoUpdate'), '', `${svc}: no AutoUpdate=`);
    assert.ok(
      raw.includes(`# {{services.${svc}.image-note}}\nImage=`),
      `${svc}: the reference behind the digest in a comment above Image=`,
    );
    assert.is(one('Container', 'LogDriver'), 'journald');
    assert.is(one('Service', 'Restart'), 'always');
    assert.is(one('Service', 'TimeoutStartSec'), '900');
    if (capture.includes(svc)) {
      assert.is(one('Container', 'Network'), 'host');
      const caps = all('Container', 'AddCapability');
      assert.ok(caps.includes('NET_ADMIN') && caps.includes('NET_RAW'), `${svc} capture capabilities`);
    }
  }
});

test('ordering: the sensors start after Kafka, Docket after Stenographer', () => {
  const after = (svc: string) => {
    const u = units.find((x) => x.name.endsWith(`rocknsm-${svc}.container`))!;
    return parseUnitFile(u.text, u.name)
      .sections.get('Unit')!
      .filter(([k]) => k === 'After')
      .flatMap(([, v]) => v.split(/\s+/));
  };
  for (const svc of ['zeek', 'suricata', 'fsf']) assert.ok(after(svc).includes('rocknsm-kafka.service'), svc);
  assert.ok(after('docket').includes('rocknsm-stenographer.service'));
  assert.not.ok(after('kafka').some((u) => u.startsWith('rocknsm-')));
});

test('every configuration file a quadlet mounts is shipped (or created by tmpfiles.d)', () => {
  const etc = join(overlaysDir, '40services/etc');
  const tmpfiles = readFileSync(
    join(overlaysDir, '40services/usr/lib/tmpfiles.d/rocknsm-services.conf'),
    'utf8',
  );
  for (const u of units.filter((x) => x.name.endsWith('.container'))) {
    const vols = parseUnitFile(u.text, u.name)
      .sections.get('Container')!
      .filter(([k, v]) => k === 'Volume' && v.startsWith('/etc/'));
    for (const [, v] of vols) {
      const host = v.split(':')[0]!;
      let shipped = false;
      try {
        lstatSync(join(etc, host.slice('/etc/'.length)));
        shipped = true;
      } catch {
        shipped = new RegExp(`^d ${host} `, 'm').test(tmpfiles);
      }
      assert.ok(shipped, `${u.name}: ${host}`);
    }
  }
});

// Parser: positive details.
test('parser: continuations, comments, empty values, drop-ins, repeated sections', () => {
  const text = [
    '# comment',
    '; also a comment',
    '[Unit]',
    'Description=Long \\',
    '# skipped inside a continuation',
    '  description',
    'After=',
    '[Service]',
    'ExecStart=/bin/true',
    '[Unit]',
    'Wants = a.service',
    '',
  ].join('\n');
  const r = parseUnitFile(text, 'x.service');
  assert.equal(r.issues, []);
  assert.equal(r.sections.get('Unit'), [
    ['Description', 'Long  description', 4],
    ['After', '', 7],
    ['Wants', 'a.service', 11],
  ]);
  assert.equal(parseUnitFile('[Unit]\nWants=a.service\n', 'rocknsm.target.d/10-services.conf').issues, []);
  assert.is(unitType('/usr/share/containers/systemd/x.container.d/10-env.conf'), 'container');
  assert.equal(parseUnitFile('[Container]\nEnvironment=A=1\n', 'x.container.d/a.conf').issues, []);
});

// Parser: negative cases, each with the line and message.
const bad: [string, string, string, { line: number; message: RegExp }][] = [
  [
    'unknown section',
    'x.service',
    '[Unit]\nDescription=x\n[Container]\nImage=a\n',
    {
      line: 3,
      message: /section \[Container\] is not valid in a \.service file/,
    },
  ],
  [
    'unknown quadlet key',
    'x.container',
    '[Container]\nImage=a\nPorts=80:80\n',
    {
      line: 3,
      message: /unknown key 'Ports' in \[Container\]/,
    },
  ],
  ['missing =', 'x.target', '[Unit]\nDescription x\n', { line: 2, message: /expected Key=value/ }],
  [
    'key outside a section',
    'x.service',
    'Description=x\n[Unit]\n',
    { line: 1, message: /outside any section/ },
  ],
  [
    'unknown [Unit] key',
    'x.service',
    '[Unit]\nRequire=a.service\n',
    {
      line: 2,
      message: /unknown key 'Require' in \[Unit\]/,
    },
  ],
  [
    'unknown [Service] key',
    'x.container',
    '[Container]\nImage=a\n[Service]\nRestarts=always\n',
    {
      line: 4,
      message: /unknown key 'Restarts' in \[Service\]/,
    },
  ],
  [
    'unknown [Install] key',
    'x.target',
    '[Install]\nWantedBY=multi-user.target\n',
    {
      line: 2,
      message: /unknown key 'WantedBY'/,
    },
  ],
  [
    'malformed header',
    'x.service',
    '[Unit\nDescription=x\n',
    { line: 1, message: /malformed section header/ },
  ],
  [
    'invalid key',
    'x.service',
    '[Unit]\nDe scription=x\n',
    { line: 2, message: /invalid key 'De scription'/ },
  ],
  [
    'container without image',
    'x.container',
    '[Container]\nNetwork=host\n',
    {
      line: 0,
      message: /needs Image= or Rootfs=/,
    },
  ],
  [
    'image twice',
    'x.container',
    '[Container]\nImage=a\nImage=b\n',
    { line: 3, message: /Image= given twice/ },
  ],
  [
    'continuation at end',
    'x.service',
    '[Unit]\nDescription=a \\\n',
    {
      line: 2,
      message: /continuation at end of file/,
    },
  ],
  ['unknown unit type', 'x.conf', '[Unit]\n', { line: 0, message: /unknown unit type/ }],
  [
    'volume without [Volume]',
    'x.volume',
    '[Unit]\nDescription=x\n',
    {
      line: 0,
      message: /needs a \[Volume\] section/,
    },
  ],
];
for (const [what, file, text, want] of bad)
  test(`parser rejects: ${what}`, () => {
    const { issues } = parseUnitFile(text, file);
    assert.ok(
      issues.some((i) => i.line === want.line && want.message.test(i.message)),
      JSON.stringify(issues),
    );
  });

test('parser accepts X- extension sections and keys', () => {
  assert.equal(parseUnitFile('[Unit]\nX-Foo=1\n[X-Bar]\nAnything=1\n', 'x.service').issues, []);
});

test.run();
