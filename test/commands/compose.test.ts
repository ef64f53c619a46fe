// `rock-image compose`: --print-only (what `plan --compose` shows), --diff, --autolock planning,
// and the production path failing with exit 69 on a host that cannot run rpm-ostree.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compose } from '../../pipeline/commands/compose.ts';
import { formatComposePlan } from '../../pipeline/commands/compose-print.ts';
import {
  type ComposeOptions,
  planStreamCompose,
  streamComposeSettings,
} from '../../pipeline/commands/compose-stream.ts';
import type { Context } from '../../pipeline/commands/types.ts';
import { type ConfigError, ToolMissingError, UsageError } from '../../pipeline/errors.ts';
import type { RunResult } from '../../pipeline/exec/run.ts';
import { which } from '../../pipeline/exec/tools.ts';
import { createLogger } from '../../pipeline/log.ts';
import { parseImageLock } from '../../pipeline/plan/image-lock.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

function context(results: Record<string, Partial<RunResult>> = {}) {
  let out = '';
  const calls: string[][] = [];
  const ctx: Context = {
    root,
    cwd: root,
    env: {},
    now: () => Date.UTC(2025, 0, 14),
    log: createLogger({ mode: 'plain', out: { write: () => true } }),
    run: async (cmd, args) => {
      calls.push([cmd, ...args]);
      return { stdout: '', stderr: '', exitCode: 0, ...(results[`${cmd} ${args[0]}`] ?? {}) };
    },
    stdout: { write: (s: string) => (out += s) },
    cores: 2,
  };
  return { ctx, calls, out: () => out };
}

/** Container-mode options for the stable stream of the project at `dir`, x86_64. */
function options(dir: string): ComposeOptions {
  return {
    stream: 'stable',
    arches: ['x86_64'],
    settings: streamComposeSettings(dir, 'stable'),
    treefile: join(dir, 'manifests/compose/manifest.yaml'),
    output: join(dir, 'out'),
    cacheDir: join(dir, 'cache'),
    mode: 'container',
    autolock: false,
    imageLock: existsSync(join(dir, 'manifests/image-locks.json'))
      ? parseImageLock(readFileSync(join(dir, 'manifests/image-locks.json'), 'utf8'), 'l')
      : { images: {} },
  };
}

