// The offline bundle end to end, with real tools: a release published as `rock-image publish`
// does it (a signed two-arch index and a pinned service image in a real docker-registry, the
// image signatures in the site's lookaside, signed artifacts and metadata on the site), bundled
// with the real CLI; refused with nothing written when the version is not published, an arch
// the stream needs is missing, or the registry's images are not the release's digests; checked
// (a tampered file, an added file, a truncated tarball, another key: each refused, named); and
// loaded, inside a network namespace with no route out, into an EMPTY registry from which the
// sensor's own policy.json (what `rock-image ignition` renders) accepts every arch with real skopeo.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Arch } from '../../pipeline/config/index.ts';
import { createRunner, type Runner } from '../../pipeline/exec/run.ts';
import { copyExact } from '../../pipeline/exec/skopeo.ts';
import { createLogger } from '../../pipeline/log.ts';
import { applyPlan } from '../../pipeline/publish/apply.ts';
import { startGraphService } from '../../pipeline/publish/graph-service.ts';
import { signAndTag } from '../../pipeline/publish/image-tags.ts';
import { type Pushed, pushImages } from '../../pipeline/publish/images.ts';
import { readExisting } from '../../pipeline/publish/read.ts';
import { buildDir, planSite } from '../../pipeline/publish/site.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { exportArmored, makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { xzBuild } from '../world/published.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { sensorTrust, signedProject, tinyImage } from '../world/signed-release.ts';
import { needTool, sh, shResult } from '../world/tools.ts';
import { checkForUpdate, fetchGraph, graphUrl, type ZincatiIdentity } from '../world/zincati.ts';

const work = join(repoRoot, '.cache', 'publish', `bundle-${process.pid}`);
const V = '41.20261201.1.0';
/** The next release: incremental bundles leave out the layers V has. */
const V2 = '41.20261202.1.0';
const ARCHES: Arch[] = ['x86_64', 'aarch64'];
const quietLog = createLogger({ mode: 'plain', out: { write: () => true } });
const quiet: Runner = createRunner(quietLog);

let reg: TestRegistry;
let site: StaticServer;
/** The work directory served: sites at a path (`/site`) over HTTP. */
let served: StaticServer;
let key: TestKey;
let other: TestKey;
let keyring: string;
let projectDir: string;
let trust: { policy: string; registriesD: string };
let pushed: Pushed;
let pushedV2: Pushed;
let service: string;
const repo = () => `${reg.host}/rocknsm/rocknsm-coreos`;
const siteDir = () => join(work, 'site');
const remote = () => ({ run: quiet, authFile: reg.authFile, tlsVerify: false });

/** The real CLI, as a site's operator runs it. */
function cli(args: string[]) {
  const r = shResult(process.execPath, [join(repoRoot, 'bin/rock-image.js'), ...args], {
    env: { GNUPGHOME: key.home },
  });
  return { code: r.code, out: r.stdout + r.stderr };
}

const make = (output: string, extra: string[] = []) =>
  cli([...makeArgs(), '--version', V, '--output', output, ...extra]);

test.before(async () => {
  for (const t of [
    'skopeo',
    'gpg',
    'docker-registry',
    'htpasswd',
    'tar',
    'xz',
    'unshare',
    'ip',
    'ignition-validate',
  ])
    needTool(t);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(siteDir(), { recursive: true });
  key = makeKey(join(work, 'keys/release'), 'rock-release', { expire: '1y' });
  other = makeKey(join(work, 'keys/other'), 'intruder');
  keyring = exportArmored(key, join(work, 'release.asc'));
  reg = await startRegistry(join(work, 'registry'));
  site = await serveDir(siteDir());
  projectDir = signedProject(
    join(work, 'project'),
    repo(),
    [keyring],
    `http://127.0.0.1:${site.port}/signatures`,
  );
  trust = sensorTrust(projectDir, join(work, 'sensor'), repo());
  // A service image the build pins by digest (what `rock-image pin` leaves in meta.json).
  const svc = tinyImage(join(work, 'svc'), 'x86_64', { osRelease: 'SERVICE=zeek\n' });
  service = `${reg.host}/test/zeek@${svc.digest}`;
  await copyExact(remote(), `oci-archive:${svc.archive}`, `docker://${service}`);
  pushed = await publishVersion(V);
  pushedV2 = await publishVersion(V2);
});

