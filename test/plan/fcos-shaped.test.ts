// `rock-image compose --print-only` on a config tree shaped like fedora-coreos-config (@2d0fce6d),
// for both arches: flattened treefiles equal to reviewed goldens, lockfiles and overrides on the
// command lines, override rules refused with file:line. The fixture is our own text in that shape.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compose } from '../../pipeline/commands/compose.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { ConfigError } from '../../pipeline/errors.ts';
import { createLogger } from '../../pipeline/log.ts';
import { parseLockfile } from '../../pipeline/plan/lockfile.ts';
import { flattenTreefile } from '../../pipeline/plan/treefile.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = join(root, 'test/fixtures/fcos-shaped');
const golden = join(root, 'test/golden/fcos-shaped');
const ARCHES = ['x86_64', 'aarch64'];
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

function context() {
  let out = '';
  const calls: string[][] = [];
  const ctx: Context = {
    root,
    cwd: root,
    env: {},
    now: () => Date.UTC(2025, 1, 20),
    log: createLogger({ mode: 'plain', out: { write: () => true } }),
    run: async (cmd, args) => {
      calls.push([cmd, ...args]);
      return { stdout: '', stderr: '', exitCode: 0 };
    },
    stdout: { write: (s: string) => (out += s) },
    cores: 2,
  };
  return { ctx, calls, out: () => out };
}

/** `compose --print-only` of the stable stream on the tree at `dir`, both arches, host mode. */
const printOnly = (ctx: Context, dir: string) =>
  compose.run(
    ctx,
    {
      stream: 'stable',
      treefile: join(dir, 'manifest.yaml'),
      arch: ARCHES,
      'print-only': true,
      mode: 'host',
      output: '/tmp/x',
    },
    [],
  );

/** Flattened as the compose wrapper does it: the stable stream's variables win over the root's. */
const flatten = (arch: string) =>
  flattenTreefile({
    file: join(fixture, 'manifest.yaml'),
    basearch: arch,
    read,
    variables: { stream: 'stable', prod: true },
  });

/** The printed flattened treefile of one arch (the JSON after its header line). */
function printed(text: string, arch: string): unknown {
  const start = text.indexOf('{', text.indexOf(`# ${arch}: flattened treefile`));
  return JSON.parse(text.slice(start, text.indexOf('\n}\n', start) + 2));
}

test('compose --print-only: both arches flattened, lockfile then overrides on each command line, nothing run', async () => {
  const { ctx, calls, out } = context();
  assert.is(await printOnly(ctx, fixture), 0);
  assert.equal(calls, []);
  const text = out();
  for (const arch of ARCHES) {
    assert.match(text, `# ${arch}: flattened treefile (rpm-ostree compose tree --print-only)`);
    assert.equal(printed(text, arch), flatten(arch).treefile);
    assert.match(
      text,
      `--lockfile=${fixture}/manifest-lock.${arch}.json --lockfile=${fixture}/manifest-lock.overrides.yaml`,
    );
    // Both overlay.d trees the arch's ostree-layers name are committed as their refs.
    for (const layer of ['05base', '15product'])
      assert.match(text, `--branch=overlay/${layer} --tree=dir=${fixture}/overlay.d/${layer}`);
    assert.match(
      text,
      `# ${arch}: variables {"basearch":"${arch}","prod":true,"releasever":41,"stream":"stable"}`,
    );
  }
});

for (const arch of ARCHES) {
  test(`${arch}: the flattened treefile matches test/golden/fcos-shaped/${arch}.json`, () => {
    const text = `${JSON.stringify(flatten(arch).treefile, null, 2)}\n`;
    const path = join(golden, `${arch}.json`);
    if (process.env.UPDATE_GOLDEN === '1') {
      mkdirSync(golden, { recursive: true });
      writeFileSync(path, text);
    }
    assert.ok(existsSync(path), `missing ${path}; run with UPDATE_GOLDEN=1 and review it`);
    assert.fixture(text, readFileSync(path, 'utf8'));
  });
}

