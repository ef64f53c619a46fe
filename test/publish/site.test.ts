// Site metadata: the plan (pure) and its application into a real directory with real gpg
// signatures, served over node:http the way coreos-installer reads it; schema checks;
// releases.json append-only across publishes. The update graph is test/publish/graph.test.ts.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../pipeline/log.ts';
import { applyPlan } from '../../pipeline/publish/apply.ts';
import { readExisting } from '../../pipeline/publish/read.ts';
import {
  type ArchBuild,
  buildDir,
  planSite,
  type ReleasesDoc,
  SITE_FILE_LIMIT,
  type SiteInput,
} from '../../pipeline/publish/site.ts';
import { problems } from '../../pipeline/publish/validate.ts';
import { repoRoot } from '../world/fcos-base.ts';
import { makeKey, stopAgent, type TestKey } from '../world/gpg.ts';
import { sh } from '../world/tools.ts';

const work = join(repoRoot, '.cache', 'publish', `site-${process.pid}`);
const quiet = createLogger({ mode: 'plain', out: { write: () => true } });
const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
let key: TestKey;

/** A build of `version` with metal, qemu, PXE files and the OCI archive, small but real files. */
function fakeBuild(version: string, arch: 'x86_64' | 'aarch64', boot: 'pass' | 'fail' = 'pass'): ArchBuild {
  const dir = join(work, 'out', 'builds', version, arch);
  mkdirSync(dir, { recursive: true });
  const images: ArchBuild['meta']['images'] = {};
  const add = (k: string, path: string) => {
    const bytes = Buffer.from(`${k} ${version} ${arch}\n`);
    writeFileSync(join(dir, path), bytes);
    images[k] = { path, sha256: sha(bytes), size: bytes.length };
  };
  const n = `rocknsm-coreos-${version}`;
  add('ostree', `${n}-ostree.${arch}.ociarchive`);
  add('metal', `${n}-metal.${arch}.raw.xz`);
  add('qemu', `${n}-qemu.${arch}.qcow2.xz`);
  add('live-kernel', `${n}-live-kernel.${arch}`);
  add('live-initramfs', `${n}-live-initramfs.${arch}.img`);
  add('live-rootfs', `${n}-live-rootfs.${arch}.img`);
  images.metal!['uncompressed-sha256'] = sha(`raw ${arch}`);
  return {
    arch,
    dir,
    meta: {
      buildid: version,
      'coreos-assembler.basearch': arch,
      images,
      // Made as the test world makes disks: by the native backend (input() opts in).
      'rocknsm.artifact-backends': Object.fromEntries(
        ['metal', 'qemu', 'live-kernel', 'live-initramfs', 'live-rootfs'].map((k) => [k, 'native']),
      ),
      'rocknsm.image-digest': `sha256:${sha(`manifest ${version} ${arch}`)}`,
      'rocknsm.boot-tests': { 'metal-bios': { result: boot, seconds: 9 } },
    },
  };
}

const input = (version: string, over: Partial<SiteInput> = {}): SiteInput => ({
  stream: 'stable',
  version,
  requireArches: ['x86_64', 'aarch64'],
  builds: [fakeBuild(version, 'x86_64'), fakeBuild(version, 'aarch64')],
  baseUrl: 'http://127.0.0.1:1/site',
  imageRepo: 'ghcr.io/rocknsm/rocknsm-coreos',
  existing: { files: {} },
  now: NOW,
  nativeDisks: { allowed: true, at: { file: 'manifests/streams/stable.yaml', line: 1, col: 1 } },
  signed: true,
  ...over,
});

async function publishTo(site: string, version: string, base: string, controls?: SiteInput['controls']) {
  const builds = [fakeBuild(version, 'x86_64'), fakeBuild(version, 'aarch64')];
  const dests = builds.flatMap((b) =>
    Object.values(b.meta.images).map((i) => `${buildDir('stable', version)}/${b.arch}/${i.path}`),
  );
  const plan = planSite(
    input(version, { builds, baseUrl: base, controls, existing: await readExisting(site, 'stable', dests) }),
  );
  return applyPlan({ plan, siteDir: site, signBy: key.fingerprint, gpgHome: key.home, log: quiet });
}

test.before(() => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  key = makeKey(join(work, 'key'), 'rock-site');
});
test.after(() => {
  if (key) stopAgent(key);
  rmSync(work, { recursive: true, force: true });
});

