// Child of bundle.test.ts, run inside a network namespace of its own (unshare -n, only lo up):
// an EMPTY site registry on the same 127.0.0.1 port the stream publishes to (a namespace has its
// own loopback) and the site's lookaside served on the port the sensors' registries.d names;
// `rock-image bundle load` fills them from the bundle (twice: the second run must change
// nothing), then the sensor's own policy.json and registries.d pull each arch with real skopeo.
// Prints one JSON line of what it found.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Digest } from '../../pipeline/exec/skopeo.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { serveDir } from '../world/http.ts';
import { startRegistry } from '../world/registry.ts';
import { sh, shResult } from '../world/tools.ts';

const o = JSON.parse(process.argv[2]!) as {
  work: string;
  bundle: string;
  keyring: string;
  regPort: number;
  sitePort: number;
  repo: string;
  policy: string;
  registriesD: string;
  service: string;
};
const out: Record<string, unknown> = {};
// What the namespace can reach: its routes (none but lo's), and an outside address.
out.routes = sh('ip', ['-4', 'route', 'show', 'table', 'main']).trim();
out.outside = await fetch('http://1.1.1.1/', { signal: AbortSignal.timeout(3000) }).then(
  (r) => `answered ${r.status}`,
  (e: Error) => `unreachable: ${(e.cause as Error | undefined)?.message ?? e.message}`,
);
const reg = await startRegistry(join(o.work, 'mirror'), undefined, undefined, {
  auth: false,
  port: o.regPort,
});
const lookaside = join(o.work, 'mirror-site', 'signatures');
mkdirSync(lookaside, { recursive: true });
const site = await serveDir(join(o.work, 'mirror-site'), o.sitePort);
try {
  out.emptyBefore =
    shResult('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${o.repo}:stable`]).code !== 0;
  const load = () =>
    shResult(process.execPath, [
      join(repoRoot, 'bin/rock-image.js'),
      'bundle',
      'load',
      o.bundle,
      '--registry',
      `127.0.0.1:${o.regPort}`,
      '--lookaside',
      lookaside,
      '--insecure-registry',
      '--keyring',
      o.keyring,
    ]);
  const first = load();
  const second = load();
  out.load = [first, second].map((r) => ({
    code: r.code,
    log: (r.stdout + r.stderr).trim().split('\n').at(-1),
  }));
  out.pulls = {};
  for (const arch of ['amd64', 'arm64']) {
    const dest = join(o.work, `pulled-${arch}`);
    rmSync(dest, { recursive: true, force: true });
    const r = shResult('skopeo', [
      '--policy',
      o.policy,
      '--registries.d',
      o.registriesD,
      '--override-arch',
      arch,
      '--override-os',
      'linux',
      'copy',
      '--src-tls-verify=false',
      `docker://${o.repo}:stable`,
      `dir:${dest}`,
    ]);
    (out.pulls as Record<string, string>)[arch] =
      r.code === 0 ? 'accepted' : r.stderr.trim().split('\n').at(-1)!;
  }
  const svc = shResult('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${o.service}`]);
  out.service = svc.code === 0 ? sha256Digest(svc.stdout) : svc.stderr.trim();
  await new Promise((r) => setTimeout(r, 300));
  out.lookasideRequests = site.requests.filter((p) => p.startsWith('/signatures/')).length;
} finally {
  await site.close();
  await reg.stop();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
