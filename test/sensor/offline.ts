// The air-gapped site of the lifecycle suite's update (issue 21), made on the host with the real
// tools and CLI, as the README's offline procedure has it:
// 1. release side: the second build published as `rock-image publish` does it (pushed by digest
//    to a registry, signed by the test world's release key for the identity the sensors follow,
//    publish.registry, into the site's lookaside; artifacts, signatures and metadata on the
//    site), then `rock-image bundle` of that release into a tarball; the release registry is
//    stopped once the bundle is made;
// 2. site side: a copy of the tarball with one byte changed is refused by `bundle load`, with
//    nothing loaded; the bundle itself is loaded into an EMPTY site registry, its signatures into
//    the site's lookaside directory, served over HTTP. A second lookaside holds signatures of
//    the same image by another key, for the sensor to refuse.
// What the sensor reaches is only this site (lifecycle.test.ts cuts its route out first).
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { loadProject, projectPaths, resolveStream } from '../../pipeline/config/index.ts';
import { createRunner } from '../../pipeline/exec/run.ts';
import { createLogger } from '../../pipeline/log.ts';
import { applyPlan } from '../../pipeline/publish/apply.ts';
import { signAndTag } from '../../pipeline/publish/image-tags.ts';
import { archiveManifest } from '../../pipeline/publish/images.ts';
import { readExisting } from '../../pipeline/publish/read.ts';
import { buildDir, planSite } from '../../pipeline/publish/site.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { type StaticServer, serveDir } from '../world/http.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import type { Guest } from '../world/sensor-vm.ts';
import { type Build, cli } from './world.ts';

export interface OfflineSite {
  /** The repository the sensors follow (the stream's publish.registry), e.g. ghcr.io/rocknsm/x. */
  follows: string;
  /** The site registry loaded from the bundle (host port; the guest's 10.0.2.2:PORT). */
  mirrorPort: number;
  /** The site's HTTP server: the lookaside at /signatures, another key's at /other-signatures. */
  sitePort: number;
  /** The published x86_64 manifest digest and the index digest. */
  digest: string;
  index: string;
  /** What `bundle load` said of the tampered copy, and the site registry's catalog after it. */
  tampered: { code: number; out: string; catalog: string[] };
  /** What `bundle load` said of the bundle. */
  loaded: { code: number; out: string };
  bundleBytes: number;
  seconds: number;
  close(): Promise<void>;
}

const quietLog = () => createLogger({ mode: 'plain', out: { write: () => true } });

/** The site registry's repositories (the registry API's catalog). */
async function catalog(reg: TestRegistry): Promise<string[]> {
  const r = await fetch(`http://${reg.host}/v2/_catalog`);
  if (!r.ok) throw new Error(`GET /v2/_catalog of ${reg.host}: ${r.status}`);
  return ((await r.json()) as { repositories: string[] }).repositories;
}

