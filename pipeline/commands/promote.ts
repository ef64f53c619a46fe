// `rock-image promote`: a version published in one stream becomes a release of another, with no
// rebuild: the index is re-tagged by digest (signed for the new tag first), the artifacts come
// from the source stream's site directory (checked against meta.json), and the target stream's
// metadata gains the release. `rock-image rollout` sets rollout controls of a published release.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PipelineError, UsageError } from '../errors.ts';
import { applyPlan, writeDocument } from '../publish/apply.ts';
import { graphPath, renderGraph } from '../publish/graph.ts';
import { readBuilds, readDoc, readExisting } from '../publish/read.ts';
import {
  buildDir,
  checkBuilds,
  planSite,
  type ReleasesDoc,
  rfc3339,
  type UpdatesDoc,
  upsertUpdates,
} from '../publish/site.ts';
import {
  attachLog,
  controlOptions,
  controlsOf,
  imageJob,
  nativeDisksOf,
  resolveTarget,
  str,
  targetOptions,
} from './publish.ts';
import type { Command } from './types.ts';

export const promote: Command = {
  name: 'promote',
  summary: 'make a published version a release of another stream (retag by digest, no rebuild)',
  usage: `
Usage: rock-image promote --version V --from S1 --to S2 [options]

V must be published in S1 (SITE/prod/streams/S1/releases.json). Checks DIR/builds/V again (every
arch of S2, no failed boot test), links S1's artifacts into S2's build directory on the site
(sha256 checked), signs the index for tag S2 and moves the tag by digest, then appends V to S2's
releases.json and rewrites S2's release.json, streams/S2.json, updates/S2.json and graph.

Options:
  --version V, --from S1, --to S2   (required)
  --build DIR, --site DIR, --base-url URL, --registry HOST/REPO, --authfile FILE,
  --insecure-registry, --sign-by KEY, --require-arch A[,A]   as for publish
  --barrier REASON      updates from before V must stop at V first
  --deadend REASON      machines on V get no further updates
  --rollout-hours N     roll V out gradually over N hours (with --rollout-start T: epoch
                        seconds or ISO time, default now; --rollout-start-percentage P, default 0)
`,
  options: {
    version: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    ...targetOptions,
    ...controlOptions,
  },
  async run(ctx, v) {
    const from = str(v, 'from');
    const to = str(v, 'to');
    if (!from || !to) throw new UsageError('--from and --to are required');
    if (from === to) throw new UsageError('--from and --to name the same stream');
    const t = resolveTarget(ctx, v, to);
    const controls = controlsOf(v, ctx.now());
    const source = readDoc<ReleasesDoc>(t.siteDir, `prod/streams/${from}/releases.json`, 'releases');
    if (!source?.releases.some((r) => r.version === t.version))
      throw new PipelineError(`${t.version} is not published in ${from}; publish it there first`);
    const builds = readBuilds(t.buildRoot, t.version);
    const errs = checkBuilds(t.version, t.requireArches, builds);
    if (errs.length) throw new PipelineError(`refusing to promote ${t.version}:\n  ${errs.join('\n  ')}`);
    // The files come from the source stream's published copy, not the build directory.
    const fromDir = join(t.siteDir, buildDir(from, t.version));
    const sourced = builds.map((b) => ({ ...b, dir: join(fromDir, b.arch) }));
    for (const b of sourced)
      for (const img of Object.values(b.meta.images))
        if (!existsSync(join(b.dir, img.path)))
          throw new PipelineError(
            `${join(b.dir, img.path)} is missing: ${from} does not hold ${t.version} completely`,
          );
    const dests = builds.flatMap((b) =>
      Object.values(b.meta.images).map((i) => `${buildDir(to, t.version)}/${b.arch}/${i.path}`),
    );
    const plan = planSite({
      stream: to,
      version: t.version,
      requireArches: t.requireArches,
      builds: sourced,
      baseUrl: t.baseUrl,
      imageRepo: t.registry ?? `oci:${t.siteDir}/oci`,
      controls,
      existing: await readExisting(t.siteDir, to, dests),
      now: ctx.now(),
      nativeDisks: nativeDisksOf(ctx, to),
    });
    attachLog(ctx, t, 'promote');
    await applyPlan({
      plan,
      siteDir: t.siteDir,
      images: imageJob(ctx, t, plan, v, [to]),
      signBy: str(v, 'sign-by'),
      gpgHome: ctx.env.GNUPGHOME,
      link: true,
      log: ctx.log,
    });
    ctx.log.info(`promoted ${t.version} from ${from} to ${to}`);
    return 0;
  },
};

export const rollout: Command = {
  name: 'rollout',
  summary: "set a published release's rollout controls (barrier, dead-end, gradual rollout)",
  usage: `
Usage: rock-image rollout --stream S --version V [--barrier R] [--deadend R]
                          [--rollout-hours N [--rollout-start T] [--rollout-start-percentage P]] [--clear]

Replaces V's entry in SITE/updates/S.json with the given controls (--clear: none) and rewrites
the update graph v1/graph/S/<arch>.json; both schema-checked, written atomically.

Options:
  --site DIR   site directory (default: ./site)
`,
  options: {
    stream: { type: 'string' },
    version: { type: 'string' },
    site: { type: 'string' },
    clear: { type: 'boolean' },
    ...controlOptions,
  },
  async run(ctx, v) {
    const stream = str(v, 'stream');
    const version = str(v, 'version');
    if (!stream || !version) throw new UsageError('--stream and --version are required');
    const siteDir = join(ctx.cwd, str(v, 'site') ?? 'site');
    const controls = controlsOf(v, ctx.now());
    if (!controls && !v.clear)
      throw new UsageError('give a control (--barrier, --deadend, --rollout-hours) or --clear');
    const releases = readDoc<ReleasesDoc>(siteDir, `prod/streams/${stream}/releases.json`, 'releases');
    if (!releases?.releases.some((r) => r.version === version))
      throw new PipelineError(`${version} is not a release of ${stream} (${siteDir})`);
    const updates = upsertUpdates(
      readDoc<UpdatesDoc>(siteDir, `updates/${stream}.json`, 'updates'),
      stream,
      version,
      controls ?? {},
      rfc3339(ctx.now()),
    );
    const archs = [
      ...new Set(releases.releases.flatMap((r) => (r['oci-images'] ?? []).map((o) => o.architecture))),
    ];
    writeDocument(siteDir, { path: `updates/${stream}.json`, kind: 'updates', json: updates });
    for (const a of archs.sort())
      writeDocument(siteDir, {
        path: graphPath(stream, a),
        kind: 'graph',
        json: renderGraph(releases, updates, a),
      });
    ctx.log.info(`${stream} ${version}: ${JSON.stringify(controls ?? {})}`);
    return 0;
  },
};
