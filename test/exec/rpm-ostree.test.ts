// The compose invocation: exact argv and mounts in host and container mode, both flows, the input
// hash, skipping unchanged inputs, and failing with exit 69 when nothing can run rpm-ostree.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PipelineError, ToolMissingError } from '../../pipeline/errors.ts';
import { ensureImage } from '../../pipeline/exec/podman.ts';
import {
  type ComposeRequest,
  composeInputHash,
  gatherComposeInputs,
  ociArchiveManifest,
  planCompose,
  resolveMode,
  runCompose,
} from '../../pipeline/exec/rpm-ostree.ts';
import { createRunner, type RunOptions, type RunResult } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { flattenTreefile } from '../../pipeline/plan/treefile.ts';
import { tinyImage } from '../world/signed-release.ts';
import { needTool } from '../world/tools.ts';

const config = fileURLToPath(new URL('../../manifests/compose', import.meta.url));
const real = createRunner(createLogger({ mode: 'plain', out: { write: () => true } }));
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

function request(over: Partial<ComposeRequest> = {}): ComposeRequest {
  const variables = { stream: 'stable', prod: true };
  const arch = over.arch ?? 'x86_64';
  return {
    stream: 'stable',
    arch,
    treefile: join(config, 'manifest.yaml'),
    variables,
    flattened: flattenTreefile({ file: join(config, 'manifest.yaml'), basearch: arch, read, variables }),
    outputDir: '/b/out/x86_64',
    workDir: '/b/work/x86_64',
    cacheDir: '/b/cache',
    lockfiles: [join(config, `manifest-lock.${arch}.json`), join(config, 'manifest-lock.overrides.yaml')],
    repoFiles: [join(config, 'fedora.repo'), join(config, 'rocknsm-pool.repo')],
    mode: 'host',
    flow: 'image',
    builderImage: 'quay.io/fedora/fedora:41',
    labels: { 'io.rocknsm.stream': 'stable' },
    ...over,
  };
}