test('plan: every file with its final URL; documents valid against the schemas; stream artifacts per format', () => {
  const plan = planSite(input('41.20261122.3.0'));
  assert.is(plan.files.length, 12);
  const metal = plan.files.find((f) => f.key === 'metal' && f.arch === 'aarch64')!;
  assert.is(
    metal.url,
    'http://127.0.0.1:1/site/prod/streams/stable/builds/41.20261122.3.0/aarch64/rocknsm-coreos-41.20261122.3.0-metal.aarch64.raw.xz',
  );
  assert.equal(metal.media, { platform: 'metal', format: 'raw.xz', artifact: 'disk' });
  assert.is(plan.files.find((f) => f.key === 'ostree')!.media, undefined);
  for (const d of plan.documents) assert.equal(problems(d.kind, d.json), [], d.path);
  assert.equal(
    plan.documents.map((d) => d.path),
    [
      'prod/streams/stable/builds/41.20261122.3.0/release.json',
      'prod/streams/stable/releases.json',
      'streams/stable.json',
      'updates/stable.json',
      'graph/stable/x86_64/v1/graph',
      'graph/stable/aarch64/v1/graph',
    ],
  );
  const stream = plan.documents[2]!.json as {
    architectures: Record<
      string,
      { artifacts: Record<string, { release: string; formats: Record<string, Record<string, unknown>> }> }
    >;
  };
  assert.equal(Object.keys(stream.architectures.x86_64!.artifacts.metal!.formats).sort(), ['pxe', 'raw.xz']);
  assert.equal(Object.keys(stream.architectures.x86_64!.artifacts.metal!.formats.pxe!).sort(), [
    'initramfs',
    'kernel',
    'rootfs',
  ]);
  assert.is(stream.architectures.x86_64!.artifacts.qemu!.release, '41.20261122.3.0');
  const rel = plan.documents[0]!.json as {
    architectures: Record<string, { 'oci-image': { 'digest-ref': string } }>;
  };
  assert.is(
    rel.architectures.aarch64!['oci-image']['digest-ref'],
    `ghcr.io/rocknsm/rocknsm-coreos@sha256:${sha('manifest 41.20261122.3.0 aarch64')}`,
  );
});

test('plan: where each file is named: disks and files over 95 MiB at the host, the rest on the site; signatures only when signed', () => {
  const V = '41.20261122.3.0';
  const builds = [fakeBuild(V, 'x86_64'), fakeBuild(V, 'aarch64')];
  // The plan reads sizes from meta.json only: a rootfs past what gh-pages holds.
  builds[0]!.meta.images['live-rootfs']!.size = SITE_FILE_LIMIT + 1;
  const downloadBase = 'https://github.com/rocknsm/rocknsm-coreos/releases/download/v41.20261122.3.0/';
  const plan = planSite(input(V, { builds, artifactHost: { kind: 'github', downloadBase } }));
  const at = (key: string, arch = 'x86_64') => plan.files.find((f) => f.key === key && f.arch === arch)!;
  for (const k of ['metal', 'qemu']) {
    assert.is(at(k).served, 'github', k);
    assert.is(at(k).location, `${downloadBase}${at(k).name}`);
  }
  assert.is(at('live-rootfs').served, 'github', 'over SITE_FILE_LIMIT');
  assert.is(at('live-rootfs', 'aarch64').served, 'site', 'a small rootfs stays');
  assert.is(at('live-kernel').location, at('live-kernel').url);
  const stream = plan.documents.find((d) => d.kind === 'stream')!.json as {
    architectures: Record<
      string,
      { artifacts: Record<string, { formats: Record<string, Record<string, unknown>> }> }
    >;
  };
  assert.equal(stream.architectures.x86_64!.artifacts.metal!.formats['raw.xz']!.disk, {
    location: at('metal').location,
    signature: `${at('metal').location}.sig`,
    sha256: at('metal').sha256,
    'uncompressed-sha256': at('metal').uncompressedSha256,
  });
  const store = planSite(
    input(V, {
      builds,
      signed: false,
      artifactHost: { kind: 'object-store', baseUrl: 'https://store.example/rock/' },
    }),
  );
  const metal = store.files.find((f) => f.key === 'metal' && f.arch === 'x86_64')!;
  assert.is(metal.location, `https://store.example/rock/${metal.dest}`);
  for (const d of store.documents) {
    assert.not.match(JSON.stringify(d.json), '"signature"', d.path);
    assert.equal(problems(d.kind, d.json), [], d.path);
  }
  const plain = planSite(input(V, { builds }));
  assert.ok(plain.files.every((f) => f.served === 'site' && f.location === f.url));
});

