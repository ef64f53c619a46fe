// Build figures at real size (issues 3 and 19): `rock-image build` (the bin) of the stable stream
// for x86_64 on the FCOS-sized base (test/world/big-base.ts), in a scratch copy of the project,
// beside the floor measured in the same run: a fresh storage, the base pulled into it and
// `buildah build` of the very Containerfile and context our build rendered, with the same
// flags (exec/buildah.ts buildArgs). Then a no-op rebuild (unchanged inputs) and a rebuild after
// one overlay file changed, with the layer data that came out new.
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Buildah } from '../../pipeline/exec/buildah.ts';
import { cacheDir, repoRoot } from '../world/fcos-base.ts';
import { sh } from '../world/tools.ts';
import { bigBuild, buildArgs, newestLog, rockImage } from './big-build.ts';
import { logTimings, type Measured, measure, mib, secs } from './measure.ts';

interface Layer {
  digest: string;
  size: number;
}

function layersOf(archive: string, version?: string): Layer[] {
  const ref = `oci-archive:${archive}${version ? `:${version}` : ''}`;
  return JSON.parse(sh('skopeo', ['inspect', '--raw', ref])).layers;
}

export async function bench(): Promise<void> {
  const work = join(cacheDir, `bench-build-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  const project = join(work, 'project');
  for (const d of ['manifests', 'overlays', 'containerfiles'])
    cpSync(join(repoRoot, d), join(project, d), { recursive: true });
  mkdirSync(work, { recursive: true });
  try {
    const first = await bigBuild(work, { project });
    const steps = logTimings(first.log).steps;
    const context = join(first.out, 'work', 'x86_64', 'context');
    const containerfile = readFileSync(join(context, 'Containerfile'), 'utf8');
    const from = /^FROM\s+(\S+)/m.exec(containerfile)?.[1];
    if (!from) throw new Error(`no FROM in ${context}/Containerfile`);

    // The floor, in a storage of its own: the base copied in under the name the Containerfile
    // uses, then buildah build as ours runs it, then the image written as an OCI archive.
    const g = [
      '--root',
      join(work, 'floor/storage'),
      '--runroot',
      join(work, 'floor/run'),
      '--storage-driver',
      'overlay',
    ];
    const buildah = (args: string[]) => measure('buildah', [...g, ...args], { disk: work });
    const pull = await buildah(['pull', '--quiet', '--arch', 'amd64', '--os', 'linux', first.base.ref]);
    const id = pull.stdout.trim().split('\n').pop()!;
    // A digest reference (localhost/rocknsm-base@sha256:..) finds the image by its digest once
    // it has a name in the repository, as build-glue.ts tags it.
    await buildah(['tag', id, from.includes('@') ? `${from.replace(/@.*$/, '')}:bench-floor` : from]);
    const build = await buildah(
      Buildah.buildArgs({
        containerfile: join(context, 'Containerfile'),
        context,
        platform: 'linux/amd64',
        tag: 'bench-floor:latest',
        timestamp: 1763769600,
      }),
    );
    const push = await buildah([
      'push',
      '--quiet',
      'bench-floor:latest',
      `oci-archive:${join(work, 'floor.ociarchive')}`,
    ]);
    rmSync(join(work, 'floor.ociarchive'), { force: true });

    const again = () => rockImage(buildArgs(first.base, first.out, first.storage, project), work);
    const noop = await again();
    appendFileSync(join(project, 'overlays/05identity/usr/lib/motd.d/10-rocknsm.motd'), 'changed\n');
    const edited = await again();
    const v2 = JSON.parse(readFileSync(join(first.out, 'builds/builds.json'), 'utf8')).builds[0].id as string;
    const meta2 = JSON.parse(readFileSync(join(first.out, 'builds', v2, 'x86_64', 'meta.json'), 'utf8'));
    const firstLayers = layersOf(first.archive, first.version);
    const before = new Set(firstLayers.map((l) => l.digest));
    // The base's own compressed blobs that the archive carries as pulled (the blob cache).
    const baseBlobs = new Set(layersOf(first.base.ref.replace(/^oci-archive:/, '')).map((l) => l.digest));
    const shared = firstLayers.filter((l) => baseBlobs.has(l.digest));
    const after = layersOf(join(first.out, 'builds', v2, 'x86_64', meta2.images.ostree.path), v2);
    const fresh = after.filter((l) => !before.has(l.digest));
    const newBytes = fresh.reduce((n, l) => n + l.size, 0);
    const total = after.reduce((n, l) => n + l.size, 0);
    const editSteps = logTimings(newestLog(first.out, 'build-')).steps;

    const floor = pull.seconds + build.seconds;
    const row = (label: string, m: Measured, fl: string, ratio: string, target: string) =>
      console.log(
        `| ${label} | ${secs(m.seconds)} | ${fl} | ${ratio} | ${target} | ${mib(m.rssSelf)} / ${mib(m.rssTree)} | ${mib(m.disk)} |`,
      );
    console.log(
      `FCOS-sized base: ${first.base.layers} layers, ${first.base.files} files, ${mib(first.base.bytes)} of filler`,
    );
    console.log('\n| stage of the first build (its log) | seconds |');
    console.log('|---|---|');
    for (const [s, t] of steps) console.log(`| ${s} | ${secs(t)} |`);
    console.log(
      `\nfirst build's archive: ${shared.length} of ${firstLayers.length} layers are the base's blobs as pulled (${mib(shared.reduce((n, l) => n + l.size, 0))})`,
    );
    console.log(
      `\nfloor: base into a fresh storage ${secs(pull.seconds)}, buildah build ${secs(build.seconds)}; buildah push oci-archive (not in the floor) ${secs(push.seconds)}`,
    );
    console.log(
      '\n| measure | rock-image | floor | ratio | target | peak RSS (own / tree) | peak scratch disk |',
    );
    console.log('|---|---|---|---|---|---|---|');
    row('first build', first.measured!, secs(floor), (first.measured!.seconds / floor).toFixed(2), '1.15×');
    row('no-op rebuild', noop, '-', '-', 'under 5 s, 0 bytes pushed');
    row('one overlay file changed', edited, '-', '-', 'under 1 MiB new layer data');
    console.log(
      `\none overlay file changed: ${(newBytes / 1024).toFixed(1)} KiB of new layer data in ${fresh.length} of ${after.length} layers (${mib(total)} in all); steps: ${[...editSteps].map(([s, t]) => `${s} ${secs(t)}`).join('; ')}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