/**
 * Publishes `version` as `rock-image publish` does: the images pushed per arch by digest with
 * the index, signed for tags stable and `version` into the site's lookaside, then tagged; the
 * build records (naming the images and the service image) and the site's signed artifacts and
 * documents. Every version's images share a 512 KiB base layer, as releases of one OS do.
 */
async function publishVersion(version: string): Promise<Pushed> {
  const target = { repo: `docker://${repo()}`, authFile: reg.authFile, tlsVerify: false, run: quiet };
  const images = await pushImages(
    target,
    ARCHES.map((a) =>
      tinyImage(join(work, 'os', version), a, {
        osRelease: `VERSION=${version}\n`,
        baseBytes: 512 << 10,
        version,
      }),
    ),
  );
  await signAndTag(target, images, ['stable', version], {
    gpgKey: key.fingerprint,
    gpgHome: key.home,
    lookasideDir: join(siteDir(), 'signatures'),
  });
  const builds = ARCHES.map((a) => {
    const b = xzBuild(join(work, 'out'), version, a);
    b.meta['rocknsm.image-digest'] = images.manifests[a];
    b.meta['rocknsm.images'] = {
      'service/zeek': { ref: `${reg.host}/test/zeek:7`, image: service, digest: service.split('@')[1] },
    };
    writeFileSync(join(b.dir, 'meta.json'), `${JSON.stringify(b.meta, null, 2)}\n`);
    return b;
  });
  const dests = builds.flatMap((b) =>
    Object.values(b.meta.images).map((i) => `${buildDir('stable', version)}/${b.arch}/${i.path}`),
  );
  const plan = planSite({
    stream: 'stable',
    version,
    requireArches: ARCHES,
    builds,
    baseUrl: `http://127.0.0.1:${site.port}`,
    imageRepo: repo(),
    existing: await readExisting(siteDir(), 'stable', dests),
    now: Date.UTC(2026, 11, 1),
    signed: true,
  });
  await applyPlan({
    plan,
    siteDir: siteDir(),
    signBy: key.fingerprint,
    gpgHome: key.home,
    log: createLogger({ mode: 'plain', out: { write: () => true } }),
  });
  return images;
}

test.after(async () => {
  await site?.close();
  await served?.close();
  await reg?.stop();
  for (const k of [key, other]) if (k) stopAgent(k);
  rmSync(work, { recursive: true, force: true });
});

test('refused, nothing written: a version the site does not list', () => {
  const out = join(work, 'b', 'unpublished.tar');
  const r = cli([...makeArgs(), '--version', '41.20990101.1.0', '--output', out]);
  assert.is.not(r.code, 0);
  assert.match(r.out, '41.20990101.1.0 is not published in stable', r.out);
  assert.not.ok(existsSync(out));
  assert.not.ok(existsSync(join(work, 'b')) && sh('ls', ['-A', join(work, 'b')]).trim(), 'nothing in b/');
});

test('refused, nothing written: the registry holds other images under the tag', async () => {
  // Another repository whose tag V is an index of other images: not the release's digests.
  const target = {
    repo: `docker://${reg.host}/elsewhere/os`,
    authFile: reg.authFile,
    tlsVerify: false,
    run: quiet,
  };
  const wrong = await pushImages(
    target,
    ARCHES.map((a) => tinyImage(join(work, 'wrong'), a, { osRelease: 'WRONG=1\n' })),
  );
  await signAndTag(target, wrong, [V], {});
  const out = join(work, 'b', 'mismatch.tar');
  const r = make(out, ['--registry', `${reg.host}/elsewhere/os`]);
  assert.is.not(r.code, 0);
  assert.match(r.out, `digest mismatch for x86_64: the registry's index lists ${wrong.manifests.x86_64}`);
  assert.match(r.out, `release.json ${pushed.manifests.x86_64}`);
  assert.not.ok(existsSync(out));
});