test('plan: refuses a missing arch and a failed boot test, naming them', () => {
  assert.throws(
    () => planSite(input('41.20261122.3.1', { builds: [fakeBuild('41.20261122.3.1', 'x86_64')] })),
    /no aarch64 build/,
  );
  assert.throws(
    () =>
      planSite(
        input('41.20261122.3.1', {
          builds: [fakeBuild('41.20261122.3.1', 'x86_64'), fakeBuild('41.20261122.3.1', 'aarch64', 'fail')],
        }),
      ),
    /boot test 'metal-bios' fail for aarch64/,
  );
});

test('schemas: broken documents are refused with the rule and pointer', () => {
  assert.ok(
    problems('stream', {
      stream: 'stable',
      metadata: { 'last-modified': 'yesterday' },
      architectures: {},
    }).some((p) => p.includes('/metadata/last-modified')),
  );
  assert.ok(
    problems('updates', {
      stream: 's',
      metadata: { 'last-modified': '2026-01-01T00:00:00Z' },
      releases: [{ version: '1', metadata: { rollout: { start_epoch: 1, start_percentage: 7 } } }],
    }).some((p) => p.includes('maximum')),
  );
  assert.ok(
    problems('graph', { nodes: [{ version: '1', payload: 'x', metadata: {} }], edges: [[0]] }).length >= 2,
  );
});

