// Errors are classed by cause (pipeline/errors.ts) and the class fixes the exit code: a user's
// command line is 64, a bad project file or build record 65, a missing tool or service 69, and a
// tool that failed at run time 1 — never reported as a usage error.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CommandError,
  ConfigError,
  DataError,
  PipelineError,
  ToolError,
  ToolMissingError,
  UnavailableError,
  UsageError,
} from '../../pipeline/errors.ts';
import { mountsUnder } from '../../pipeline/exec/losetup.ts';
import { repoRoot } from '../world/fcos-base.ts';

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], { encoding: 'utf8', cwd: '/' });

test('each cause has its exit code (sysexits.h: EX_USAGE 64, EX_DATAERR 65, EX_UNAVAILABLE 69)', () => {
  const cases: [PipelineError, number, string][] = [
    [new PipelineError('a step failed'), 1, 'PipelineError'],
    [new UsageError('--x is required'), 64, 'UsageError'],
    [
      new ConfigError([{ file: 'f.yaml', line: 3, path: '/a', rule: 'enum', message: 'no' }]),
      65,
      'ConfigError',
    ],
    [new ConfigError('f.yaml:3: refused'), 65, 'ConfigError'],
    [new DataError('meta.json: not JSON'), 65, 'DataError'],
    [new ToolError('the registry does not have it'), 1, 'ToolError'],
    [new CommandError(['false'], 1, 'boom'), 1, 'CommandError'],
    [new UnavailableError('cannot reach the site'), 69, 'UnavailableError'],
    [new ToolMissingError('skopeo', 'apt-get install skopeo'), 69, 'ToolMissingError'],
  ];
  for (const [err, code, name] of cases) {
    assert.is(err.exitCode, code, name);
    assert.is(err.name, name);
    assert.instance(err, PipelineError);
  }
  assert.instance(new CommandError(['false'], 1, ''), ToolError);
  assert.not.instance(new CommandError(['false'], 1, ''), UsageError);
  assert.match(new ConfigError('f.yaml:3: refused').message, /^f\.yaml:3: refused$/);
});

test('the CLI: a tool failing at run time is exit 1 with the command and its stderr, not a usage error', () => {
  const out = mkdtempSync(join(tmpdir(), 'rock-errors-'));
  try {
    // skopeo runs for real and fails: the image is not in the build's storage.
    const r = cli([
      'build',
      '--stream',
      'stable',
      '--base',
      'containers-storage:localhost/rocknsm-no-such-base:1',
      '--storage',
      join(out, 'storage'),
      '--output',
      out,
    ]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, /command failed \(exit 1\): skopeo inspect .*localhost\/rocknsm-no-such-base:1/);
    assert.match(r.stderr, /does not resolve to an image ID|identifier is not an image|no such image/i);
    assert.not.match(r.stderr, /--help/);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    // A base archive that is not there is the user's mistake (read in place, not by skopeo): 64.
    const m = cli([
      'build',
      '--stream',
      'stable',
      '--base',
      'oci-archive:/nonexistent/base.tar',
      '--output',
      out,
    ]);
    assert.is(m.status, 64, m.stderr);
    assert.match(m.stderr, /oci-archive \/nonexistent\/base\.tar: ENOENT: no such file or directory/);
    assert.not.match(m.stderr, /\n\s+at /, 'no stack trace');
    // The same command with a bad option is the user's mistake: 64, before any tool runs.
    const u = cli(['build', '--stream', 'stable', '--arch', 's390x', '--output', out]);
    assert.is(u.status, 64, u.stderr);
    assert.match(u.stderr, /unknown arch 's390x'/);
    assert.not.match(u.stderr, /skopeo/);
  } finally {
    // containers/storage leaves its overlay directory mounted on itself.
    for (const m of mountsUnder(out).reverse()) spawnSync('umount', [m]);
    rmSync(out, { recursive: true, force: true });
  }
});

/** Source without comments and string contents, so prose and messages cannot trip the rules. */
const code = (text: string) =>
  text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1')
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, '``')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''");

test('no raw exit numbers outside errors.ts and cli.ts', () => {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(relative(repoRoot, p));
    }
  };
  walk(join(repoRoot, 'pipeline'));
  const found: string[] = [];
  for (const f of files) {
    if (f === 'pipeline/errors.ts' || f === 'pipeline/cli.ts') continue;
    const text = code(readFileSync(join(repoRoot, f), 'utf8'));
    if (/\bprocess\.exit(Code)?\b/.test(text)) found.push(`${f}: process.exit/exitCode`);
    if (/Error\((?:[^()]|\([^()]*\))*,\s*(?:\d+|ExitCode\.\w+)\s*,?\s*\)/.test(text))
      found.push(`${f}: an exit code passed to an error (raise the class for the cause)`);
    if (f.startsWith('pipeline/commands/') && /\breturn\s+\d+\s*;/.test(text))
      found.push(`${f}: a command returns a raw exit number`);
  }
  assert.equal(found, []);
  assert.ok(files.length > 50, `${files.length} modules scanned`);
});

test.run();
