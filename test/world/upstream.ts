// Upstream sources at pinned commits, for the tests that check our facts against them
// (upstream-*.test.ts): single files' lines, or a whole tree. They come from git mirrors when
// ROCK_UPSTREAM_GIT names a directory of them (<owner>+<name>/repo, bare), else from GitHub
// (raw.githubusercontent.com, codeload.github.com); both are cached under .cache/test/upstream*.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cacheDir } from './fcos-base.ts';

/** The bare git mirror of `repo` (owner/name), when ROCK_UPSTREAM_GIT has it. */
function mirror(repo: string): string | undefined {
  const dir = process.env.ROCK_UPSTREAM_GIT;
  const git = dir && join(dir, repo.replace('/', '+'), 'repo');
  return git && existsSync(git) ? git : undefined;
}

async function download(url: string): Promise<Buffer> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} (offline? set ROCK_UPSTREAM_GIT to git mirrors)`);
  return Buffer.from(await res.arrayBuffer());
}

/** The text of `path` in `repo` at `commit`. */
export async function file(repo: string, commit: string, path: string): Promise<string> {
  const cached = join(cacheDir, 'upstream', repo, commit, path);
  if (existsSync(cached)) return readFileSync(cached, 'utf8');
  const git = mirror(repo);
  const text = git
    ? execFileSync('git', ['--git-dir', git, 'show', `${commit}:${path}`], {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      })
    : (await download(`https://raw.githubusercontent.com/${repo}/${commit}/${path}`)).toString('utf8');
  mkdirSync(dirname(cached), { recursive: true });
  writeFileSync(cached, text);
  return text;
}

/** Lines `from`..`to` (1-based, inclusive) of `path` in `repo` at `commit`. */
export async function lines(
  repo: string,
  commit: string,
  path: string,
  from: number,
  to = from,
): Promise<string> {
  return (await file(repo, commit, path))
    .split('\n')
    .slice(from - 1, to)
    .join('\n');
}

/** The whole tree of `repo` at `commit`, extracted once into a cache directory; returns it. */
export async function tree(repo: string, commit: string): Promise<string> {
  const dir = join(cacheDir, 'upstream-tree', repo, commit);
  if (existsSync(dir)) return dir;
  const part = `${dir}.part`;
  rmSync(part, { recursive: true, force: true });
  mkdirSync(part, { recursive: true });
  const git = mirror(repo);
  const tarball = git
    ? execFileSync('git', ['--git-dir', git, 'archive', '--format=tar', commit], { maxBuffer: 1 << 30 })
    : await download(`https://codeload.github.com/${repo}/tar.gz/${commit}`);
  // GitHub's tarball has one top directory (<name>-<commit>); git archive has none.
  execFileSync('tar', ['-x', ...(git ? [] : ['-z', '--strip-components=1']), '-C', part], {
    input: tarball,
  });
  renameSync(part, dir);
  return dir;
}