test('refused, nothing written: the release lacks an arch the stream needs', () => {
  const broken = join(work, 'site-one-arch');
  cpSync(siteDir(), broken, { recursive: true });
  const rel = join(broken, buildDir('stable', V), 'release.json');
  const doc = JSON.parse(readFileSync(rel, 'utf8'));
  delete doc.architectures.aarch64;
  writeFileSync(rel, JSON.stringify(doc));
  const out = join(work, 'b', 'one-arch.tar');
  const r = make(out, ['--site', broken]);
  assert.is.not(r.code, 0);
  assert.match(r.out, `${V} of stable has no aarch64 image, which the stream needs`);
  assert.not.ok(existsSync(out));
});

let full: string;
const sizes: Record<string, number> = {};

test('made: OS images by digest, signatures, service image, artifacts, metadata, signed SHA256SUMS', () => {
  full = join(work, 'b', 'full.tar');
  const r = make(full);
  assert.is(r.code, 0, r.out);
  sizes.full = statSync(full).size;
  const list = sh('tar', ['-tf', full]).split('\n');
  for (const want of [
    './SHA256SUMS',
    './SHA256SUMS.sig',
    './bundle.json',
    './images/os/index.json',
    './images/services/index.json',
    `./site/${buildDir('stable', V)}/release.json`,
    `./site/${buildDir('stable', V)}/x86_64/rocknsm-coreos-${V}-metal.x86_64.raw.xz.sig`,
    './site/streams/stable.json',
    './site/updates/stable.json',
    './site/graph/stable/aarch64/v1/graph',
  ])
    assert.ok(list.includes(want), `${want} in the tarball`);
  // The OS image's digests are the published ones: each arch and the index tagged V.
  const x = join(work, 'x-full');
  mkdirSync(x, { recursive: true });
  sh('tar', ['-xf', full, '-C', x]);
  const refs = Object.fromEntries(
    (
      JSON.parse(readFileSync(join(x, 'images/os/index.json'), 'utf8')).manifests as {
        digest: string;
        annotations: Record<string, string>;
      }[]
    ).map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest]),
  );
  assert.equal(refs, {
    x86_64: pushed.manifests.x86_64,
    aarch64: pushed.manifests.aarch64,
    [V]: pushed.index,
  });
  // Every signature the lookaside holds for those digests, and no .ociarchive (images/os holds it).
  const sigs = list.filter((p) => p.startsWith('./signatures/') && /signature-\d+$/.test(p));
  assert.is(sigs.length, 3 * 2, sigs.join(' ')); // 3 digests x tags stable and V
  assert.not.ok(list.some((p) => p.endsWith('.ociarchive')));
  for (const part of ['images/os', 'images/services', 'signatures', 'site'])
    sizes[part] = Number(sh('du', ['-sb', join(x, part)]).split('\t')[0]);
  // sha256sum agrees with the bundle's own list.
  assert.is(spawnSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: x }).status, 0);
});

test("the bundle's site: serve-graph over it answers every arch as over the published site, next update V2", async () => {
  // What a site serves its sensors (step 5 of the README's procedure): the graph of the bundle's
  // metadata, so every barrier, dead-end and rollout of the published stream holds offline.
  const x = join(work, 'x-full');
  const services = [
    await startGraphService({ site: siteDir(), host: '127.0.0.1', port: 0, log: quietLog }),
    await startGraphService({ site: join(x, 'site'), host: '127.0.0.1', port: 0, log: quietLog }),
  ];
  try {
    for (const basearch of ARCHES) {
      const identity: ZincatiIdentity = {
        basearch,
        stream: 'stable',
        platform: 'metal',
        nodeUuid: '0123456789abcdef0123456789abcdef',
        booted: { version: V, image: `${repo()}:stable`, digest: pushed.manifests[basearch] },
      };
      const [published, bundled] = await Promise.all(
        services.map((s) => fetchGraph(graphUrl(`${s.url}/`, identity))),
      );
      assert.ok(bundled!.nodes.length >= 2, JSON.stringify(bundled));
      assert.equal(bundled, published, `${basearch}: the same graph`);
      const next = await checkForUpdate(`${services[1]!.url}/`, identity);
      assert.is(next.next?.version, V2, `${basearch}: ${next.reason}`);
      assert.is(next.next!.payload, `${repo()}@${pushedV2.manifests[basearch]}`);
    }
  } finally {
    for (const s of services) await s.close();
  }
});

