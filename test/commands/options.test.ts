// Options are declared once with what their values must be (pipeline/commands/types.ts) and
// checked by the CLI before any command runs: every problem at once, exit 64, no stack trace.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commands } from '../../pipeline/commands/index.ts';
import {
  archesOption,
  intOption,
  listOption,
  optionProblems,
  parseArgsOptions,
} from '../../pipeline/commands/types.ts';
import { repoRoot } from '../world/fcos-base.ts';

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { encoding: 'utf8', cwd: '/' });

test('optionProblems: whole numbers in range, http(s) URLs, every value of a repeated option', () => {
  const spec = {
    jobs: { type: 'string' as const, int: { min: 1 } },
    port: { type: 'string' as const, int: { min: 0, max: 65535 } },
    url: { type: 'string' as const, url: true as const, multiple: true },
    name: { type: 'string' as const },
    force: { type: 'boolean' as const },
  };
  assert.equal(
    optionProblems(spec, { jobs: '2', port: '0', url: ['https://a.example/'], name: 'x', force: true }),
    [],
  );
  assert.equal(optionProblems(spec, {}), []);
  assert.equal(optionProblems(spec, { jobs: 'x', port: '65536', url: ['http://ok', 'ftp://no'] }), [
    "--jobs must be a whole number >= 1 (got 'x')",
    "--port must be a whole number from 0 to 65535 (got '65536')",
    "--url must be an http(s) URL (got 'ftp://no')",
  ]);
  for (const bad of ['0', '-1', '1.5', '1e3', ' 2', '', '0x10', '99999999999999999999'])
    assert.is(optionProblems(spec, { jobs: bad }).length, 1, `jobs '${bad}'`);
  assert.is(intOption({ jobs: '12' }, 'jobs'), 12);
  assert.is(intOption({}, 'jobs'), undefined);
  // What parseArgs gets has none of our keys (its own validation would refuse unknown ones one day).
  assert.equal(parseArgsOptions(spec).jobs, { type: 'string' });
});

test('arches: comma lists of known arches, every value of a repeated option, given order without repeats', () => {
  const spec = {
    arch: { type: 'string' as const, arches: true as const },
    many: { type: 'string' as const, arches: true as const, multiple: true },
  };
  assert.equal(optionProblems(spec, { arch: 'x86_64, aarch64', many: ['aarch64', 'x86_64,aarch64'] }), []);
  assert.equal(optionProblems(spec, { arch: 'x86_64,s390x', many: ['ppc64le'] }), [
    "--arch: unknown arch 's390x' (x86_64, aarch64)",
    "--many: unknown arch 'ppc64le' (x86_64, aarch64)",
  ]);
  assert.equal(archesOption({ arch: 'aarch64, x86_64,aarch64' }, 'arch'), ['aarch64', 'x86_64']);
  assert.equal(archesOption({ many: ['aarch64', 'x86_64,aarch64'] }, 'many'), ['aarch64', 'x86_64']);
  assert.is(archesOption({}, 'arch'), undefined);
  assert.equal(listOption({ case: 'metal-bios,,qemu ' }, 'case'), ['metal-bios', 'qemu']);
  assert.equal(parseArgsOptions(spec).arch, { type: 'string' });
});

test('every command that takes arches declares them, so the CLI checks them before it runs', () => {
  let seen = 0;
  for (const c of commands)
    for (const [name, def] of Object.entries(c.options))
      if (/^(arch|require-arch)$/.test(name)) {
        assert.ok(def.arches, `${c.name} --${name} is not declared with arches`);
        seen++;
      }
  assert.ok(seen >= 9, `${seen} arch options found`);
});

test('every command declares its numeric options with a range', () => {
  const numeric = /^(jobs|keep|timeout|refresh|root-size|github-pace-ms)$/;
  let seen = 0;
  for (const c of commands)
    for (const [name, def] of Object.entries(c.options))
      if (numeric.test(name)) {
        assert.ok(def.int, `${c.name} --${name} has no int range`);
        seen++;
      }
  assert.ok(seen >= 7, `${seen} numeric options found`);
});

test('the CLI: bad numbers and URLs exit 64, listed together, before anything runs, no stack trace', () => {
  for (const [args, want] of [
    [['build', '--stream', 'stable', '--jobs', 'x'], [/--jobs must be a whole number >= 1 \(got 'x'\)/]],
    [
      ['artifacts', '--build', '/nonexistent', '--jobs', '0', '--root-size', '10'],
      [
        /--root-size must be a whole number >= 300 \(got '10'\)/,
        /--jobs must be a whole number >= 1 \(got '0'\)/,
      ],
    ],
    [['prune', '--output', '/nonexistent', '--keep=-1'], [/--keep must be a whole number >= 1 \(got '-1'\)/]],
    [
      ['publish', '--stream', 'stable', '--require-arch', 'x86_64,riscv64'],
      [/--require-arch: unknown arch 'riscv64'/],
    ],
    [
      ['compose', '--stream', 'stable', '--arch', 'x86_64', '--arch', 's390x'],
      [/--arch: unknown arch 's390x'/],
    ],
    [
      ['serve-graph', '--metadata-url', 'ftp://x', '--stream', 's', '--refresh', '0.5'],
      [/--metadata-url must be an http\(s\) URL/, /--refresh must be a whole number >= 1 \(got '0\.5'\)/],
    ],
  ] as [string[], RegExp[]][]) {
    const r = cli(args);
    assert.is(r.status, 64, `${args.join(' ')}: ${r.stderr}`);
    for (const re of want) assert.match(r.stderr, re);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    assert.not.match(r.stderr, /==>/, 'nothing ran');
  }
});

test.run();
