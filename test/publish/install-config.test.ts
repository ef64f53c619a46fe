// `rock-image install-config` against a signed publish served over HTTP (site + the GitHub
// double serving the disks): it writes the profile's Ignition (the same bytes as `rock-image
// ignition`) and prints each path's lines; path 2's lines run for real (bash, curl, gpg) and
// the coreos-installer line they end with is taken by the coreos-installer client
// (test/world/coreos-installer.ts), for a 512-byte and a 4096-byte disk; with one byte of the
// served disk flipped, the gpg line stops the script before coreos-installer. A base URL
// without its '/', an unsigned stream: refused, clear message, nothing written. Re-runs agree.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { githubDownloadBase } from '../../pipeline/publish/site.ts';
import { install } from '../world/coreos-installer.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { type FakeGitHub, startFakeGitHub } from '../world/github.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { get, publishXz, sha } from '../world/published.ts';
import { sh } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `install-config-${process.pid}`);
const siteDir = join(work, 'site');
const V = '43.20261201.3.1';
let key: TestKey;
let fake: FakeGitHub;
let site: StaticServer;
let sshKey: string;
const base = () => `http://127.0.0.1:${site.port}/streams/`;

const cli = (args: string[]) => {
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'bin/rock-image.js'), '--project', repoRoot, ...args],
    {
      encoding: 'utf8',
      env: { ...process.env, CI: 'true' },
    },
  );
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
};

/** Runs shell lines with bash in `cwd`, asynchronously: the GitHub double answers from this process. */
const bash = (lines: string[], cwd: string) =>
  new Promise<{ code: number; out: string }>((resolve) => {
    const p = spawn('bash', ['-c', lines.join('\n')], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.once('exit', (code) => resolve({ code: code ?? -1, out }));
  });

/** The lines of path 2 from install-config's output. */
const path2 = (stdout: string) => stdout.slice(stdout.indexOf('# Path 2')).trim().split('\n');

test.before(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(siteDir, { recursive: true });
  key = makeKey(join(work, 'key'), 'rock-install');
  fake = await startFakeGitHub();
  site = await serveDir(siteDir);
  const siteUrl = `http://127.0.0.1:${site.port}`;
  const now = Date.UTC(2026, 11, 1, 12);
  const host = {
    kind: 'github' as const,
    downloadBase: githubDownloadBase(fake.url, 'rocknsm/rocknsm-coreos', `v${V}`),
  };
  await publishXz({ work, siteDir, siteUrl, stream: 'stable', version: V, key, github: fake, host, now });
  await publishXz({ work, siteDir, siteUrl, stream: 'testing', version: V, now });
  sshKey = join(work, 'admin');
  sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'admin@site', '-f', sshKey]);
});

test.after(async () => {
  await site?.close();
  await fake?.close();
  if (key) stopAgent(key);
  rmSync(work, { recursive: true, force: true });
});

const args = (out: string, more: string[] = []) => [
  'install-config',
  '--profile',
  'default',
  '--stream',
  'stable',
  '--ssh-key',
  `${sshKey}.pub`,
  '--stream-base-url',
  base(),
  '--key',
  key.publicKey,
  '--output-dir',
  out,
  ...more,
];

test('writes the Ignition of `rock-image ignition` and the lines of both paths; path 2 runs and installs our disk', async () => {
  const stream = JSON.parse((await get(`${base()}stable.json`)).bytes.toString('utf8'));
  for (const [sector, format] of [
    ['512', 'raw.xz'],
    ['4096', '4k.raw.xz'],
  ] as const) {
    const out = join(work, `cfg-${sector}`);
    const r = cli(args(out, ['--sector-size', sector]));
    assert.is(r.code, 0, r.stderr);
    const ign = readFileSync(join(out, 'default.ign'), 'utf8');
    assert.is(ign, cli(['ignition', '--profile', 'default', '--ssh-key', `${sshKey}.pub`]).stdout);
    assert.match(ign, readFileSync(`${sshKey}.pub`, 'utf8').trim().split(' ')[1]!);
    const units = (JSON.parse(ign).systemd?.units ?? []) as { contents?: string }[];
    assert.ok(
      units.some((u) => u.contents?.includes('bootc switch --enforce-container-sigpolicy ghcr.io/rocknsm/')),
      'the unit that rebases onto our image',
    );
    assert.match(
      r.stdout,
      `\nsudo coreos-installer install /dev/sda --stream stable --ignition-file ${join(out, 'default.ign')}\n`,
    );
    const disk = stream.architectures.x86_64.artifacts.metal.formats[format].disk;
    const lines = path2(r.stdout);
    assert.match(lines.join('\n'), `curl -fL -o ${disk.location.split('/').pop()} ${disk.location}`);
    const last = lines.pop()!;
    const words = last.split(' ');
    assert.equal(words.slice(0, 4), ['sudo', 'coreos-installer', 'install', '/dev/sda']);
    const dl = join(work, `dl-${sector}`);
    mkdirSync(dl, { recursive: true });
    const run = await bash(lines, dl);
    assert.is(run.code, 0, run.out);
    assert.match(run.out, 'Good signature from "rock-install');
    const file = words[words.indexOf('--image-file') + 1]!;
    assert.ok(words.includes('--insecure'));
    const got = await install({
      sectorSize: Number(sector),
      imageFile: join(dl, file),
      arch: 'x86_64',
      insecure: true,
    });
    assert.is(sha(got.bytes), disk.sha256, 'coreos-installer would write the published disk');
    assert.ok(got.log.includes('Signature not found; skipping verification as requested'));
  }
});

test('a tampered disk on the release: the gpg line stops path 2 before coreos-installer', async () => {
  const asset = fake.releases[0]!.assets.find((a) => a.name.endsWith('-metal.x86_64.raw.xz'))!;
  const at = asset.data.length >> 1;
  asset.data[at] = asset.data[at]! ^ 1;
  try {
    const r = cli(args(join(work, 'cfg-tamper')));
    assert.is(r.code, 0, r.stderr);
    const lines = path2(r.stdout);
    const dl = join(work, 'dl-tamper');
    mkdirSync(dl, { recursive: true });
    // The whole path, coreos-installer line included: set -e ends it at gpg.
    const run = await bash([...lines.slice(0, -1), 'echo REACHED-INSTALL'], dl);
    assert.is.not(run.code, 0);
    assert.match(run.out, 'BAD signature');
    assert.not.match(run.out, 'REACHED-INSTALL');
  } finally {
    asset.data[at] = asset.data[at]! ^ 1;
  }
});

test('refused, nothing written: a base URL without its /, an unsigned stream; a re-run writes the same', () => {
  const out = join(work, 'cfg-bad');
  let r = cli(args(out).map((a) => (a === base() ? base().slice(0, -1) : a)));
  assert.is(r.code, 64);
  assert.match(r.stderr, "--stream-base-url must end with '/': coreos-installer joins <stream>.json onto it");
  assert.match(r.stderr, `would fetch http://127.0.0.1:${site.port}/stable.json`);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.not.ok(existsSync(out));
  r = cli(args(out).map((a) => (a === 'stable' ? 'testing' : a)));
  assert.is(r.code, 65);
  assert.match(r.stderr, 'the x86_64 metal raw.xz disk has no signature');
  assert.not.ok(existsSync(out));
  const a = cli(args(out));
  const b = cli(args(out));
  assert.is(a.code, 0, a.stderr);
  assert.is(a.stdout, b.stdout);
});

test.run();
