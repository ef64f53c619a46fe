// `rock-image promote`: a version published in one stream becomes a release of another, with no
// rebuild: the index is re-tagged by digest (signed for the new tag first), the artifacts come
// from the source stream's site directory (checked against meta.json), and the target stream's
// metadata gains the release. `rock-image rollout` sets rollout controls of a published release.
// Both read the target's updates/<stream>.json from its text first, so a broken entry is
// reported at its line before anything is written.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode, PipelineError, UsageError } from '../errors.ts';
import { createGitHub } from '../exec/github.ts';
import { ACTIONS_SCHEMA, planActions } from '../publish/actions.ts';
import { applyPlan, writeDocument } from '../publish/apply.ts';
import { checkServed } from '../publish/github.ts';
import { readBuilds, readDoc, readExisting } from '../publish/read.ts';
import {
  buildDir,
  checkBuilds,
  checkSiteDocText,
  planSite,
  type ReleasesDoc,
  staticGraphs,
  type UpdatesDoc,
  upsertUpdates,
} from '../publish/site.ts';
import { checkDoc } from '../publish/validate.ts';
import {
  artifactHostOf,
  attachLog,
  checkSigner,
  controlOptions,
  controlsOf,
  githubRepoOf,
  imageJob,
  nativeDisksOf,
  resolveTarget,
  str,
  targetOptions,
} from './publish.ts';
import type { Command } from './types.ts';

/** SITE/updates/<stream>.json checked from its text (file:line errors, exit 65), when it exists. */
export function readUpdates(siteDir: string, stream: string): UpdatesDoc | undefined {
  const file = join(siteDir, 'updates', `${stream}.json`);
  return existsSync(file) ? checkSiteDocText('updates', readFileSync(file, 'utf8'), file, stream) : undefined;
}

const controlsUsage = `  --barrier REASON      machines on older releases stop at V first (an update barrier)
  --deadend REASON      machines on V get no further updates
  --rollout-hours N     roll V out gradually: from P to every machine over N hours (N > 0)
  --rollout-start T     when the rollout starts: seconds since the epoch or an ISO 8601 time
                        with a zone (2026-11-22T12:00:00Z); default: now (kept on a re-run)
  --rollout-start-percentage P
                        the fraction of machines (0..1, as start_percentage in updates.json;
                        0.5 is half) that get V at the start; default 0 with --rollout-hours,
                        else 1; without --rollout-hours the rollout stays at P
  Without rollout options V rolls out to every machine at once (start_percentage 1).`;