// What the goldens were reviewed for, stated once so that a careless UPDATE_GOLDEN=1 cannot hide it.
test("the goldens' semantics: arch packages, conditions, variables, merge rules (treefile_merge)", () => {
  const x86 = flatten('x86_64').treefile;
  const arm = flatten('aarch64').treefile;
  const pk = (t: Record<string, unknown>) => t.packages as string[];
  // packages-<arch> and arch-include only for their arch; s390x and ppc64le never.
  for (const p of ['amd-ucode-firmware', 'microcode_ctl', 'grub2-efi-x64', 'shim-x64'])
    assert.ok(pk(x86).includes(p) && !pk(arm).includes(p), p);
  for (const p of ['qemu-user-static-x86', 'grub2-efi-aa64', 'shim-aa64', 'uboot-images-armv8'])
    assert.ok(pk(arm).includes(p) && !pk(x86).includes(p), p);
  for (const p of ['powerpc-utils-core', 'grub2-ppc64le', 's390utils-core'])
    assert.ok(!pk(x86).includes(p) && !pk(arm).includes(p), p);
  // Split on whitespace, sorted, each name once (systemd, ignition, irqbalance are listed twice).
  for (const t of [x86, arm]) {
    assert.ok(
      ['podman', 'skopeo', 'rpm-ostree', 'nss-altfiles', 'clevis-luks'].every((p) => pk(t).includes(p)),
    );
    assert.ok(!pk(t).some((p) => p.includes(' ')));
    assert.equal(pk(t), [...new Set(pk(t))].sort());
  }
  // The wrapper's stream/prod beat the root's; releasever 41: `>= 41` applies, `< 41` does not.
  assert.is(x86.ref, 'example/x86_64/coreos/stable');
  // rojig in struct Rojig's field order, description null when unset (rust/src/treefile.rs:2200-2206).
  assert.is(
    JSON.stringify(x86.rojig),
    '{"name":"example-coreos","summary":"Example CoreOS, stable stream","license":"MIT","description":null}',
  );
  // Every parsed file gets the compose's basearch, and --print-only shows it (:102-117, :2556-2557).
  assert.is(x86.basearch, 'x86_64');
  // check-passwd is internally tagged (:2127-2155): type first.
  assert.is(JSON.stringify(x86['check-passwd']), '{"type":"file","filename":"passwd"}');
  assert.is(x86['automatic-version-prefix'], '41.<date:%Y%m%d>.dev');
  assert.is(x86['mutate-os-release'], '41');
  assert.ok(pk(x86).includes('dnf5') && !(x86['exclude-packages'] as string[]).includes('dnf5'));
  assert.ok(!(x86['ostree-layers'] as string[]).includes('overlay/16updates-off'), 'prod == false');
  // Scalar: the including file wins (base's multi-user over user-tools' graphical).
  assert.is(x86['default-target'], 'multi-user.target');
  // Map: merged per key, the including file wins (product's variant over base's).
  assert.equal(x86['add-commit-metadata'], {
    'example-coreos.base-version': 3,
    'example-coreos.stream': 'stable',
    'example-coreos.variant': 'product',
  });
  // Vec: the included file's entries first, so a later sibling include's come before an earlier one's.
  assert.equal(x86['ostree-layers'], ['overlay/05base', 'overlay/15product']);
  assert.equal(x86['etc-group-members'], ['wheel', 'adm', 'docker']);
  assert.equal(x86['exclude-packages'], ['kernel-debug-core', 'perl-interpreter', 'python3', 'initscripts']);
  assert.equal(
    (x86['remove-from-packages'] as string[][]).map((e) => e[0]),
    ['grub2-tools', 'systemd', 'cracklib-dicts'],
  );
  // Set: the sorted union.
  assert.equal(x86['ignore-removed-users'], ['core', 'root']);
});

test('the lockfile of each arch locks every package its treefile names; every treefile is read', () => {
  for (const arch of ARCHES) {
    const r = flatten(arch);
    const lock = parseLockfile(
      readFileSync(join(fixture, `manifest-lock.${arch}.json`), 'utf8'),
      `manifest-lock.${arch}.json`,
    );
    const unlocked = (r.treefile.packages as string[]).filter((p) => !(p in lock.packages));
    assert.equal(unlocked, [], arch);
    // Conditional includes whose condition is false are never read.
    const names = r.files.map((f) => f.slice(fixture.length + 1));
    assert.ok(names.includes('manifests/bootloader-trim.yaml') && names.includes('manifests/with-dnf.yaml'));
    assert.ok(!names.includes('manifests/updates-off.yaml') && !names.includes('manifests/no-dnf.yaml'));
    assert.equal(
      r.externals.map((e) => `${e.role} ${e.path.slice(fixture.length + 1)}`),
      ['check-passwd manifests/passwd', 'check-groups manifests/group'],
    );
  }
});

/** A copy of the fixture with `overrides` as its manifest-lock.overrides.yaml; the issues of its compose. */
async function overrideIssues(overrides: string) {
  const dir = mkdtempSync(join(tmpdir(), 'fcos-shaped-'));
  try {
    cpSync(fixture, dir, { recursive: true });
    writeFileSync(join(dir, 'manifest-lock.overrides.yaml'), overrides);
    const { ctx, calls } = context();
    let err: unknown;
    await printOnly(ctx, dir).catch((e) => {
      err = e;
    });
    assert.equal(calls, []);
    assert.instance(err, ConfigError);
    return { dir, issues: (err as ConfigError).issues };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 1-based line of the first line of `text` that contains `needle`. */
const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

test('an override without its reason is refused at its line (override-reason)', async () => {
  const base = readFileSync(join(fixture, 'manifest-lock.overrides.yaml'), 'utf8');
  // The kernel pin without its reason.
  const bad = base.replace(/\n {6}reason: \S+\n {6}type: pin\n/, '\n      type: pin\n');
  assert.is.not(bad, base);
  const { dir, issues } = await overrideIssues(bad);
  assert.equal(
    issues.map((i) => [i.file, i.line, i.rule, i.path]),
    [
      [
        join(dir, 'manifest-lock.overrides.yaml'),
        lineOf(bad, '      type: pin'),
        'override-reason',
        '/packages/kernel/metadata',
      ],
    ],
  );
  assert.match(issues[0]!.message, 'a pin needs metadata.reason');
});

test('an override of a package no lockfile has is refused at its key (override-unlocked)', async () => {
  const base = readFileSync(join(fixture, 'manifest-lock.overrides.yaml'), 'utf8');
  const bad = `${base}  cowsay:\n    evr: 3.8.3-1.fc41\n    metadata:\n      reason: https://tracker.example.org/coreos/issues/40\n      type: pin\n`;
  const { dir, issues } = await overrideIssues(bad);
  assert.equal(
    issues.map((i) => [i.file, i.line, i.col, i.rule]),
    [[join(dir, 'manifest-lock.overrides.yaml'), lineOf(bad, '  cowsay:'), 3, 'override-unlocked']],
  );
});

test.run();
