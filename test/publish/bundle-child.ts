// Child of bundle.test.ts, run inside a network namespace of its own (unshare -n, only lo up):
// an EMPTY site registry on the same 127.0.0.1 port the stream publishes to (a namespace has its
// own loopback) and the site's lookaside served on the port the sensors' registries.d names;
// `rock-image bundle load` fills them from the bundles (each twice: the second run must change
// nothing; the incremental one first refused, its base not there yet), then the sensor's own policy.json and registries.d pull each arch with real skopeo.
// Prints one JSON line of what it found.
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Digest } from '../../pipeline/exec/skopeo.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { serveDir } from '../world/http.ts';
import { freePort, startRegistry } from '../world/registry.ts';
import { sh, shResult } from '../world/tools.ts';

const o = JSON.parse(process.argv[2]!) as {
  work: string;
  full: string;
  incr: string;
  keyring: string;
  regPort: number;
  sitePort: number;
  repo: string;
  policy: string;
  registriesD: string;
  service: string;
};
/** `rock-image bundle load` of the bundle into `registry`, signatures into `lookasideDir`. */
function loadInto(bundle: string, registry: string, lookasideDir: string) {
  return shResult(process.execPath, [
    join(repoRoot, 'bin/rock-image.js'),
    'bundle',
    'load',
    bundle,
    '--registry',
    registry,
    '--lookaside',
    lookasideDir,
    '--insecure-registry',
    '--keyring',
    o.keyring,
  ]);
}

/** The sensor's pull of `repo:stable` for one arch under its policy: 'accepted', or skopeo's reason. */
function pull(arch: string, registriesD: string, global: string[], tls: string): string {
  const dest = join(o.work, `pulled-${arch}`);
  rmSync(dest, { recursive: true, force: true });
  const r = shResult('skopeo', [
    ...global,
    '--policy',
    o.policy,
    '--registries.d',
    registriesD,
    '--override-arch',
    arch,
    '--override-os',
    'linux',
    'copy',
    ...(tls ? [tls] : []),
    `docker://${o.repo}:stable`,
    `dir:${dest}`,
  ]);
  return r.code === 0 ? 'accepted' : r.stderr.trim().split('\n').at(-1)!;
}

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
  const load = (b: string) => loadInto(b, `127.0.0.1:${o.regPort}`, lookaside);
  const log = (r: ReturnType<typeof load>) => ({
    code: r.code,
    log: (r.stdout + r.stderr).trim().split('\n').at(-1),
  });
  out.incrFirst = log(load(o.incr));
  // Full V, again, V2 incremental, again, then V once more: an older bundle must not move stable back.
  out.load = [o.full, o.full, o.incr, o.incr, o.full].map((b) => log(load(b)));
  const stable = shResult('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${o.repo}:stable`]);
  out.stable = sha256Digest(stable.stdout);
  out.pulls = Object.fromEntries(
    ['amd64', 'arm64'].map((arch) => [arch, pull(arch, o.registriesD, [], '--src-tls-verify=false')]),
  );
  const svc = shResult('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${o.service}`]);
  out.service = svc.code === 0 ? sha256Digest(svc.stdout) : svc.stderr.trim();
  await new Promise((r) => setTimeout(r, 300));
  out.lookasideRequests = site.requests.filter((p) => p.startsWith('/signatures/')).length;
  // The realistic site: its own registry name. Sensors keep their policy; registries.conf names
  // the site registry a mirror of ours, and one more registries.d entry says where the MIRROR's
  // signatures are: containers/image evaluates the policy on the reference asked for (logicalRef)
  // but reads the lookaside configured for the host it pulls from (physicalRef;
  // docker/docker_image_src.go:131-159, docker/docker_client.go:189-196 @df7e80d2d198).
  const mport = await freePort();
  const mirror = await startRegistry(join(o.work, 'mirror2'), undefined, undefined, {
    auth: false,
    port: mport,
  });
  const mlook = join(o.work, 'mirror2-site', 'signatures');
  mkdirSync(mlook, { recursive: true });
  const msite = await serveDir(join(o.work, 'mirror2-site'));
  try {
    const loads = [o.full, o.incr].map((b) => loadInto(b, `127.0.0.1:${mport}`, mlook));
    out.mirrorLoad = loads.every((r) => r.code === 0) ? 'ok' : loads.map((r) => r.stderr).join('\n');
    // Our registry's name now answers nothing: only the mirror can serve the pulls.
    await reg.stop();
    const conf = join(o.work, 'registries.conf');
    const repoHost = o.repo.slice(0, o.repo.indexOf('/'));
    // containers-registries.conf(5) (containers/image docs/containers-registries.conf.5.md @df7e80d2d198):
    // [[registry]] prefix/location, its [[registry.mirror]] tables tried in order before the primary.
    writeFileSync(
      conf,
      `[[registry]]\nprefix = "${repoHost}"\nlocation = "${repoHost}"\ninsecure = true\n[[registry.mirror]]\nlocation = "127.0.0.1:${mport}"\ninsecure = true\n`,
    );
    const regd = join(o.work, 'registries.d');
    cpSync(o.registriesD, regd, { recursive: true });
    writeFileSync(
      join(regd, 'site-mirror.yaml'),
      `docker:\n  127.0.0.1:${mport}:\n    lookaside: http://127.0.0.1:${msite.port}/signatures\n`,
    );
    out.mirrorPulls = Object.fromEntries(
      ['amd64', 'arm64'].map((arch) => [arch, pull(arch, regd, ['--registries-conf', conf], '')]),
    );
    await new Promise((r) => setTimeout(r, 300));
    out.mirrorLookasideRequests = msite.requests.filter((p) => p.startsWith('/signatures/')).length;
  } finally {
    await msite.close();
    await mirror.stop();
  }
} finally {
  await site.close();
  await reg.stop();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