test('made over HTTP: the same files and bytes as from the directory; verify accepts it', async () => {
  // The site served at a path of its own (as https://rocknsm.github.io/rocknsm-coreos is), while
  // release.json names the artifacts at the URL publish gave them: read where it names them.
  served = await serveDir(work);
  const before = site.requests.length;
  const out = join(work, 'b', 'http.tar');
  const r = make(out, ['--site', `http://127.0.0.1:${served.port}/site`]);
  assert.is(r.code, 0, r.out);
  const sums = (tar: string) => sh('tar', ['-xOf', tar, './SHA256SUMS']);
  assert.is(sums(out), sums(full), "SHA256SUMS of the HTTP bundle is the directory bundle's");
  const ok = cli(['bundle', 'verify', out, '--keyring', keyring]);
  assert.is(ok.code, 0, ok.out);
  const metal = `/${buildDir('stable', V)}/x86_64/rocknsm-coreos-${V}-metal.x86_64.raw.xz`;
  // The CLI ran synchronously: the servers' request lines are read once this loop runs again.
  const heard = () =>
    served.requests.some((p) => p.endsWith('/signature-3')) && site.requests.includes(`${metal}.sig`);
  for (let i = 0; i < 50 && !heard(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(site.requests.slice(before).includes(metal), 'the artifact read at its location');
  assert.ok(site.requests.slice(before).includes(`${metal}.sig`), 'its signature at the location named');
  // The lookaside read as containers/image reads it: signature-N until the first 404.
  const dir = `/site/signatures/rocknsm/rocknsm-coreos@${pushed.manifests.x86_64.replace(':', '=')}`;
  for (const n of [1, 2, 3])
    assert.ok(served.requests.includes(`${dir}/signature-${n}`), `${dir}/signature-${n}`);
  assert.not.ok(served.requests.includes(`${dir}/signature-4`), 'nothing asked past the first 404');
  assert.not.ok(
    [...served.requests, ...site.requests.slice(before)].some((p) => p.endsWith('.ociarchive')),
    'the OCI archive is not read',
  );
});

test('refused over HTTP, nothing written: a served artifact whose bytes differ, named by URL', () => {
  const copy = join(work, 'site-tampered');
  cpSync(siteDir(), copy, { recursive: true });
  const base = `http://127.0.0.1:${served.port}/site-tampered`;
  const rel = join(copy, buildDir('stable', V), 'release.json');
  writeFileSync(rel, readFileSync(rel, 'utf8').replaceAll(`http://127.0.0.1:${site.port}`, base));
  const name = `${buildDir('stable', V)}/x86_64/rocknsm-coreos-${V}-metal.x86_64.raw.xz`;
  writeFileSync(join(copy, name), Buffer.concat([readFileSync(join(copy, name)), Buffer.from('x')]));
  const out = join(work, 'b', 'http-tampered.tar');
  const r = make(out, ['--site', base]);
  assert.is.not(r.code, 0);
  assert.match(r.out, `${base}/${name}: sha256 `, r.out);
  assert.match(r.out, 'not bundled');
  assert.not.ok(existsSync(out));
  assert.not.ok(
    sh('ls', ['-A', join(work, 'b')])
      .split('\n')
      .some((f) => f.startsWith('http-tampered')),
    'no temp files left',
  );
});

test('made again: converges (same contents), and one arch alone carries no index', () => {
  const again = make(full);
  assert.is(again.code, 0, again.out);
  assert.is(statSync(full).size, sizes.full);
  const dir = join(work, 'b', 'x86_64-only');
  const r = make(dir, ['--arch', 'x86_64']);
  assert.is(r.code, 0, r.out);
  const plan = JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8'));
  assert.equal(plan.arches, ['x86_64']);
  assert.is(plan.index.carried, false);
  sizes.x86_64 = Number(sh('du', ['-sb', dir]).split('\t')[0]);
  assert.ok(!sh('find', [dir, '-name', '*aarch64*']).trim(), 'nothing of aarch64');
});

let incr: string;

test('incremental: V2 since V leaves out the base layer V has, and is that much smaller', () => {
  incr = join(work, 'b', 'incr-V2.tar');
  const fullV2 = join(work, 'b', 'full-V2.tar');
  for (const [out, extra] of [
    [incr, ['--since', V]],
    [fullV2, []],
  ] as const) {
    const r = cli([...makeArgs(), '--version', V2, '--output', out, ...extra]);
    assert.is(r.code, 0, r.out);
  }
  const plan = JSON.parse(sh('tar', ['-xOf', incr, './bundle.json']));
  assert.is(plan.since.version, V);
  assert.equal(
    plan.since.manifests,
    ARCHES.map((arch) => ({ arch, digest: pushed.manifests[arch] })),
  );
  assert.is(plan.since.omitted.length, 2, 'the base layer of each arch');
  const list = sh('tar', ['-tf', incr]);
  for (const l of plan.since.omitted) assert.not.ok(list.includes(l.slice(7)), `${l} left out`);
  sizes.incrV2 = statSync(incr).size;
  sizes.fullV2 = statSync(fullV2).size;
  assert.ok(sizes.fullV2 - sizes.incrV2 >= 2 * (512 << 10), JSON.stringify(sizes));
  const ok = cli(['bundle', 'verify', incr, '--keyring', keyring]);
  assert.is(ok.code, 0, ok.out);
});

test('verify: good with the release key; refused with another key', () => {
  const ok = cli(['bundle', 'verify', full, '--keyring', keyring]);
  assert.is(ok.code, 0, ok.out);
  assert.match(ok.out, `signed by ${key.fingerprint}`);
  const wrong = cli(['bundle', 'verify', full, '--keyring', exportArmored(other, join(work, 'other.asc'))]);
  assert.is.not(wrong.code, 0);
  assert.match(wrong.out, 'SHA256SUMS.sig does not verify');
});

test('verify: a tampered file and an added file are refused, each named', () => {
  const dir = join(work, 'tampered');
  mkdirSync(dir, { recursive: true });
  sh('tar', ['-xf', full, '-C', dir]);
  const doc = join(dir, 'site/updates/stable.json');
  // A dead-end slipped into the update metadata: sensors on V would never update again.
  const updates = JSON.parse(readFileSync(doc, 'utf8'));
  updates.releases[0].metadata.deadend = { reason: 'tampered' };
  writeFileSync(doc, JSON.stringify(updates));
  writeFileSync(join(dir, 'site/extra.sh'), 'echo hi\n');
  const r = cli(['bundle', 'verify', dir, '--keyring', keyring]);
  assert.is.not(r.code, 0);
  assert.match(r.out, 'site/updates/stable.json: sha256 differs from SHA256SUMS', r.out);
  assert.match(r.out, 'site/extra.sh: not listed in SHA256SUMS');
});

test('verify: a truncated tarball is refused, named', () => {
  const cut = join(work, 'b', 'truncated.tar');
  cpSync(full, cut);
  truncateSync(cut, Math.floor((sizes.full ?? 0) / 2));
  const r = cli(['bundle', 'verify', cut, '--keyring', keyring]);
  assert.is.not(r.code, 0);
  assert.match(r.out, `${cut} is not a whole tar archive`);
});

test('verify: a tarball with a link in it is refused before anything is unpacked', () => {
  const dir = join(work, 'linked');
  mkdirSync(dir, { recursive: true });
  sh('tar', ['-xf', full, '-C', dir]);
  sh('ln', ['-s', '/etc', join(dir, 'site', 'etc')]);
  const tar = join(work, 'b', 'linked.tar');
  sh('tar', ['-cf', tar, '-C', dir, '.']);
  const r = cli(['bundle', 'verify', tar, '--keyring', keyring]);
  assert.is.not(r.code, 0);
  assert.match(r.out, 'not plain files or directories');
  assert.match(r.out, './site/etc -> /etc');
  // As a directory: named as not a plain file.
  const d = cli(['bundle', 'verify', dir, '--keyring', keyring]);
  assert.is.not(d.code, 0);
  assert.match(d.out, 'site/etc: not a plain file');
});

test('load with no route out: an empty registry (same name, or a mirror), then the sensor policy accepts every arch', () => {
  const input = {
    work: join(work, 'netns'),
    full,
    incr,
    keyring,
    regPort: reg.port,
    sitePort: site.port,
    repo: `${repo()}`,
    policy: trust.policy,
    registriesD: trust.registriesD,
    service,
  };
  // A network namespace of its own: only loopback, no route anywhere (unshare(1), ip-link(8)).
  const r = spawnSync(
    'unshare',
    [
      '-n',
      'sh',
      '-c',
      'ip link set lo up && exec "$0" --import tsx "$1" "$2"',
      process.execPath,
      join(repoRoot, 'test/publish/bundle-child.ts'),
      JSON.stringify(input),
    ],
    { encoding: 'utf8', cwd: repoRoot },
  );
  assert.is(r.status, 0, `${r.stderr}\n${r.stdout}`);
  const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.is(got.routes, '', 'no route in the namespace');
  assert.match(got.outside, 'unreachable');
  assert.ok(got.emptyBefore, 'the site registry starts empty');
  // An incremental bundle needs its base: refused, naming it, before the full one is loaded.
  assert.is.not(got.incrFirst.code, 0);
  assert.match(got.incrFirst.log, `load ${V} first; nothing was loaded`);
  // Full V, again (no change), V2 incremental, again (no change), V again after V2.
  assert.equal(
    got.load.map((l: { code: number }) => l.code),
    [0, 0, 0, 0, 0],
    JSON.stringify(got.load),
  );
  assert.match(got.load[0].log, '0 already there');
  assert.match(got.load[1].log, '0 new');
  assert.match(got.load[3].log, '0 new');
  assert.match(got.load[4].log, `0 new, `);
  assert.match(got.load[4].log, `stable stays at the newer ${V2}`);
  assert.is(got.stable, pushedV2.index, 'stable is V2 after the incremental load, and after V loaded again');
  assert.equal(got.pulls, { amd64: 'accepted', arm64: 'accepted' });
  // The same, from a site registry of its own name configured as a mirror of ours.
  assert.is(got.mirrorLoad, 'ok');
  assert.equal(got.mirrorPulls, { amd64: 'accepted', arm64: 'accepted' });
  assert.ok(got.mirrorLookasideRequests > 0, "signatures fetched from the mirror's lookaside");
  assert.ok(got.lookasideRequests > 0, 'signatures fetched from the site lookaside');
  assert.is(got.service, service.slice(service.indexOf('@') + 1));
  process.stderr.write(`bundle sizes: ${JSON.stringify(sizes)}\n`);
});

/** make()'s arguments without --version and --output (for the refusals that name their own). */
function makeArgs(): string[] {
  return [
    'bundle',
    '--project',
    projectDir,
    '--stream',
    'stable',
    '--site',
    siteDir(),
    '--build',
    join(work, 'out'),
    '--authfile',
    reg.authFile,
    '--insecure-registry',
    '--sign-by',
    key.fingerprint,
  ];
}

test.run();
