// overlays/05identity rocknsm-boot-report: the console lines the boot tests wait for on a real
// image (test/sensor/ reads them from the running sensor OS). Run for real with sh; systemctl and
// findmnt are stand-ins on PATH (no systemd runs here) answering the queries the script makes.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_MARKER } from '../../pipeline/boot/plan.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';

const script = join(repoRoot, 'overlays/05identity/usr/libexec/rocknsm-boot-report');
const VERSION = '41.20261123.3.0';

interface World {
  failed?: string;
  /** unit -> is-active answer, in rocknsm.target's Wants order. */
  wants?: Record<string, string>;
  /** Lines of `list-jobs --no-legend --plain`, one list per call (the last repeats). */
  jobs?: string[][];
  root?: string;
  wait?: number;
}

function run(w: World): { code: number; stdout: string; calls: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rock-report-'));
  try {
    writeFileSync(join(dir, 'os-release'), `ID=fedora\nVARIANT_ID=rocknsm\nIMAGE_VERSION=${VERSION}\n`);
    const jobs = w.jobs ?? [[]];
    for (const [i, list] of jobs.entries())
      writeFileSync(join(dir, `jobs.${i}`), list.map((l) => `${l}\n`).join(''));
    const wants = w.wants ?? {};
    writeFileSync(
      join(dir, 'systemctl'),
      `#!/bin/sh
echo "$*" >> "${dir}/calls"
case "$*" in
  "list-jobs --no-legend --plain")
    n=$(cat "${dir}/n" 2>/dev/null || echo 0)
    [ -f "${dir}/jobs.$n" ] || n=${jobs.length - 1}
    cat "${dir}/jobs.$n"; echo $((n + 1)) > "${dir}/n";;
  "show -p Wants --value rocknsm.target") echo '${Object.keys(wants).join(' ')}';;
  "is-active "*) case "$2" in ${Object.entries(wants)
    .map(([u, s]) => `${u}) echo ${s};;`)
    .join(' ')} *) echo inactive;; esac;;
  "list-units --state=failed --no-legend --plain") printf '%s' '${w.failed ?? ''}';;
  *) exit 9;;
esac
`,
    );
    writeFileSync(
      join(dir, 'findmnt'),
      `#!/bin/sh\n[ "$*" = "-n -o FSTYPE,SOURCE /" ] || exit 9\necho '${w.root ?? 'overlay composefs'}'\n`,
    );
    writeFileSync(join(dir, 'sleep'), '#!/bin/sh\nexit 0\n');
    for (const f of ['systemctl', 'findmnt', 'sleep']) chmodSync(join(dir, f), 0o755);
    const r = shResult('sh', [script], {
      env: {
        PATH: `${dir}:${process.env.PATH}`,
        ROCKNSM_OS_RELEASE: join(dir, 'os-release'),
        ...(w.wait !== undefined ? { ROCKNSM_REPORT_WAIT: String(w.wait) } : {}),
      },
    });
    let calls = '';
    try {
      calls = readFileSync(join(dir, 'calls'), 'utf8');
    } catch {}
    return { code: r.code, stdout: r.stdout, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ok = `${DEFAULT_MARKER.replace('{version}', VERSION)}\n`;

test('all settled, every service active: root line, one line per service, the default marker', () => {
  const r = run({ wants: { 'rocknsm-zeek.service': 'active', 'rocknsm-kafka.service': 'active' } });
  assert.is(r.code, 0);
  assert.is(
    r.stdout,
    [
      'rocknsm-boot-report: / is overlay from composefs',
      'rocknsm-boot-report: rocknsm-zeek.service active',
      'rocknsm-boot-report: rocknsm-kafka.service active',
      '',
    ].join('\n') + ok,
  );
});

test('waits while other start jobs are queued (its own job does not count)', () => {
  const r = run({
    jobs: [
      ['12 rocknsm-zeek.service start running', '14 rocknsm-boot-report.service start running'],
      ['14 rocknsm-boot-report.service start running'],
    ],
    wants: { 'rocknsm-zeek.service': 'active' },
  });
  assert.is(r.calls.split('\n').filter((l) => l === 'list-jobs --no-legend --plain').length, 2);
  assert.ok(r.stdout.endsWith(ok), r.stdout);
});

test('gives up waiting after ROCKNSM_REPORT_WAIT seconds and says so', () => {
  const r = run({
    jobs: [['12 rocknsm-zeek.service start running']],
    wait: 4,
    wants: { 'rocknsm-zeek.service': 'activating' },
  });
  assert.match(r.stdout, /^rocknsm-boot-report: start jobs still queued after 4 s$/m);
  assert.match(
    r.stdout,
    /ROCKNSM-BOOT-FAIL VARIANT_ID=rocknsm VERSION=41\.20261123\.3\.0 inactive: rocknsm-zeek\.service\n$/,
  );
});

test('failed or inactive units: a FAIL line naming them, never the OK marker', () => {
  const r = run({
    failed: 'zeek.service loaded failed failed Zeek\nvar-log-bro.mount loaded failed failed /var/log/bro\n',
    wants: {
      'rocknsm-zeek.service': 'failed',
      'rocknsm-fsf.service': 'activating',
      'rocknsm-kafka.service': 'active',
    },
    root: 'xfs /dev/vda4',
  });
  assert.is(r.code, 0);
  assert.match(r.stdout, /^rocknsm-boot-report: \/ is xfs from \/dev\/vda4$/m);
  assert.match(r.stdout, /^rocknsm-boot-report: rocknsm-fsf\.service activating$/m);
  assert.not.match(r.stdout, /ROCKNSM-BOOT-OK/);
  assert.match(
    r.stdout,
    /^ROCKNSM-BOOT-FAIL VARIANT_ID=rocknsm VERSION=41\.20261123\.3\.0 failed: zeek\.service var-log-bro\.mount inactive: rocknsm-zeek\.service rocknsm-fsf\.service$/m,
  );
});

test('the script passes shellcheck; the unit is wanted by multi-user.target and prints to the console', () => {
  const sc = shResult(needTool('shellcheck'), [script]);
  assert.is(sc.code, 0, sc.stdout);
  const unit = readFileSync(
    join(
      repoRoot,
      'overlays/05identity/usr/lib/systemd/system/multi-user.target.wants/rocknsm-boot-report.service',
    ),
    'utf8',
  );
  assert.match(unit, /^ExecStart=\/usr\/libexec\/rocknsm-boot-report$/m);
  assert.match(unit, /^StandardOutput=journal\+console$/m);
  assert.match(unit, /^TimeoutStartSec=20min$/m);
});

test.run();