/** A runner that records calls; `wrote` says whether rpm-ostree writes an image (its --touch-if-changed file). */
function recorder(results: Record<string, Partial<RunResult>> = {}, wrote = { image: true }) {
  const calls: { argv: string[]; opts?: RunOptions }[] = [];
  const run = async (cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> => {
    calls.push({ argv: [cmd, ...args], opts });
    const touch = args.find((a) => a.startsWith('--touch-if-changed='));
    if (cmd === 'rpm-ostree' && touch && wrote.image) writeFileSync(touch.split('=')[1]!, '');
    const r = { stdout: '', stderr: '', exitCode: 0, ...(results[`${cmd} ${args[0]}`] ?? {}) };
    return r;
  };
  return { run, calls };
}

test('host mode, image flow: overlay commit, then compose image with lockfiles and cache', () => {
  const p = planCompose(request());
  assert.equal(p.steps, [
    ['ostree', 'init', '--repo=/b/work/x86_64/layers', '--mode=archive'],
    [
      'ostree',
      'commit',
      '--repo=/b/work/x86_64/layers',
      '--branch=overlay/05rocknsm-base',
      `--tree=dir=${config}/overlay.d/05rocknsm-base`,
      '--owner-uid=0',
      '--owner-gid=0',
      '--no-xattrs',
      '--no-bindings',
      '--parent=none',
      '--mode-ro-executables',
      '--add-metadata-string=ostree.source-title=overlay/05rocknsm-base',
    ],
    [
      'rpm-ostree',
      'compose',
      'image',
      '--format=ociarchive',
      '--initialize-mode=if-not-exists',
      '--touch-if-changed=/b/work/x86_64/changed',
      '--cachedir=/b/cache',
      '--layer-repo=/b/work/x86_64/layers',
      `--lockfile=${config}/manifest-lock.x86_64.json`,
      `--lockfile=${config}/manifest-lock.overrides.yaml`,
      '--write-lockfile-to=/b/out/x86_64/manifest-lock.generated.x86_64.json',
      '--label=io.rocknsm.stream=stable',
      '/b/work/x86_64/treefile/rocknsm-stable.json',
      '/b/out/x86_64/rocknsm-base-stable.x86_64.ociarchive',
    ],
  ]);
  assert.is(p.podman, undefined);
  assert.equal(JSON.parse(p.wrapper.text), {
    include: `${config}/manifest.yaml`,
    variables: { stream: 'stable', prod: true },
  });
  assert.equal(
    p.repoCopies.map(([, to]) => to),
    ['/b/work/x86_64/treefile/fedora.repo', '/b/work/x86_64/treefile/rocknsm-pool.repo'],
  );
});

test('container mode: privileged podman run, four mounts, the same steps with container paths', () => {
  const p = planCompose(request({ mode: 'container', podmanArgs: ['--runtime', 'runc'] }));
  assert.equal(p.podman, [
    'run',
    '--rm',
    '--runtime',
    'runc',
    '--privileged',
    '--security-opt=label=disable',
    '--pull=missing',
    '-v',
    `${config}:/srv/config:ro`,
    '-v',
    '/b/work/x86_64:/srv/work',
    '-v',
    '/b/cache:/srv/cache',
    '-v',
    '/b/out/x86_64:/srv/output',
    '--workdir',
    '/srv/work',
    'quay.io/fedora/fedora:41',
    'bash',
    '/srv/work/compose.sh',
  ]);
  assert.equal(p.steps.at(-1), [
    'rpm-ostree',
    'compose',
    'image',
    '--format=ociarchive',
    '--initialize-mode=if-not-exists',
    '--touch-if-changed=/srv/work/changed',
    '--cachedir=/srv/cache',
    '--layer-repo=/srv/work/layers',
    '--lockfile=/srv/config/manifest-lock.x86_64.json',
    '--lockfile=/srv/config/manifest-lock.overrides.yaml',
    '--write-lockfile-to=/srv/output/manifest-lock.generated.x86_64.json',
    '--label=io.rocknsm.stream=stable',
    '/srv/work/treefile/rocknsm-stable.json',
    '/srv/output/rocknsm-base-stable.x86_64.ociarchive',
  ]);
  assert.is(JSON.parse(p.wrapper.text).include, '/srv/config/manifest.yaml');
  const lines = p.script!.text.split('\n');
  assert.equal(lines.slice(2, 5), [
    'set -euo pipefail',
    'rpm -q rpm-ostree distribution-gpg-keys >/dev/null || dnf -y install --setopt=install_weak_deps=False rpm-ostree distribution-gpg-keys',
    // What floats with the repos is recorded (compose.json builderPackages).
    'rpm -q rpm-ostree distribution-gpg-keys >/srv/work/builder-packages.txt',
  ]);
  assert.is(lines[7], p.steps[2]!.join(' '));
});

test('tree flow: compose tree into a repo, then container-encapsulate the treefile ref', () => {
  const p = planCompose(request({ flow: 'tree', strict: true }));
  assert.equal(p.steps[0], ['ostree', 'init', '--repo=/b/work/x86_64/repo', '--mode=archive']);
  assert.equal(p.steps[2], [
    'rpm-ostree',
    'compose',
    'tree',
    '--unified-core',
    '--repo=/b/work/x86_64/repo',
    '--cachedir=/b/cache',
    '--layer-repo=/b/work/x86_64/repo',
    `--ex-lockfile=${config}/manifest-lock.x86_64.json`,
    `--ex-lockfile=${config}/manifest-lock.overrides.yaml`,
    '--ex-lockfile-strict',
    '--ex-write-lockfile-to=/b/out/x86_64/manifest-lock.generated.x86_64.json',
    '--touch-if-changed=/b/work/x86_64/changed',
    '--write-commitid-to=/b/work/x86_64/commitid',
    '--write-composejson-to=/b/out/x86_64/compose-tree.json',
    '/b/work/x86_64/treefile/rocknsm-stable.json',
  ]);
  assert.equal(p.steps[3], [
    'rpm-ostree',
    'compose',
    'container-encapsulate',
    '--repo=/b/work/x86_64/repo',
    '--label=io.rocknsm.stream=stable',
    'rocknsm/x86_64/base/stable',
    'oci-archive:/b/out/x86_64/rocknsm-base-stable.x86_64.ociarchive',
  ]);
  assert.is(p.previousManifest, undefined);
  // A previous build: its manifest keeps the layer plan (container.rs:95-98 @d5ef5f0c).
  const again = planCompose(request({ flow: 'tree', previousBuild: true, mode: 'container' }));
  assert.equal(again.steps[3], [
    'rpm-ostree',
    'compose',
    'container-encapsulate',
    '--repo=/srv/work/repo',
    '--label=io.rocknsm.stream=stable',
    '--previous-build-manifest=/srv/work/previous-manifest.json',
    'rocknsm/x86_64/base/stable',
    'oci-archive:/srv/output/rocknsm-base-stable.x86_64.ociarchive',
  ]);
  assert.equal(again.previousManifest, {
    archive: '/b/out/x86_64/rocknsm-base-stable.x86_64.ociarchive',
    path: '/b/work/x86_64/previous-manifest.json',
  });
  assert.is(planCompose(request({ previousBuild: true })).previousManifest, undefined);
});

test('ociArchiveManifest: the manifest of an archive written by containers/image (skopeo copy), byte for byte', async () => {
  for (const t of ['skopeo', 'umoci']) needTool(t);
  const dir = mkdtempSync(join(tmpdir(), 'ociarchive-'));
  try {
    await real('umoci', ['init', '--layout', join(dir, 'layout')]);
    await real('umoci', ['new', '--image', `${join(dir, 'layout')}:t`]);
    const archive = join(dir, 'prev.ociarchive');
    await real('skopeo', ['copy', '--quiet', `oci:${join(dir, 'layout')}:t`, `oci-archive:${archive}`]);
    const raw = (await real('skopeo', ['inspect', '--raw', `oci-archive:${archive}`])).stdout;
    assert.is(ociArchiveManifest(archive), raw);
    assert.is(JSON.parse(raw).config.mediaType, 'application/vnd.oci.image.config.v1+json');
    // An archive whose index lists no image manifest is refused with its name.
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'empty/index.json'), '{"schemaVersion":2,"manifests":[]}');
    await real('tar', ['-cf', join(dir, 'empty.ociarchive'), '-C', join(dir, 'empty'), 'index.json']);
    let err: unknown;
    try {
      ociArchiveManifest(join(dir, 'empty.ociarchive'));
    } catch (e) {
      err = e;
    }
    assert.instance(err, PipelineError);
    assert.match((err as Error).message, `${join(dir, 'empty.ociarchive')}: expected one OCI image manifest`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runCompose, tree flow with a previous build: its manifest is in place before rpm-ostree runs', async () => {
  for (const t of ['skopeo', 'umoci']) needTool(t);
  const dir = mkdtempSync(join(tmpdir(), 'compose-'));
  try {
    const p = planCompose(
      request({
        flow: 'tree',
        previousBuild: true,
        outputDir: join(dir, 'out'),
        workDir: join(dir, 'work'),
        cacheDir: join(dir, 'cache'),
      }),
    );
    await real('umoci', ['init', '--layout', join(dir, 'layout')]);
    await real('umoci', ['new', '--image', `${join(dir, 'layout')}:t`]);
    mkdirSync(join(dir, 'out'));
    await real('skopeo', [
      'copy',
      '--quiet',
      `oci:${join(dir, 'layout')}:t`,
      `oci-archive:${p.outputs.archive}`,
    ]);
    const { run, calls } = recorder({ 'skopeo inspect': { exitCode: 1 } });
    let seen: string | undefined;
    const both = async (cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> => {
      if (cmd === 'tar') return real(cmd, args, opts);
      if (args[1] === 'container-encapsulate') seen = readFileSync(p.previousManifest!.path, 'utf8');
      return run(cmd, args, opts);
    };
    await runCompose(both, p, 'sha256:aa', Date.now);
    assert.ok(calls.some((c) => c.argv.includes(`--previous-build-manifest=${p.previousManifest!.path}`)));
    assert.is(seen, (await real('skopeo', ['inspect', '--raw', `oci-archive:${p.outputs.archive}`])).stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('input hash: covers treefile, lockfiles, repo files and overlay contents; not the mode', () => {
  const req = request();
  const inputs = gatherComposeInputs(req);
  assert.equal(Object.keys(inputs.overlays), ['overlay/05rocknsm-base']);
  assert.ok(
    inputs.overlays['overlay/05rocknsm-base']!.some((l) =>
      l.startsWith('usr/lib/sysctl.d/40-rocknsm-capture.conf file - '),
    ),
  );
  assert.ok('manifests/sensor-tools.yaml' in inputs.files && 'fedora.repo' in inputs.files);
  const h = composeInputHash(inputs);
  assert.match(h, /^sha256:[0-9a-f]{64}$/);
  assert.is(composeInputHash(gatherComposeInputs(request({ mode: 'container' }))), h);
  const touched = (k: string, v: string) =>
    composeInputHash({ ...inputs, files: { ...inputs.files, [k]: v } });
  assert.is.not(touched('fedora.repo', `${inputs.files['fedora.repo']}#\n`), h);
  assert.is.not(touched('manifest-lock.x86_64.json', '{}'), h);
  assert.is.not(composeInputHash({ ...inputs, overlays: { 'overlay/05rocknsm-base': ['x file - 00'] } }), h);
  assert.is.not(
    composeInputHash(
      gatherComposeInputs(
        request({
          variables: { stream: 'stable', prod: false },
          flattened: flattenTreefile({
            file: join(config, 'manifest.yaml'),
            basearch: 'x86_64',
            read,
            variables: { stream: 'stable', prod: false },
          }),
        }),
      ),
    ),
    h,
  );
});

test('runCompose: runs the steps, writes the record; an unchanged input hash skips', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-'));
  try {
    const p = planCompose(
      request({ outputDir: join(dir, 'out'), workDir: join(dir, 'work'), cacheDir: join(dir, 'cache') }),
    );
    const wrote = { image: true };
    const { run, calls } = recorder({ 'skopeo inspect': { exitCode: 1 } }, wrote);
    const first = await runCompose(run, p, 'sha256:aa', () => Date.UTC(2025, 0, 14));
    assert.is(first.status, 'composed');
    assert.equal(
      calls.filter((c) => c.argv[0] !== 'skopeo').map((c) => c.argv),
      p.steps,
    );
    assert.ok(calls.every((c) => c.opts?.tag === 'x86_64'));
    assert.is(readFileSync(p.wrapper.path, 'utf8'), p.wrapper.text);
    assert.ok(existsSync(join(dir, 'work/treefile/fedora.repo')));
    const record = JSON.parse(readFileSync(p.outputs.record, 'utf8'));
    assert.equal(
      [record.inputHash, record.composedAt, record.ref],
      ['sha256:aa', '2025-01-14T00:00:00.000Z', 'rocknsm/x86_64/base/stable'],
    );
    // The image rpm-ostree wrote: its version label goes into the record.
    cpSync(tinyImage(join(dir, 'img'), 'x86_64', { version: '41.20250114.0' }).archive, p.outputs.archive);
    calls.length = 0;
    assert.is((await runCompose(run, p, 'sha256:aa', Date.now)).status, 'unchanged');
    assert.is(calls.length, 0);
    const again = await runCompose(run, p, 'sha256:bb', Date.now);
    assert.is(again.status, 'composed');
    assert.is(again.record.version, '41.20250114.0');
    // New inputs of ours, but rpm-ostree finds its own unchanged and keeps the previous image.
    wrote.image = false;
    const kept = await runCompose(run, p, 'sha256:cc', Date.now);
    assert.is(kept.status, 'unchanged');
    assert.is(kept.record.inputHash, 'sha256:cc');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('container mode without the builder image and no registry: exit 69 before touching disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-'));
  try {
    const p = planCompose(
      request({
        mode: 'container',
        outputDir: join(dir, 'out'),
        workDir: join(dir, 'work'),
        cacheDir: join(dir, 'cache'),
      }),
    );
    const { run, calls } = recorder({
      'podman image': { exitCode: 1 },
      'podman pull': {
        exitCode: 125,
        stderr:
          'Error: initializing source docker://quay.io/fedora/fedora:41: dial tcp: lookup quay.io: no such host',
      },
    });
    let err: unknown;
    await runCompose(run, p, 'sha256:aa', Date.now).catch((e) => {
      err = e;
    });
    assert.instance(err, ToolMissingError);
    assert.is((err as ToolMissingError).exitCode, 69);
    assert.match((err as Error).message, 'no such host');
    assert.equal(
      calls.map((c) => c.argv.slice(0, 3)),
      [
        ['podman', 'image', 'exists'],
        ['podman', 'pull', 'quay.io/fedora/fedora:41'],
      ],
    );
    assert.not.ok(existsSync(join(dir, 'work')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('container mode with the image present runs exactly one podman command', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'compose-'));
  try {
    const p = planCompose(
      request({
        mode: 'container',
        outputDir: join(dir, 'out'),
        workDir: join(dir, 'work'),
        cacheDir: join(dir, 'cache'),
      }),
    );
    const { run: recorded, calls } = recorder({ 'skopeo inspect': { exitCode: 1 } });
    // The builder script's `rpm -q` output, as the container writes it into the work directory.
    const run = async (cmd: string, args: readonly string[], opts?: RunOptions) => {
      if (cmd === 'podman' && args[0] === 'run')
        writeFileSync(
          join(dir, 'work/builder-packages.txt'),
          'rpm-ostree-2024.9-1.fc41.x86_64\ndistribution-gpg-keys-1.110-1.fc41.noarch\n',
        );
      return recorded(cmd, args, opts);
    };
    const outcome = await runCompose(run, p, 'sha256:aa', Date.now);
    assert.equal(outcome.record.builderPackages, [
      'rpm-ostree-2024.9-1.fc41.x86_64',
      'distribution-gpg-keys-1.110-1.fc41.noarch',
    ]);
    assert.equal(
      calls.filter((c) => c.argv[0] === 'podman').map((c) => c.argv),
      [
        ['podman', 'image', 'exists', 'quay.io/fedora/fedora:41'],
        ['podman', ...p.podman!],
      ],
    );
    assert.is(readFileSync(join(dir, 'work/compose.sh'), 'utf8'), p.script!.text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mode resolution: auto prefers host rpm-ostree, then podman; neither is exit 69', async () => {
  const has =
    (...tools: string[]) =>
    (t: string) =>
      tools.includes(t) ? `/usr/bin/${t}` : undefined;
  assert.is(resolveMode('auto', has('rpm-ostree', 'podman')), 'host');
  assert.is(resolveMode('auto', has('podman')), 'container');
  assert.throws(
    () => resolveMode('auto', has()),
    (e: unknown) => e instanceof ToolMissingError && e.exitCode === 69,
  );
  assert.throws(
    () => resolveMode('host', has('podman')),
    (e: unknown) => e instanceof ToolMissingError,
  );
  const { run } = recorder();
  await ensureImage(run, 'img');
});

test.run();