export const promote: Command = {
  name: 'promote',
  summary: 'make a published version a release of another stream (retag by digest, no rebuild)',
  usage: `
Usage: rock-image promote --version V --from S1 --to S2 [options]

V must be published in S1 (SITE/prod/streams/S1/releases.json). Checks DIR/builds/V again (every
arch of S2, no failed boot test), links S1's artifacts into S2's build directory on the site
(sha256 checked), signs the index for tag S2 and moves the tag by digest, then appends V to S2's
releases.json and rewrites S2's release.json, streams/S2.json, updates/S2.json (V's entry, always
with a rollout, so V is an update target) and the static graph graph/S2/<arch>/v1/graph.
Disk images are named where publish put them: S2's publish.artifact-url, else V's GitHub release
(S2's publish.github, tag vV), else the site.

Options:
  --version V, --from S1, --to S2   (required)
  --build DIR, --site DIR, --base-url URL, --registry HOST/REPO, --authfile FILE,
  --insecure-registry, --sign-by KEY, --require-arch A[,A]   as for publish
  --github OWNER/REPO, --github-api URL   the repository whose release vV holds the disk images
                        (default: S2's publish.github); checked to serve them before anything is written
${controlsUsage}
  --plan                print the plan as JSON and change nothing: the site plan and the actions
                        promote runs, in order (as for publish)
`,
  options: {
    version: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    ...targetOptions,
    github: { type: 'string' },
    'github-api': { type: 'string' },
    ...controlOptions,
    plan: { type: 'boolean' },
  },
  async run(ctx, v) {
    const from = str(v, 'from');
    const to = str(v, 'to');
    if (!from || !to) throw new UsageError('--from and --to are required');
    if (from === to) throw new UsageError('--from and --to name the same stream');
    const t = resolveTarget(ctx, v, to);
    const controls = controlsOf(v, ctx.now());
    readUpdates(t.siteDir, to);
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
      existing: await readExisting(t.siteDir, to, dests, t.version),
      now: ctx.now(),
      nativeDisks: nativeDisksOf(ctx, to),
      signed: Boolean(str(v, 'sign-by')),
      artifactHost: artifactHostOf(ctx, to, t.version, githubRepoOf(ctx, v, to)),
    });
    const images = await imageJob(ctx, t, plan, v, [to]);
    if (v.plan) {
      const actions = planActions({ plan, images, signBy: str(v, 'sign-by') });
      ctx.stdout.write(`${JSON.stringify({ schema: ACTIONS_SCHEMA, site: plan, actions }, null, 2)}\n`);
      return ExitCode.ok;
    }
    await checkSigner(ctx, to, t, str(v, 'sign-by'));
    const served = plan.files.filter((f) => f.served === 'github');
    if (served.length) {
      const gh = createGitHub({
        token: ctx.env.GITHUB_TOKEN ?? '',
        repo: githubRepoOf(ctx, v, to)!,
        baseUrl: str(v, 'github-api') ?? ctx.env.GITHUB_API_URL,
        warn: (m) => ctx.log.warn(m),
      });
      await checkServed(gh, `v${t.version}`, served, Boolean(str(v, 'sign-by')));
    }
    attachLog(ctx, t, 'promote');
    await applyPlan({
      githubChecked: served.length > 0,
      plan,
      siteDir: t.siteDir,
      images,
      signBy: str(v, 'sign-by'),
      gpgHome: ctx.env.GNUPGHOME,
      link: true,
      log: ctx.log,
    });
    ctx.log.info(`promoted ${t.version} from ${from} to ${to}`);
    return ExitCode.ok;
  },
};

export const rollout: Command = {
  name: 'rollout',
  summary: "set a published release's rollout controls (barrier, dead-end, gradual rollout)",
  usage: `
Usage: rock-image rollout --stream S --version V [--barrier R] [--deadend R]
                          [--rollout-hours N] [--rollout-start T] [--rollout-start-percentage P]
       rock-image rollout --stream S --version V --clear

Sets V's entry in SITE/updates/S.json: barrier and dead-end as given (those not given are
removed); the rollout as given, else the entry's own (an immediate one when it has none). Then
rewrites the static update graph graph/S/<arch>/v1/graph. Both are schema-checked and written
atomically; a re-run with the same options changes nothing. A broken updates/S.json is reported
at its line (exit 65) and nothing is written.

Options:
  --site DIR   site directory (default: ./site)
${controlsUsage}
  --clear      no barrier, no dead-end, and V to every machine at once
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
    const asked = controlsOf(v, ctx.now());
    if (asked && v.clear) throw new UsageError('--clear takes no other control');
    if (!asked && !v.clear)
      throw new UsageError('give a control (--barrier, --deadend, --rollout-hours, ...) or --clear');
    const controls = asked ?? { rollout: { start_percentage: 1 } };
    const current = readUpdates(siteDir, stream);
    const releases = readDoc<ReleasesDoc>(siteDir, `prod/streams/${stream}/releases.json`, 'releases');
    if (!releases?.releases.some((r) => r.version === version))
      throw new PipelineError(`${version} is not a release of ${stream} (${siteDir})`);
    const updates = upsertUpdates(
      current,
      stream,
      version,
      controls,
      ctx.now(),
      releases.releases.map((r) => r.version),
    );
    const docs = [
      { path: `updates/${stream}.json`, kind: 'updates' as const, json: updates },
      ...staticGraphs(stream, releases, updates, ctx.now()),
    ];
    // Every document checked before the first is written.
    for (const d of docs) checkDoc(d.kind, d.path, d.json);
    const written = docs.map((d) => writeDocument(siteDir, d));
    const entry = updates.releases.find((r) => r.version === version)!.metadata;
    ctx.log.info(
      `${stream} ${version}: ${JSON.stringify(entry)}${written.every((w) => w === 'unchanged') ? ' (unchanged)' : ''}`,
    );
    return ExitCode.ok;
  },
};
