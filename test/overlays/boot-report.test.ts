// overlays/05identity rocknsm-boot-report: the console line the boot tests wait for on a real
// image. Run for real with sh; systemctl is a stand-in on PATH (no systemd runs here) that lists
// failed units the way `systemctl list-units --state=failed --no-legend --plain` does.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_MARKER } from '../../pipeline/boot/plan.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';

const script = join(repoRoot, 'overlays/05identity/usr/libexec/rocknsm-boot-report');

function run(failed: string): { code: number; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rock-report-'));
  try {
    writeFileSync(join(dir, 'os-release'), 'ID=fedora\nVARIANT_ID=rocknsm\nIMAGE_VERSION=41.20261123.3.0\n');
    writeFileSync(
      join(dir, 'systemctl'),
      `#!/bin/sh\n[ "$*" = "list-units --state=failed --no-legend --plain" ] || exit 9\nprintf '%s' '${failed}'\n`,
    );
    chmodSync(join(dir, 'systemctl'), 0o755);
    const r = shResult('sh', [script], {
      env: { PATH: `${dir}:${process.env.PATH}`, ROCKNSM_OS_RELEASE: join(dir, 'os-release') },
    });
    return { code: r.code, stdout: r.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('no failed unit: the default marker of rock-image test, with the deployed version', () => {
  const r = run('');
  assert.is(r.code, 0);
  assert.is(r.stdout, `${DEFAULT_MARKER.replace('{version}', '41.20261123.3.0')}\n`);
});

test('failed units: a FAIL line naming them, never the OK marker', () => {
  const r = run(
    'zeek.service loaded failed failed Zeek\nvar-log-bro.mount loaded failed failed /var/log/bro\n',
  );
  assert.is(r.code, 0);
  assert.is(
    r.stdout,
    'ROCKNSM-BOOT-FAIL VARIANT_ID=rocknsm VERSION=41.20261123.3.0 failed: zeek.service var-log-bro.mount\n',
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
});

test.run();
