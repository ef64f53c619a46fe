// Publish figures at real size (issue 19): `rock-image publish` of a build of the FCOS-sized base
// (test/world/big-base.ts) with its native PXE files, to a docker-registry and a site directory,
// signed, measured as a user runs it (wall time, peak memory, peak scratch disk), and beside it,
// in the same run, the raw tools doing the same work one after the other: skopeo copy of the
// archive to the registry, cp of the files into the site, gpg --detach-sign of each; and the
// same floor with ln in place of cp, as publish links where it can. The project is a copy whose
// stable stream publishes the image and PXE (native files allowed) to the test registry, signed
// by a test key; disks are left out (publish takes them only as xz, and the xz cost is the
// artifacts bench's). BENCH_REUSE is not offered: publish needs its own build.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { makeKey, stopAgent } from '../world/gpg.ts';
import { followRegistry } from '../world/project.ts';
import { startRegistry, type TestRegistry } from '../world/registry.ts';
import { bigBuild, newestLog, rockImage } from './big-build.ts';
import { logTimings, type Measured, measure, measureSh, mib, secs } from './measure.ts';

export async function bench(): Promise<void> {
  const work = join(cacheDir, `bench-publish-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const key = makeKey(join(work, 'key'), 'rock-bench');
  const reg = await startRegistry(join(work, 'registry'));
  let floorReg: TestRegistry | undefined;
  try {
    const project = join(work, 'project');
    for (const d of ['manifests', 'overlays', 'containerfiles'])
      cpSync(join(repoRoot, d), join(project, d), { recursive: true });
    mkdirSync(join(project, 'manifests/keys'), { recursive: true });
    cpSync(key.publicKey, join(project, 'manifests/keys/bench.gpg'));
    const streamFile = join(project, 'manifests/streams/stable.yaml');
    const repo = `${reg.host}/rocknsm/rocknsm-coreos`;
    writeFileSync(
      streamFile,
      `${readFileSync(streamFile, 'utf8')
        .replace(/^publish:\n( {2}.*\n| *#.*\n)*/m, '')
        .replace(/^artifacts: .*$/m, 'artifacts: [ostree, pxe]')
        .replace(
          /^artifact-backend: .*$/m,
          'artifact-backend: native\nallow-native-disks: true',
        )}publish:\n  registry: ${repo}\n  site-url: https://sensors.example/rock\n  trust:\n    gpg-key: manifests/keys/bench.gpg\n    lookaside: file://${join(work, 'site/signatures')}\n`,
    );
    followRegistry(project, repo, ['stable']);
    const b = await bigBuild(work, { project });
    await rockImage(
      ['--project', project, 'artifacts', '--build', b.out, '--backend', 'native', '--platform', 'pxe'],
      work,
    );
    const meta = JSON.parse(readFileSync(join(b.dir, 'meta.json'), 'utf8'));
    const files = Object.entries(meta.images as Record<string, { path: string; size: number }>);
    const bytes = files.reduce((n, [, i]) => n + i.size, 0);
    console.log(
      `build ${b.version} (x86_64): ${files.length} files to publish, ${mib(bytes)} (the OCI archive and the PXE kernel, initramfs and rootfs)`,
    );

    const env = { CI: 'true', GNUPGHOME: key.home, REGISTRY_AUTH_FILE: reg.authFile };
    const ours = await measure(
      process.execPath,
      [
        join(repoRoot, 'bin/rock-image.js'),
        '--project',
        project,
        'publish',
        '--stream',
        'stable',
        '--version',
        b.version,
        '--build',
        b.out,
        '--site',
        join(work, 'site'),
        '--base-url',
        'https://sensors.example/rock',
        '--require-arch',
        'x86_64',
        '--insecure-registry',
        '--sign-by',
        key.fingerprint,
      ],
      { disk: work, env },
    );
    const { steps } = logTimings(newestLog(b.out, 'publish-'));

    // The floor: each tool alone, one after the other, on the same inputs. skopeo pushes to a
    // registry of its own: into the one publish filled it would upload nothing, mounting every
    // blob from publish's repository (skopeo's blob info cache knows where they are), and took
    // 4.4 s where a real upload took 16.5 s on the same loaded machine.
    floorReg = await startRegistry(join(work, 'floor-registry'));
    const floorDir = join(work, 'floor');
    mkdirSync(floorDir, { recursive: true });
    const floor: [string, Measured][] = [];
    floor.push([
      'skopeo copy of the archive to a registry',
      await measure(
        'skopeo',
        [
          'copy',
          '--quiet',
          '--authfile',
          floorReg.authFile,
          '--dest-tls-verify=false',
          '--preserve-digests',
          `oci-archive:${b.archive}`,
          `docker://${floorReg.host}/floor/rocknsm-coreos:${b.version}`,
        ],
        { disk: work },
      ),
    ]);
    const paths = files.map(([, i]) => join(b.dir, i.path));
    floor.push([
      'cp of every file into the site',
      await measureSh('dest=$1; shift; cp "$@" "$dest"', [floorDir, ...paths], work),
    ]);
    floor.push([
      'gpg --detach-sign of every file',
      await measure(
        'sh',
        [
          '-c',
          'for f in "$@"; do gpg --batch --yes --local-user "$0" --detach-sign --output "$f.sig" "$f" || exit 1; done',
          key.fingerprint,
          ...files.map(([, i]) => join(floorDir, i.path)),
        ],
        { disk: work, env: { GNUPGHOME: key.home } },
      ),
    ]);
    const floorSum = floor.reduce((n, [, m]) => n + m.seconds, 0);
    // publish hard-links the files where the build and site share a filesystem (as here): the
    // same floor with ln in place of cp, beside it.
    const linkDir = join(work, 'floor-linked');
    mkdirSync(linkDir, { recursive: true });
    const ln = await measureSh('dest=$1; shift; ln "$@" "$dest"', [linkDir, ...paths], work);
    const linkSum = floorSum - floor[1]![1].seconds + ln.seconds;

    console.log('\n## rock-image publish (x86_64, image + PXE, signed, local registry and site)\n');
    console.log('| step (from its log) | seconds |');
    console.log('|---|---|');
    for (const [s, t] of steps) console.log(`| ${s} | ${secs(t)} |`);
    console.log('\n| floor: the raw tool alone | seconds |');
    console.log('|---|---|');
    for (const [label, m] of floor) console.log(`| ${label} | ${secs(m.seconds)} |`);
    console.log(`| **sum of floors** | **${secs(floorSum)}** |`);
    console.log(`| (ln of every file, in place of cp) | ${secs(ln.seconds)} |`);
    console.log(`| **sum of floors, with ln** | **${secs(linkSum)}** |`);
    const ratio = ours.seconds / floorSum;
    const linkRatio = ours.seconds / linkSum;
    console.log(
      '\n| measure | rock-image | floor | ratio | target | peak RSS (own / tree) | peak scratch disk |',
    );
    console.log('|---|---|---|---|---|---|---|');
    console.log(
      `| publish | ${secs(ours.seconds)} | ${secs(floorSum)} | ${ratio.toFixed(2)} | 1.2× (${ratio <= 1.2 ? 'meets' : 'MISSES'}) | ${mib(ours.rssSelf)} / ${mib(ours.rssTree)} | ${mib(ours.disk)} |`,
    );
    console.log(
      `| publish, against the floor with ln | ${secs(ours.seconds)} | ${secs(linkSum)} | ${linkRatio.toFixed(2)} | 1.2× (${linkRatio <= 1.2 ? 'meets' : 'MISSES'}) | | |`,
    );
  } finally {
    await reg.stop();
    await floorReg?.stop();
    stopAgent(key);
    rmSync(work, { recursive: true, force: true });
  }
}