test('--print-only: flattened treefile per arch and the exact command lines, nothing run', async () => {
  const { ctx, calls, out } = context();
  const code = await compose.run(
    ctx,
    { stream: 'stable', arch: ['x86_64'], 'print-only': true, mode: 'container', output: '/tmp/o' },
    [],
  );
  assert.is(code, 0);
  assert.is(calls.length, 0);
  const text = out();
  const golden = JSON.parse(
    readFileSync(join(root, 'test/golden/treefile/rocknsm-stable.x86_64.json'), 'utf8'),
  );
  const printed = text.slice(text.indexOf('{'), text.indexOf('\n}\n') + 2);
  assert.equal(JSON.parse(printed), golden.treefile);
  assert.match(
    text,
    `podman run --rm --privileged --security-opt=label=disable --pull=missing -v ${root}manifests/compose:/srv/config:ro -v /tmp/o/work/x86_64:/srv/work`,
  );
  assert.match(
    text,
    '#   rpm-ostree compose image --format=ociarchive --initialize-mode=if-not-exists --touch-if-changed=/srv/work/changed --cachedir=/srv/cache',
  );
  assert.match(text, /# x86_64: input hash sha256:[0-9a-f]{64}/);
  // No lock in this checkout: the plan says the run would refuse the moving tag.
  assert.match(
    text,
    '# x86_64: builder image quay.io/fedora/fedora:41 is a tag that manifests/image-locks.json does not pin',
  );
});

test('--lock-builder: the tag resolved to its index digest, then the builder runs by digest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-lock-'));
  try {
    for (const d of ['manifests', 'overlays', 'containerfiles'])
      cpSync(join(root, d), join(dir, d), { recursive: true });
    // What `skopeo inspect --raw` prints for a multi-arch tag: the registry's bytes exactly, with
    // no newline added (containers/skopeo cmd/skopeo/inspect.go:120-121 @b71619af); its digest is
    // the sha256 of those bytes, a trailing newline of the registry's own included.
    const index =
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}\n';
    const digest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
    const { ctx, calls, out } = context({ 'skopeo inspect': { stdout: index } });
    ctx.root = dir;
    ctx.cwd = dir;
    const unlocked = planStreamCompose(options(dir));
    assert.is(unlocked[0]!.unlockedBuilder, 'quay.io/fedora/fedora:41');
    assert.is(await compose.run(ctx, { 'lock-builder': true }, []), 0);
    assert.equal(calls, [
      ['skopeo', 'inspect', '--raw', '--retry-times', '3', 'docker://quay.io/fedora/fedora:41'],
    ]);
    assert.is(out(), `quay.io/fedora/fedora:41 ${digest}\n`);
    const lock = JSON.parse(readFileSync(join(dir, 'manifests/image-locks.json'), 'utf8'));
    assert.equal(lock, { images: { 'quay.io/fedora/fedora:41': { digest, resolved: '2025-01-14' } } });
    const [p] = planStreamCompose(options(dir));
    assert.is(p!.unlockedBuilder, undefined);
    assert.is(p!.plan.podman!.at(-3), `quay.io/fedora/fedora:41@${digest}`);
    // The digest is an input: re-locking to another image changes the hash.
    assert.is.not(p!.inputHash, unlocked[0]!.inputHash);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('image lock: a digest reference or a malformed digest is refused with file and line', () => {
  const bad = (text: string) => {
    try {
      parseImageLock(text, 'image-locks.json');
      return [];
    } catch (e) {
      return (e as ConfigError).issues.map((i) => `${i.line} ${i.rule}`);
    }
  };
  const d = `sha256:${'a'.repeat(64)}`;
  assert.equal(bad(`{"images": {"q.io/f:41": {"digest": "${d}"}}}`), []);
  assert.equal(bad(`{"images": {\n"q.io/f:41": {"digest": "sha256:abc"}}}`), ['2 image-lock-digest']);
  assert.equal(bad(`{"images": {\n"q.io/f@${d}": {"digest": "${d}"}}}`), ['2 image-lock-ref']);
});

test('--diff OLD NEW prints the package changes; --json as JSON', async () => {
  const a = 'test/fixtures/lockfile/manifest-lock.2024-12.x86_64.json';
  const b = 'test/fixtures/lockfile/manifest-lock.2025-01.x86_64.json';
  const t = context();
  assert.is(await compose.run(t.ctx, { diff: a }, [b]), 0);
  assert.match(t.out(), /^Package changes: 9 upgraded, 1 downgraded, 2 added, 1 removed, 63 unchanged\n/);
  const j = context();
  await compose.run(j.ctx, { diff: a, json: true }, [b]);
  assert.equal(JSON.parse(j.out()).removed, [
    { name: 'iptables-legacy', from: '1.8.10-13.fc41', source: 'iptables' },
  ]);
});

test('usage errors: no stream, bad mode, bad arch, --diff without NEW', async () => {
  const { ctx } = context();
  for (const [values, pos] of [
    [{}, []],
    [{ stream: 'stable', mode: 'vm' }, []],
    [{ stream: 'stable', arch: ['ppc64le'] }, []],
    [{ diff: 'a.json' }, []],
  ] as const) {
    let err: unknown;
    await compose.run(ctx, { ...values } as never, [...pos]).catch((e) => {
      err = e;
    });
    assert.instance(err, UsageError, JSON.stringify(values));
  }
});