test('site: published into a directory, signed, served: coreos-installer URL scheme finds every artifact and .sig', async () => {
  const site = join(work, 'site-a');
  // Serve the site like a web server (the base URL needs the port, so plan after listening).
  const server = createServer((req, res) => {
    const p = join(
      site,
      decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/site\//, ''),
    );
    if (!p.startsWith(site) || !existsSync(p)) return res.writeHead(404).end();
    res.writeHead(200).end(readFileSync(p));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/site`;
  try {
    const r = await publishTo(site, '41.20261122.3.0', base);
    assert.is(Object.values(r.files).filter((s) => s === 'copied').length, 12);
    // coreos-installer download --stream-base-url B -s stable -a A -p metal -f raw.xz reads
    // B/streams/stable.json, then each artifact's location and location.sig.
    const stream = (await (await fetch(`${base}/streams/stable.json`)).json()) as {
      architectures: Record<
        string,
        {
          artifacts: Record<
            string,
            {
              formats: Record<
                string,
                Record<string, { location: string; signature: string; sha256: string }>
              >;
            }
          >;
        }
      >;
    };
    let checked = 0;
    for (const arch of ['x86_64', 'aarch64'])
      for (const platform of Object.values(stream.architectures[arch]!.artifacts))
        for (const format of Object.values(platform.formats))
          for (const a of Object.values(format)) {
            const body = Buffer.from(await (await fetch(a.location)).arrayBuffer());
            assert.is(sha(body), a.sha256, a.location);
            const sig = await fetch(a.signature);
            assert.is(sig.status, 200, a.signature);
            const sigFile = join(work, 'dl.sig');
            const dataFile = join(work, 'dl.bin');
            writeFileSync(sigFile, Buffer.from(await sig.arrayBuffer()));
            writeFileSync(dataFile, body);
            sh('gpg', ['--batch', '--homedir', key.home, '--verify', sigFile, dataFile]);
            checked++;
          }
    assert.is(checked, 10);
    // SHA256SUMS per arch checks with sha256sum -c in that directory.
    sh('sha256sum', ['-c', 'SHA256SUMS'], {
      cwd: join(site, buildDir('stable', '41.20261122.3.0'), 'x86_64'),
    });
  } finally {
    server.close();
  }
});

test('releases.json: append-only across two publishes; existing entries byte for byte; re-run writes nothing', async () => {
  const site = join(work, 'site-b');
  const base = 'https://sensors.example/rock';
  await publishTo(site, '41.20261122.3.0', base);
  const file = join(site, 'prod/streams/stable/releases.json');
  const first = readFileSync(file, 'utf8');
  const firstEntries = first.slice(first.indexOf('"releases": ['), first.lastIndexOf(']'));
  const again = await publishTo(site, '41.20261122.3.0', base);
  assert.equal(Object.values(again.documents), [
    'unchanged',
    'unchanged',
    'unchanged',
    'unchanged',
    'unchanged',
    'unchanged',
  ]);
  assert.equal(again.signed, []);
  await publishTo(site, '41.20261123.3.0', base);
  const second = readFileSync(file, 'utf8');
  assert.ok(second.includes(firstEntries.trimEnd().replace(/\n\s*$/, '')), 'old entries kept verbatim');
  const doc = JSON.parse(second) as ReleasesDoc;
  assert.equal(
    doc.releases.map((r) => r.version),
    ['41.20261122.3.0', '41.20261123.3.0'],
  );
  assert.is(doc.releases[0]!.metadata, `${base}/prod/streams/stable/builds/41.20261122.3.0/release.json`);
  // An older version after a newer one is refused, and nothing is changed.
  await publishTo(site, '41.20261121.3.0', base).then(
    () => assert.unreachable(),
    (e) => assert.match(String(e.message), 'append-only'),
  );
  assert.is(readFileSync(file, 'utf8'), second);
});

test('cli: publish refuses a version lacking an arch, exit 1, nothing written', async () => {
  const { shResult } = await import('../world/tools.ts');
  const out = join(work, 'cli-out');
  const b = fakeBuild('41.20261124.3.0', 'x86_64');
  mkdirSync(join(out, 'builds', '41.20261124.3.0', 'x86_64'), { recursive: true });
  writeFileSync(join(out, 'builds', '41.20261124.3.0', 'x86_64', 'meta.json'), JSON.stringify(b.meta));
  const site = join(work, 'cli-site');
  const r = shResult(process.execPath, [
    join(repoRoot, 'bin/rock-image.js'),
    'publish',
    '--stream',
    'stable',
    '--version',
    '41.20261124.3.0',
    '--build',
    out,
    '--site',
    site,
    '--base-url',
    'https://sensors.example/rock',
  ]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, 'no aarch64 build');
  assert.not.ok(existsSync(site));
});

test('fault: killed between artifacts and metadata (GitHub upload held), a re-run converges; no dangling metadata', async () => {
  const { spawn } = await import('node:child_process');
  const { startFakeGitHub } = await import('../world/github.ts');
  const { readdirSync } = await import('node:fs');
  const version = '41.20261125.3.0';
  for (const a of ['x86_64', 'aarch64'] as const) {
    const b = fakeBuild(version, a);
    writeFileSync(join(b.dir, 'meta.json'), JSON.stringify(b.meta));
  }
  const site = join(work, 'site-kill');
  const logFile = join(work, 'kill.jsonl');
  const fake = await startFakeGitHub();
  fake.faults.push({ op: 'repos/upload-release-asset', kind: 'hang' });
  const args = [
    join(work, 'out'),
    version,
    site,
    'https://sensors.example/rock',
    logFile,
    fake.url,
    key.home,
    key.fingerprint,
  ];
  const steps = () =>
    existsSync(logFile)
      ? readFileSync(logFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
          .filter((e) => e.event === 'publish-step')
          .map((e) => e.step)
      : [];
  try {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'test/publish/site-child.ts'), ...args],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    await fake.hung;
    // The log says the artifacts are complete; the child is blocked on GitHub: kill it here.
    assert.equal(steps(), ['images', 'artifacts']);
    child.kill('SIGKILL');
    await exited;
    assert.not.ok(existsSync(join(site, 'streams')), 'no stream metadata yet');
    assert.not.ok(existsSync(join(site, 'prod/streams/stable/releases.json')));
    assert.is(fake.releases.length, 1);
    assert.is(fake.releases[0]!.draft, true, 'the release stays a draft');
    // Re-run in a new process: converges.
    rmSync(logFile);
    const again = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'test/publish/site-child.ts'), ...args],
      {
        stdio: 'ignore',
      },
    );
    const code = await new Promise((r) => again.once('exit', r));
    assert.is(code, 0);
    assert.equal(steps(), ['images', 'artifacts', 'github-assets', 'tags', 'metadata', 'done']);
    assert.is(fake.releases.length, 1, 'no second release');
    const names = fake.releases[0]!.assets.map((a) => a.name);
    assert.is(new Set(names).size, names.length, 'no duplicate assets');
    assert.is(names.length, 12 * 2 + 2);
    assert.ok(fake.releases[0]!.assets.every((a) => a.state === 'uploaded'));
    assert.is(fake.releases[0]!.draft, false);
    // Every location the metadata names exists, with its signature.
    const stream = readFileSync(join(site, 'streams/stable.json'), 'utf8');
    const urls = [...stream.matchAll(/"location": "([^"]+)"/g)].map((m) => m[1]!);
    assert.is(urls.length, 10);
    for (const u of urls) {
      const rel = u.replace('https://sensors.example/rock/', '');
      assert.ok(existsSync(join(site, rel)) && existsSync(join(site, `${rel}.sig`)), rel);
    }
    assert.equal(
      readdirSync(join(site, buildDir('stable', version), 'x86_64')).filter((f) => f.includes('.tmp-')),
      [],
    );
    assert.equal(fake.violations, []);
  } finally {
    await fake.close();
  }
});

test("files go in as hard links on the build's filesystem, as copies across filesystems; each checked against meta.json", async () => {
  const version = '41.20261122.3.9';
  const builds = [fakeBuild(version, 'x86_64'), fakeBuild(version, 'aarch64')];
  const apart = mkdtempSync('/dev/shm/rock-site-'); // tmpfs: another filesystem than .cache
  const linkIn = (plan: ReturnType<typeof planSite>, site: string) =>
    applyPlan({ plan, siteDir: site, signBy: key.fingerprint, gpgHome: key.home, link: true, log: quiet });
  try {
    for (const [site, linked] of [
      [join(work, 'site-linked'), true],
      [apart, false],
    ] as const) {
      const plan = planSite(input(version, { builds }));
      await linkIn(plan, site);
      for (const f of plan.files) {
        const dest = join(site, f.dest);
        assert.is(statSync(dest).ino === statSync(f.src).ino, linked, `${f.dest} linked: ${linked}`);
        assert.is(sha(readFileSync(dest)), f.sha256, f.dest);
        assert.ok(existsSync(`${dest}.sig`), f.dest);
      }
    }
    // A build file that no longer holds what meta.json records is refused, linked or not:
    // nothing takes its place, no temporary file is left.
    const bad = builds[0]!;
    const metal = bad.meta.images.metal!;
    for (const site of [join(work, 'site-bad-linked'), join(apart, 'bad')]) {
      const plan = planSite(input(version, { builds })); // input() writes the build files again
      writeFileSync(join(bad.dir, metal.path), 'changed after the build\n');
      try {
        await linkIn(plan, site);
        assert.unreachable(site);
      } catch (err) {
        assert.match((err as Error).message, `${metal.path}: sha256 `);
        assert.match((err as Error).message, `meta.json records ${metal.sha256}`);
      }
      const dir = join(site, buildDir('stable', version), 'x86_64');
      assert.not.ok(existsSync(join(dir, metal.path)), site);
      assert.equal(
        readdirSync(dir).filter((n) => n.includes('.tmp-')),
        [],
        site,
      );
    }
  } finally {
    rmSync(apart, { recursive: true, force: true });
  }
});

test("a killed run's partial copies are removed by the next one; a live process's are left", async () => {
  const version = '41.20261122.3.10';
  const builds = [fakeBuild(version, 'x86_64'), fakeBuild(version, 'aarch64')];
  const plan = planSite(input(version, { builds }));
  const metal = plan.files.find((f) => f.key === 'metal' && f.arch === 'x86_64')!;
  const site = join(work, 'site-stale');
  const dir = join(site, buildDir('stable', version), 'x86_64');
  mkdirSync(dir, { recursive: true });
  const gone = spawnSync('true').pid!; // exited: its pid names no process now
  const stale = join(dir, `.${metal.name}.tmp-${gone}`);
  const live = join(dir, `.${metal.name}.tmp-${process.ppid}`);
  for (const f of [stale, live]) writeFileSync(f, 'part of a copy');
  await applyPlan({ plan, siteDir: site, signBy: key.fingerprint, gpgHome: key.home, log: quiet });
  assert.not.ok(existsSync(stale), 'the dead process left it: removed');
  assert.ok(existsSync(live), 'a live process may still write it: kept');
  assert.is(sha(readFileSync(join(site, metal.dest))), metal.sha256);
});

test.run();
