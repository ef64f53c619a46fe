// The nightly's data path, run for real on this machine: two legs each build one arch with the
// real `rock-image build` (buildah, FCOS-shaped fixture bases), their build directories are laid
// out the way stream.yml uploads and downloads them (paths, names and command lines read from the
// workflow), merge-builds joins them, summary reports them, and ci-plan, given only the metadata
// the workflow caches, decides "unchanged" for the same bases and "changed" for a new base.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheDir, fcosBase, repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';
import { loadWorkflow, rockImageInvocations, shellWords } from './load.ts';

const work = join(cacheDir, `legs-${process.pid}`);
const VERSION = '41.20261122.3.0';
const STREAM = 'stable';
const ARCHES = ['x86_64', 'aarch64'] as const;

/** Runs the real CLI; returns its exit code, output and the $GITHUB_OUTPUT / summary it wrote. */
function cli(args: string[], cwd = work) {
  const outputs = join(work, `gh-output-${Math.random().toString(36).slice(2)}`);
  const summary = `${outputs}.md`;
  writeFileSync(outputs, '');
  const r = shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], {
    cwd,
    env: { CI: 'true', GITHUB_OUTPUT: outputs, GITHUB_STEP_SUMMARY: summary },
  });
  const out: Record<string, string> = {};
  for (const line of readFileSync(outputs, 'utf8').split('\n')) {
    const m = /^([\w-]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return { ...r, outputs: out, summary: existsSync(summary) ? readFileSync(summary, 'utf8') : '' };
}

/** The workflow's own command line for a step, with its shell variables set as the job sets them. */
function workflowArgs(script: string, vars: Record<string, string>): string[] {
  const expanded = script.replace(/\$(\w+)/g, (m, v: string) => vars[v] ?? m);
  const inv = rockImageInvocations(expanded, 'stream.yml')[0]!;
  return [inv.command, ...inv.args];
}

const wf = loadWorkflow('stream.yml');
const legSteps = wf.jobs.build!.steps!;
const publishSteps = wf.jobs.publish!.steps!;
const planSteps = wf.jobs.plan!.steps!;

test.before(() => {
  needTool('buildah');
  needTool('skopeo');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

const metaOf = (dir: string, arch: string) =>
  JSON.parse(readFileSync(join(dir, 'builds', VERSION, arch, 'meta.json'), 'utf8'));

test('legs build one arch each, upload, download, merge and summarise as stream.yml does', () => {
  const upload = legSteps.find((s) => s.uses?.startsWith('actions/upload-artifact@'))!;
  const download = publishSteps.find((s) => s.uses?.startsWith('actions/download-artifact@'))!;
  const buildScript = legSteps.find((s) => s.id === 'build')!.run!;
  const legDirs: Record<string, string> = {};
  for (const arch of ARCHES) {
    // Each leg runs on its own runner: its own checkout directory and container storage.
    const runner = join(work, `runner-${arch}`);
    mkdirSync(runner, { recursive: true });
    const args = workflowArgs(buildScript, { STREAM, ARCH: arch, VERSION });
    assert.ok(args.includes('--force') && args.includes('--version'));
    const r = cli(
      [...args, '--base', `${arch}=${fcosBase(arch)}`, '--storage', join(runner, 'storage')],
      runner,
    );
    assert.is(r.code, 0, r.stderr);
    assert.is(r.outputs.version, VERSION);
    assert.is(r.outputs.skipped, 'false');
    // upload-artifact: the paths' common parent becomes the artifact root; download-artifact
    // puts each artifact (no merge-multiple) in <path>/<name>/.
    const paths = String(upload.with!.path).trim().split('\n');
    const root = paths[0]!.slice(0, paths[0]!.lastIndexOf('/'));
    assert.ok(paths.every((p) => p.startsWith(`${root}/`)));
    const name = String(upload.with!.name)
      .replace(`\${{ inputs.stream }}`, STREAM)
      .replace(`\${{ matrix.arch }}`, arch);
    const dest = join(work, 'publish', String(download.with!.path), name);
    for (const p of paths) cpSync(join(runner, p), join(dest, p.slice(root.length + 1)), { recursive: true });
    legDirs[arch] = dest;
  }
  // Each leg's own builds.json lists only its arch.
  for (const arch of ARCHES) {
    const doc = JSON.parse(readFileSync(join(legDirs[arch]!, 'builds', 'builds.json'), 'utf8'));
    assert.equal(doc.builds, [{ id: VERSION, arches: [arch] }]);
  }

  const publish = join(work, 'publish');
  const merge = workflowArgs(publishSteps.find((s) => s.run?.includes('merge-builds'))!.run!, {
    STREAM,
    ARCHES: ARCHES.join(','),
  });
  // The shell expands the legs glob; the workflow's pattern names exactly these directories.
  const glob = merge.at(-1)!;
  const expanded = ARCHES.map((a) => `legs/build-${STREAM}-${a}`);
  assert.ok(expanded.every((d) => new RegExp(`^${glob.replace(/\*/g, '.*')}$`).test(d)));
  const sizes = Object.fromEntries(ARCHES.map((a) => [a, metaOf(legDirs[a]!, a).images.ostree.size]));
  const m = cli([...merge.slice(0, -1), ...expanded], publish);
  assert.is(m.code, 0, m.stderr);
  assert.equal(m.outputs, {
    version: VERSION,
    arches: 'aarch64,x86_64',
    'build-dir': join(publish, 'out', 'builds', VERSION),
  });
  const out = join(publish, 'out');
  const merged = JSON.parse(readFileSync(join(out, 'builds', 'builds.json'), 'utf8'));
  assert.equal(merged.builds, [{ id: VERSION, arches: ['aarch64', 'x86_64'] }]);
  for (const arch of ARCHES) {
    const meta = metaOf(out, arch);
    assert.is(meta['coreos-assembler.basearch'], arch);
    assert.is(statSync(join(out, 'builds', VERSION, arch, meta.images.ostree.path)).size, sizes[arch]);
    // --move: the leg's copy is gone, not duplicated on the runner's disk.
    assert.not.ok(existsSync(join(legDirs[arch]!, 'builds', VERSION, arch)));
  }

  const summaryArgs = workflowArgs(publishSteps.find((s) => s.run?.includes('rock-image summary'))!.run!, {
    VERSION,
  });
  const s = cli(summaryArgs, publish);
  assert.is(s.code, 0, s.stderr);
  assert.is(s.summary, s.stdout);
  assert.ok(s.summary.startsWith(`### ${STREAM} ${VERSION}\n`), s.summary);
  for (const arch of ARCHES) {
    const meta = metaOf(out, arch);
    assert.ok(s.summary.includes(meta['rocknsm.image-digest'].slice(0, 23)), `${arch} digest in summary`);
    assert.ok(s.summary.includes(meta.images.ostree.path), `${arch} archive in summary`);
  }
  assert.match(s.summary, /first build of this stream/);
});

test('ci-plan on the cached metadata: same bases are unchanged, a new base is a change', () => {
  const out = join(work, 'publish', 'out');
  // What the publish job saves and the next plan job restores: builds.json and meta.json only.
  const restore = planSteps.find((s) => s.uses?.startsWith('actions/cache/restore@'))!;
  const planArgs = workflowArgs(planSteps.find((s) => s.id === 'plan')!.run!, { STREAM });
  const stateDir = planArgs[planArgs.indexOf('--output') + 1]!;
  const next = join(work, 'next-run');
  for (const p of String(restore.with!.path).trim().split('\n')) {
    const rel = p.slice(stateDir.length + 1);
    const files = rel.includes('*') ? ARCHES.map((a) => rel.replace('*/*', `${VERSION}/${a}`)) : [rel];
    for (const f of files) cpSync(join(out, f), join(next, stateDir, f));
  }
  const storage = join(work, 'plan-storage');
  const bases = (variant: 'plain' | 'tools') =>
    ARCHES.flatMap((a) => ['--base', `${a}=${fcosBase(a, a === 'x86_64' ? variant : 'plain')}`]);

  const same = cli([...planArgs, ...bases('plain'), '--storage', storage], next);
  assert.is(same.code, 0, same.stderr);
  assert.is(same.outputs.changed, 'false');
  assert.is(same.outputs.previous, VERSION);
  assert.is(same.outputs.arches, 'x86_64,aarch64');
  assert.equal(JSON.parse(same.outputs.matrix!), {
    include: [
      { arch: 'x86_64', runner: 'ubuntu-24.04' },
      { arch: 'aarch64', runner: 'ubuntu-24.04-arm' },
    ],
  });
  assert.is(same.outputs.platforms, 'metal,metal4k,qemu,pxe,iso');
  assert.is(same.outputs.registry, 'ghcr.io/rocknsm/rocknsm-coreos');
  assert.is(same.outputs['site-url'], 'https://rocknsm.github.io/rocknsm-coreos');
  assert.match(same.summary, new RegExp(`^### ${STREAM}: unchanged since ${VERSION.replace(/\./g, '\\.')}`));
  const json = JSON.parse(same.stdout);
  for (const a of json.arches) assert.is(a.current, metaOf(out, a.arch)['rocknsm.input-hash']);

  const changed = cli([...planArgs, ...bases('tools'), '--storage', storage], next);
  assert.is(changed.code, 0, changed.stderr);
  assert.is(changed.outputs.changed, 'true');
  assert.is(changed.summary, '');
  const byArch = Object.fromEntries(
    JSON.parse(changed.stdout).arches.map((a: { arch: string; changed: boolean }) => [a.arch, a.changed]),
  );
  assert.equal(byArch, { x86_64: true, aarch64: false });
  // The version the legs will all build: a respin of today's date against the restored state.
  assert.match(changed.outputs.version!, /^41\.\d{8}\.3\.\d+$/);
  assert.is.not(changed.outputs.version, VERSION);
  assert.equal(shellWords(`"${changed.outputs.version}"`), [changed.outputs.version!]);
});

test.run();