test('a real compose on a host without rpm-ostree or a pullable builder image exits 69', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-cmd-'));
  try {
    const { ctx } = context({
      'podman image': { exitCode: 1 },
      'podman pull': { exitCode: 125, stderr: 'no such host' },
    });
    let err: unknown;
    const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
    const pinned = `quay.io/fedora/fedora:41@sha256:${'a'.repeat(64)}`;
    await compose
      .run(ctx, { stream: 'stable', arch: [arch], output: dir, 'builder-image': pinned }, [])
      .catch((e) => {
        err = e;
      });
    assert.instance(err, ToolMissingError);
    assert.is((err as ToolMissingError).exitCode, 69);
    // Container mode with the stream's tag and no lock: refused before anything runs.
    if (!which('rpm-ostree') && which('podman')) {
      const { ctx: c2, calls } = context();
      err = undefined;
      await compose.run(c2, { stream: 'stable', arch: [arch], output: dir }, []).catch((e) => {
        err = e;
      });
      assert.instance(err, UsageError);
      assert.match((err as Error).message, "'rock-image compose --lock-builder'");
      assert.equal(calls, []);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--autolock: an arch without a lockfile gets the primary arch versions, then the overrides', () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-auto-'));
  try {
    cpSync(join(root, 'manifests/compose'), join(dir, 'config'), { recursive: true });
    rmSync(join(dir, 'config/manifest-lock.aarch64.json'));
    const settings = { ...streamComposeSettings(root, 'stable') };
    const [p] = planStreamCompose({
      stream: 'stable',
      arches: ['aarch64'],
      settings,
      treefile: join(dir, 'config/manifest.yaml'),
      output: join(dir, 'out'),
      cacheDir: join(dir, 'cache'),
      mode: 'host',
      autolock: true,
      imageLock: { images: {} },
    });
    assert.is(p!.autolock!.path, join(dir, 'out/work/aarch64/manifest-lock.autolock.aarch64.json'));
    assert.equal(p!.autolock!.lockfile.packages.podman, { evr: '5:5.3.1-1.fc41' });
    assert.equal(p!.plan.request.lockfiles, [
      p!.autolock!.path,
      join(dir, 'config/manifest-lock.overrides.yaml'),
    ]);
    assert.ok(p!.plan.steps.at(-1)!.includes(`--lockfile=${p!.autolock!.path}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unknown override type stops --print-only with the overrides file, line and column', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-bad-'));
  try {
    cpSync(join(root, 'manifests/compose'), join(dir, 'config'), { recursive: true });
    const overrides = join(dir, 'config/manifest-lock.overrides.yaml');
    const text = readFileSync(overrides, 'utf8');
    const lines = text.split('\n');
    const line = lines.indexOf('      type: pin') + 1;
    assert.ok(line > 0);
    writeFileSync(overrides, text.replace('      type: pin', '      type: hold'));
    const { ctx, calls } = context();
    let err: unknown;
    await compose
      .run(ctx, { stream: 'stable', treefile: join(dir, 'config/manifest.yaml'), 'print-only': true }, [])
      .catch((e) => {
        err = e;
      });
    assert.is((err as ConfigError).exitCode, 65);
    assert.match(
      (err as Error).message,
      `${overrides}:${line}:13: override-type at /packages/kernel/metadata/type: metadata.type must be "pin" or "fast-track" (got "hold")`,
    );
    assert.equal(calls, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tree flow: a previous archive at the output path gives container-encapsulate its manifest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-prev-'));
  try {
    const o: ComposeOptions = {
      stream: 'stable',
      arches: ['x86_64'],
      settings: { ...streamComposeSettings(root, 'stable'), flow: 'tree' },
      treefile: join(root, 'manifests/compose/manifest.yaml'),
      output: join(dir, 'out'),
      cacheDir: join(dir, 'cache'),
      mode: 'host',
      autolock: false,
      imageLock: { images: {} },
    };
    const encapsulate = () => planStreamCompose(o)[0]!.plan.steps.at(-1)!;
    assert.not.ok(encapsulate().some((a) => a.startsWith('--previous-build-manifest')));
    mkdirSync(join(dir, 'out/x86_64'), { recursive: true });
    writeFileSync(join(dir, 'out/x86_64/rocknsm-base-stable.x86_64.ociarchive'), '');
    const [p] = planStreamCompose(o);
    assert.ok(
      encapsulate().includes(
        `--previous-build-manifest=${join(dir, 'out/work/x86_64/previous-manifest.json')}`,
      ),
    );
    assert.equal(p!.plan.previousManifest, {
      archive: join(dir, 'out/x86_64/rocknsm-base-stable.x86_64.ociarchive'),
      path: join(dir, 'out/work/x86_64/previous-manifest.json'),
    });
    assert.match(
      formatComposePlan([p!]),
      `# first, on this host: the manifest of ${p!.plan.previousManifest!.archive} -> ${p!.plan.previousManifest!.path}\n`,
    );
    // The image flow reads the previous image itself (--initialize-mode=if-not-exists).
    const image = planStreamCompose({ ...o, settings: { ...o.settings, flow: 'image' } })[0]!.plan;
    assert.is(image.previousManifest, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