/** Changes the byte in the middle of `file` (of a bundle tarball: inside the biggest layer). */
function flipMiddleByte(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    const at = Math.floor(statSync(file).size / 2);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * Publishes `b` (one arch) from `project` signed by `key`, bundles it, and sets up the site from
 * the bundle under `work` (recreated).
 */
export async function offlineSite(
  b: Build,
  project: string,
  key: TestKey,
  work: string,
): Promise<OfflineSite> {
  const t0 = Date.now();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = resolveStream(loadProject(projectPaths(project)), 'stable', project);
  const follows = config.stream.publish.registry;
  if (!follows) throw new Error(`${project}: the stable stream has no publish.registry`);
  const path = follows.slice(follows.indexOf('/') + 1);
  const run = createRunner(quietLog());

  // 1. The release side.
  const release = await startRegistry(join(work, 'release-registry'), undefined, undefined, { auth: false });
  const releaseRepo = `${release.host}/${path}`;
  const releaseSite = join(work, 'release-site');
  const target = { repo: `docker://${releaseRepo}`, tlsVerify: false, run };
  const archive = archiveManifest({
    arch: b.arch,
    archive: join(b.dir, b.meta.images.ostree!.path),
    digest: String(b.meta['rocknsm.image-digest']),
  });
  const dests = Object.values(b.meta.images).map(
    (i) => `${buildDir('stable', b.version)}/${b.arch}/${i.path}`,
  );
  const plan = planSite({
    stream: 'stable',
    version: b.version,
    requireArches: [b.arch],
    builds: [{ arch: b.arch, meta: b.meta as never, dir: b.dir }],
    baseUrl: config.stream.publish.siteUrl ?? 'https://rocknsm.github.io/rocknsm-coreos',
    imageRepo: follows,
    existing: await readExisting(releaseSite, 'stable', dests),
    now: Date.now(),
    signed: true,
  });
  const sign = { gpgKey: key.fingerprint, gpgHome: key.home, lookasideDir: join(releaseSite, 'signatures') };
  const applied = await applyPlan({
    plan,
    siteDir: releaseSite,
    images: {
      target,
      archives: [archive],
      tags: ['stable', b.version],
      sign: { ...sign, identity: follows },
    },
    signBy: key.fingerprint,
    gpgHome: key.home,
    log: quietLog(),
  });
  const pushed = applied.pushed!;
  // The same image signed by a key the sensors do not trust, in a lookaside of its own.
  const other = makeKey(join(work, 'other-key'), 'intruder');
  const served = join(work, 'served');
  await signAndTag(target, pushed, ['stable'], {
    gpgKey: other.fingerprint,
    gpgHome: other.home,
    lookasideDir: join(served, 'other-signatures'),
    identity: follows,
  });
  stopAgent(other);
  const tar = join(work, `rocknsm-${b.version}.tar`);
  const made = cli(
    [
      '--project',
      project,
      'bundle',
      '--stream',
      'stable',
      '--version',
      b.version,
      '--site',
      releaseSite,
      '--registry',
      releaseRepo,
      '--insecure-registry',
      // The build records pin the service images at the guests' address (10.0.2.2), which the
      // host does not reach: the bundle carries the OS image only (the sensor has the services,
      // V2 pins the same digests as V1).
      '--build',
      join(work, 'no-build-records'),
      '--sign-by',
      key.fingerprint,
      '--output',
      tar,
    ],
    { GNUPGHOME: key.home },
  );
  if (made.code !== 0) throw new Error(`rock-image bundle failed:\n${made.stderr}`);
  await release.stop();

  // 2. The site side: the bundle is all it has.
  const site = await startRegistry(join(work, 'site-registry'), undefined, undefined, { auth: false });
  const load = (file: string) => {
    const r = cli(
      [
        '--project',
        project,
        'bundle',
        'load',
        file,
        '--registry',
        site.host,
        '--insecure-registry',
        '--lookaside',
        join(served, 'signatures'),
      ],
      { GNUPGHOME: key.home },
    );
    return { code: r.code, out: r.stdout + r.stderr };
  };
  const tamperedTar = join(work, 'tampered.tar');
  copyFileSync(tar, tamperedTar);
  flipMiddleByte(tamperedTar);
  const tampered = { ...load(tamperedTar), catalog: await catalog(site) };
  if (existsSync(join(served, 'signatures'))) throw new Error('the tampered bundle wrote signatures');
  rmSync(tamperedTar);
  const loaded = load(tar);
  if (loaded.code !== 0) throw new Error(`rock-image bundle load failed:\n${loaded.out}`);
  const http: StaticServer = await serveDir(served);
  return {
    follows,
    mirrorPort: site.port,
    sitePort: http.port,
    digest: pushed.manifests[b.arch]!,
    index: pushed.index,
    tampered,
    loaded,
    bundleBytes: statSync(tar).size,
    seconds: (Date.now() - t0) / 1000,
    close: async () => {
      await http.close();
      await site.stop();
    },
  };
}

/** What the sensor did with the site: its route, the refusal, the accepted pull, the staged commit. */
export interface SiteUpdate {
  /** `ip route get` of an outside address once the default route is gone. */
  routeOut: string;
  /** The pull while the site's lookaside held only the other key's signatures. */
  refused: { code: number; out: string };
  /** The pull with the site's lookaside (the bundle's signatures). */
  accepted: { code: number; out: string };
  /** The manifest digest podman pulled (`podman image inspect`), and the commit staged from it. */
  digest: string;
  commit: string;
  seconds: { pull: number; import: number };
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
/** A shell line writing `text` to `file` on the guest (base64: no quoting through ssh and sh). */
const writeOnGuest = (file: string, text: string) => `echo ${b64(text)} | base64 -d > ${file}`;

/**
 * On the running sensor (first boot): the site's two files of the README's step 6 (a
 * registries.conf.d mirror of our namespace, a registries.d lookaside for the mirror), the route
 * out removed, then as bootc does an upgrade: the image the sensor follows pulled through
 * containers/image (podman's; the sensor's own policy.json, signedBy our key), imported into the
 * sensor's ostree repository and staged (`ostree admin deploy --stage`).
 *
 * The import stands in for ostree-ext's, which Debian lacks: the image's filesystem (`podman
 * export`) committed with /etc moved to /usr/etc, as ostree-ext's tar filter moves it
 * (bootc-dev/bootc crates/ostree-ext/src/tar/write.rs:213-216 @534c76ea) and /var kept (what it
 * does with ostree 2024.3 or newer: write.rs:103-105, :457, container/store.rs:1513), plus the
 * /ostree symlink a deployment root needs; the manifest digest is recorded in the commit under
 * ostree-ext's key (container/store.rs:176 `ostree.manifest-digest`).
 */
export function updateFromSite(
  g: Guest,
  site: OfflineSite,
  o: { os: string; ref: string; version: string },
): SiteUpdate {
  const mirror = `10.0.2.2:${site.mirrorPort}`;
  const host = site.follows.slice(0, site.follows.indexOf('/'));
  const namespace = site.follows.split('/').slice(0, 2).join('/');
  const image = `${site.follows}:stable`;
  const lookaside = (dir: string) =>
    `# RockNSM site: signatures of the images the site mirror serves.\ndocker:\n  ${mirror}:\n    lookaside: http://10.0.2.2:${site.sitePort}/${dir}\n`;
  g.sh(
    [
      writeOnGuest(
        '/etc/containers/registries.conf.d/60-rocknsm-site.conf',
        `# RockNSM site: our images from the site registry, loaded from the bundle.\n[[registry]]\nprefix = "${namespace}"\nlocation = "${namespace}"\n\n[[registry.mirror]]\nlocation = "${mirror}${namespace.slice(host.length)}"\ninsecure = true\n`,
      ),
      writeOnGuest('/etc/containers/registries.d/60-rocknsm-site.yaml', lookaside('other-signatures')),
      'ip route del default',
    ].join(' && '),
  );
  const routeOut = g.sh('ip route show default; ip route get 192.0.2.1 2>&1', { allowFailure: true });
  const pull = () => {
    const r = g.sh(`podman pull --quiet ${image} 2>&1`, { allowFailure: true, timeoutSec: 1200 });
    return { code: r.code, out: r.stdout + r.stderr };
  };
  const refused = pull();
  g.sh(writeOnGuest('/etc/containers/registries.d/60-rocknsm-site.yaml', lookaside('signatures')));
  const t = Date.now();
  const accepted = pull();
  const pullSeconds = (Date.now() - t) / 1000;
  const none = { digest: '', commit: '', seconds: { pull: pullSeconds, import: 0 } };
  if (accepted.code !== 0) return { routeOut: routeOut.stdout, refused, accepted, ...none };
  const digest = g.sh(`podman image inspect --format '{{.Digest}}' ${image}`).stdout.trim();
  const t1 = Date.now();
  const script = [
    'set -e',
    'rm -rf /var/tmp/rocknsm-shape && mkdir /var/tmp/rocknsm-shape',
    'ln -s sysroot/ostree /var/tmp/rocknsm-shape/ostree',
    `c=$(podman create ${image})`,
    'podman export -o /var/tmp/rocknsm-update.tar "$c"',
    'podman rm "$c" >/dev/null',
    // ostree writes its repository on the read-only /sysroot from a mount namespace of its own.
    `unshare -m sh -c 'mount -o remount,rw /sysroot && ostree commit --repo=/sysroot/ostree/repo --branch=${o.ref} --tree=tar=/var/tmp/rocknsm-update.tar --tar-autocreate-parents "--tar-pathname-filter=^etc(/|\\$),usr/etc\\1" --tree=dir=/var/tmp/rocknsm-shape --subject="${o.os} ${o.version}" --add-metadata-string=version=${o.version} --add-metadata-string=ostree.manifest-digest=${digest} >&2'`,
    'rm -rf /var/tmp/rocknsm-update.tar /var/tmp/rocknsm-shape',
    `ostree admin deploy --stage --os=${o.os} ${o.ref} >&2`,
    `ostree rev-parse ${o.ref}`,
  ].join('\n');
  g.sh(writeOnGuest('/var/tmp/rocknsm-import.sh', script));
  // Its last line: the staged commit (`ostree rev-parse`); the rest went to stderr.
  const commit = g.sh('sh /var/tmp/rocknsm-import.sh', { timeoutSec: 1800 }).stdout.trim();
  return {
    routeOut: routeOut.stdout,
    refused,
    accepted,
    digest,
    commit,
    seconds: { pull: pullSeconds, import: (Date.now() - t1) / 1000 },
  };
}
