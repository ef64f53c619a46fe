// Child of test/publish/github.test.ts: one release with one asset through syncRelease, in a
// process of its own, so the test reads this process's peak memory (VmHWM) apart from the fake
// GitHub's, which keeps every body it receives. Prints the result and the peak as JSON.
import { readFileSync } from 'node:fs';
import { createGitHub } from '../../pipeline/exec/github.ts';
import { syncRelease } from '../../pipeline/publish/github.ts';

const [url, token, repo, path, size, sha256] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const gh = createGitHub({ token, repo, baseUrl: url, retryBaseMs: 10, writeIntervalMs: 0 });
const r = await syncRelease(
  gh,
  { tag: 'v1', name: 'v1', body: '', assets: [{ name: 'big.raw.xz', path, size: Number(size), sha256 }] },
  { publish: false },
);
const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
console.log(JSON.stringify({ assets: r.assets, peakKiB: Number(peak?.[1]) }));
