// The published world stock coreos-installer is run against (test/publish/coreos-installer.test.ts
// and upstream-coreos-installer.test.ts): a site served over HTTP with a signed `stable` stream
// whose disks are on the GitHub double's release, and an unsigned `testing` stream.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { githubDownloadBase } from '../../pipeline/publish/site.ts';
import { InstallerError } from './coreos-installer.ts';
import { repoRoot } from './fcos-base.ts';
import { type FakeGitHub, startFakeGitHub } from './github.ts';
import { makeKey, stopAgent, type TestKey } from './gpg.ts';
import { type StaticServer, serveDir } from './http.ts';
import { publishXz } from './published.ts';

export interface InstallerSite {
  work: string;
  /** The signed stream's version (stable) and the unsigned one's (testing). */
  version: string;
  unsignedVersion: string;
  key: TestKey;
  fake: FakeGitHub;
  siteUrl: string;
  /** The site's streams/ URL, with its trailing '/'. */
  base: string;
  close(): Promise<void>;
}

export async function openInstallerSite(name: string): Promise<InstallerSite> {
  const work = join(repoRoot, '.cache', 'publish', `${name}-${process.pid}`);
  const siteDir = join(work, 'site');
  const version = '43.20261201.3.0';
  const unsignedVersion = '43.20261201.2.0';
  rmSync(work, { recursive: true, force: true });
  mkdirSync(siteDir, { recursive: true });
  const key = makeKey(join(work, 'key'), 'rock-installer');
  const fake = await startFakeGitHub();
  const site: StaticServer = await serveDir(siteDir);
  const siteUrl = `http://127.0.0.1:${site.port}`;
  const now = Date.UTC(2026, 11, 1, 12);
  await publishXz({
    work,
    siteDir,
    siteUrl,
    stream: 'stable',
    version,
    key,
    github: fake,
    host: {
      kind: 'github',
      downloadBase: githubDownloadBase(fake.url, 'rocknsm/rocknsm-coreos', `v${version}`),
    },
    now,
  });
  await publishXz({ work, siteDir, siteUrl, stream: 'testing', version: unsignedVersion, now });
  return {
    work,
    version,
    unsignedVersion,
    key,
    fake,
    siteUrl,
    base: `${siteUrl}/streams/`,
    async close() {
      await site.close();
      await fake.close();
      stopAgent(key);
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** The InstallerError `p` ends with; anything else, or going on, fails the test. */
export async function refusal(p: Promise<unknown>): Promise<InstallerError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof InstallerError) return e;
    throw e;
  }
  throw new Error('coreos-installer would have gone on');
}
