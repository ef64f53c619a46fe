// `rock-image plan` prints the commands `rock-image build` runs: both come from one step list
// (build-glue.ts archSteps). A real build (real buildah) of the stable stream, its JSON log read
// for every command the runner ran, against the plan printed for the same options beforehand.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectCli, stableBuildArgs } from '../world/cli.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { needTool } from '../world/tools.ts';

const work = join(cacheDir, `plan-runs-${process.pid}`);
const out = join(work, 'out');
const VERSION = '41.20261122.3.0';
const cli = projectCli(repoRoot);
const args = stableBuildArgs(work, out, ['--version', VERSION]);

test.before(() => {
  needTool('buildah');
  rmSync(work, { recursive: true, force: true });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Every command line the runner started, in order, from the build's JSON log. */
function ranCommands(): string[][] {
  const logs = readdirSync(join(out, 'logs')).filter((f) => /^build-stable-.*\.jsonl$/.test(f));
  assert.is(logs.length, 1, logs.join(', '));
  return readFileSync(join(out, 'logs', logs[0]!), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event?: string; argv?: string[] })
    .filter((e) => e.event === 'command')
    .map((e) => e.argv!);
}

test('plan (text and --json) lists the commands build runs, in the order it runs them', () => {
  const json = cli(['plan', ...args.slice(1), '--json']);
  assert.is(json.code, 0, json.stderr);
  const planned = (JSON.parse(json.stdout) as { commands: { arch: string; commands: string[][] }[] })
    .commands;
  assert.equal(
    planned.map((p) => p.arch),
    ['x86_64'],
  );
  const text = cli(['plan', ...args.slice(1)]);
  assert.is(text.code, 0, text.stderr);
  // The text shows the same command lines, the build's environment in front.
  const shown = text.stdout
    .split('\n')
    .filter((l) => l.startsWith('$ '))
    .map((l) => l.slice(2).replace(/^SOURCE_DATE_EPOCH=\d+ /, ''));
  assert.equal(
    shown,
    planned[0]!.commands.map((c) => c.join(' ')),
  );

  const built = cli(args);
  assert.is(built.code, 0, built.stderr);
  const ran = ranCommands();
  let at = -1;
  for (const c of planned[0]!.commands) {
    const i = ran.findIndex((r, j) => j > at && JSON.stringify(r) === JSON.stringify(c));
    assert.ok(
      i > at,
      `planned but not run (after command ${at}): ${c.join(' ')}\nran:\n${ran.map((r) => r.join(' ')).join('\n')}`,
    );
    at = i;
  }
  // And every command the build ran that writes the image or its archive is in the plan.
  const writers = ran.filter((r) => r[0] === 'buildah' && (r.includes('build') || r.includes('push')));
  assert.equal(writers, planned[0]!.commands);
  // The archive the plan names is where the build left it.
  const final = /^# then \S+ is renamed to (\S+)$/m.exec(text.stdout)?.[1];
  assert.ok(
    final && readdirSync(join(out, 'builds', VERSION, 'x86_64')).includes(final.split('/').pop()!),
    final,
  );
});

test.run();
