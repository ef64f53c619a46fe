// `rock-image publish`: one version of a stream out to the world: images by digest (registry, or an
// OCI layout under the site), artifacts + .sig + SHA256SUMS into the site, a GitHub release, then
// tags, then the stream metadata. Plans first (pure), then applies in the safe order (apply.ts).
import { resolve } from 'node:path';
import type { Arch } from '../config/index.ts';
import { loadProject, projectPaths, resolveStream } from '../config/index.ts';
import { DataError, ExitCode, UsageError } from '../errors.ts';
import { createGitHub } from '../exec/github.ts';
import { fingerprint, showKeysSync } from '../exec/gpg.ts';
import { ACTIONS_SCHEMA, type ImageJob, planActions } from '../publish/actions.ts';
import { applyPlan } from '../publish/apply.ts';
import { archiveManifest, type PlannedImage } from '../publish/images.ts';
import { readBuilds, readExisting } from '../publish/read.ts';
import {
  type ArtifactHost,
  buildDir,
  githubDownloadBase,
  parseControls,
  planSite,
  type SitePlan,
} from '../publish/site.ts';
import { archesOption, type Command, type Context, intOption } from './types.ts';

export type Values = Record<string, string | boolean | string[] | undefined>;
export const str = (v: Values, k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);

/** Where a publish or promote reads the build and writes the images, site and signatures. */
export const targetOptions = {
  build: { type: 'string' },
  site: { type: 'string' },
  'base-url': { type: 'string' },
  registry: { type: 'string' },
  authfile: { type: 'string' },
  'insecure-registry': { type: 'boolean' },
  'sign-by': { type: 'string' },
  'require-arch': { type: 'string', arches: true },
} as const;

/** Rollout controls of a release (updates/<stream>.json). */
export const controlOptions = {
  barrier: { type: 'string' },
  deadend: { type: 'string' },
  'rollout-hours': { type: 'string' },
  'rollout-start': { type: 'string' },
  'rollout-start-percentage': { type: 'string' },
} as const;

export const controlsOf = (v: Values, now: number) =>
  parseControls({
    barrier: str(v, 'barrier'),
    deadend: str(v, 'deadend'),
    rolloutHours: str(v, 'rollout-hours'),
    rolloutStart: str(v, 'rollout-start'),
    rolloutStartPercentage: str(v, 'rollout-start-percentage'),
    now,
  });

/** The stream's configured arches and publish targets, when the project defines the stream. */
export function streamDefaults(ctx: Context, stream: string) {
  try {
    const cfg = resolveStream(loadProject(projectPaths(ctx.root)), stream, ctx.root).stream;
    return {
      arches: cfg.arches,
      registry: cfg.publish.registry,
      github: cfg.publish.github,
      siteUrl: cfg.publish.siteUrl,
      artifactUrl: cfg.publish.artifactUrl,
      nativeDisks: cfg.nativeDisks,
      trust: cfg.publish.trust,
    };
  } catch {
    return undefined;
  }
}

/** The stream's allow-native-disks and its place in the stream file (publish/site.ts checkNativeDisks). */
export const nativeDisksOf = (ctx: Context, stream: string) => streamDefaults(ctx, stream)?.nativeDisks;

/**
 * Where the stream's disk images are downloaded from (publish/site.ts ArtifactHost): the stream's
 * publish.artifact-url, else the version's GitHub release (tag v<version>; the server from
 * $GITHUB_SERVER_URL, as GitHub Actions sets it, else https://github.com), else nowhere but
 * the site.
 */
export function artifactHostOf(
  ctx: Context,
  stream: string,
  version: string,
  githubRepo: string | undefined,
): ArtifactHost | undefined {
  const store = streamDefaults(ctx, stream)?.artifactUrl;
  if (store) return { kind: 'object-store', baseUrl: store };
  if (!githubRepo) return undefined;
  const server = ctx.env.GITHUB_SERVER_URL || 'https://github.com';
  return { kind: 'github', downloadBase: githubDownloadBase(server, githubRepo, `v${version}`) };
}

/** The GitHub repository of a publish or promote: --github, else the stream's publish.github. */
export const githubRepoOf = (ctx: Context, v: Values, stream: string) =>
  str(v, 'github') ?? streamDefaults(ctx, stream)?.github;

export interface Target {
  stream: string;
  version: string;
  buildRoot: string;
  siteDir: string;
  baseUrl: string;
  registry?: string;
  requireArches: Arch[];
}

/** Options shared by publish and promote, resolved against the stream's config. */
export function resolveTarget(ctx: Context, v: Values, stream: string): Target {
  const version = str(v, 'version');
  if (!version) throw new UsageError('--version is required');
  const defaults = streamDefaults(ctx, stream);
  const siteDir = resolve(ctx.cwd, str(v, 'site') ?? 'site');
  const baseUrl = str(v, 'base-url') ?? defaults?.siteUrl;
  if (!baseUrl) throw new UsageError(`--base-url is required (stream ${stream} has no publish.site-url)`);
  if (!/^(https?|file):\/\//.test(baseUrl))
    throw new UsageError(`--base-url must be an http(s) or file URL (got ${baseUrl})`);
  const required = archesOption(v, 'require-arch') ?? defaults?.arches;
  if (!required)
    throw new UsageError(`stream ${stream} is not defined here: give --require-arch x86_64,aarch64`);
  return {
    stream,
    version,
    buildRoot: resolve(ctx.cwd, str(v, 'build') ?? 'out'),
    siteDir,
    baseUrl: baseUrl.replace(/\/+$/, ''),
    registry: str(v, 'registry') ?? defaults?.registry,
    requireArches: required as Arch[],
  };
}

/**
 * The image half of the request: registry or the site's OCI layout, tags, signing; each archive's
 * manifest descriptor read from its index.json, so the plan names the index digest.
 */
export async function imageJob(
  ctx: Context,
  t: Target,
  plan: SitePlan,
  v: Values,
  tags: string[],
): Promise<ImageJob> {
  const builds = readBuilds(t.buildRoot, t.version);
  const oci = !t.registry;
  const signBy = str(v, 'sign-by');
  const archives: PlannedImage[] = [];
  for (const b of builds.filter((x) => plan.arches.includes(x.arch)))
    archives.push(
      archiveManifest({
        arch: b.arch,
        archive: `${b.dir}/${b.meta.images.ostree!.path}`,
        digest: b.meta['rocknsm.image-digest']!,
      }),
    );
  return {
    target: {
      repo: oci ? `oci:${t.siteDir}/oci` : `docker://${t.registry}`,
      authFile: str(v, 'authfile') ?? ctx.env.REGISTRY_AUTH_FILE,
      tlsVerify: !v['insecure-registry'],
      run: ctx.run,
    },
    archives,
    tags,
    // Simple signing names a registry identity; an OCI layout on the site has none, so it is not signed.
    sign:
      signBy && !oci
        ? {
            gpgKey: signBy,
            gpgHome: ctx.env.GNUPGHOME,
            lookasideDir: `${t.siteDir}/signatures`,
            identity: t.registry,
          }
        : {},
  };
}

/**
 * Images of a stream with publish.trust go out signed by a key its sensors trust: unsigned, or
 * signed by another key, every sensor would reject them (their policy: default reject, our
 * repository signedBy the stream's key ring). Checked before anything is pushed.
 */
export async function checkSigner(
  ctx: Context,
  stream: string,
  t: Target,
  signBy: string | undefined,
): Promise<void> {
  const trust = streamDefaults(ctx, stream)?.trust;
  if (!trust || !t.registry) return;
  // The image's policy.json trusts only the stream's own repository (plan/trust.ts): pushed
  // anywhere else (--registry, a fork's ROCK_REGISTRY), no sensor of it would accept the image.
  if (t.registry !== trust.registry)
    throw new UsageError(
      `stream ${stream} is signed for ${trust.registry} (publish.registry), and its images trust only that repository: pushed to ${t.registry}, every sensor would reject them. A fork sets publish.registry, publish.trust and the profiles' follows in its own manifests`,
    );
  if (!signBy)
    throw new UsageError(
      `stream ${stream} is signed (publish.trust: ${trust.keyFiles.join(', ')}): give --sign-by with that key, or its sensors reject every image`,
    );
  const signer = await fingerprint(signBy, ctx.env.GNUPGHOME, { run: ctx.run });
  const trusted = trust.keyFiles.flatMap((f) => {
    const shown = showKeysSync(resolve(ctx.root, f));
    return 'keys' in shown ? shown.keys.map((k) => k.fingerprint) : [];
  });
  if (!trusted.includes(signer))
    throw new UsageError(
      `--sign-by ${signBy} is key ${signer}, which sensors of ${stream} do not trust (publish.trust: ${trust.keyFiles.join(', ')} hold ${trusted.join(', ')})`,
    );
}

export function attachLog(ctx: Context, t: Target, what: string): void {
  const stamp = new Date(ctx.now()).toISOString().replace(/[:.]/g, '-');
  ctx.log.attachFile(`${t.buildRoot}/logs/${what}-${t.stream}-${t.version}-${stamp}.jsonl`);
}

export const publish: Command = {
  name: 'publish',
  summary: 'publish a version: images, signed artifacts, GitHub release, stream metadata',
  usage: `
Usage: rock-image publish --stream S --version V [options]

Pushes each arch's image by digest and an OCI index (registry, or an OCI layout under the site),
puts every artifact of DIR/builds/V into SITE/prod/streams/S/builds/V/<arch>/ (a hard link when
both are on one filesystem, else a copy; sha256 checked against meta.json), signs each one
(<file>.sig, with --sign-by only: without it no document names a signature) and writes SHA256SUMS, fills a DRAFT GitHub release, signs and tags the index
(S and V), then writes release.json, releases.json (appended), streams/S.json, updates/S.json and
the static update graph graph/S/<arch>/v1/graph (each checked against pipeline/publish/schema/), and publishes the GitHub
release last. Disk images (and files over 95 MiB, which the gh-pages site cannot hold) are named
in the metadata at the stream's publish.artifact-url (an object store the site's prod/ tree is
uploaded to), else at the GitHub release's download URL (<$GITHUB_SERVER_URL or
https://github.com>/OWNER/REPO/releases/download/vV/<file>), else on the site. Every step checks what is already there: a re-run after a failure converges.
Refuses a version lacking an arch of the stream or with a failed boot test, disk images that are
not xz (coreos-installer reads only raw.xz and 4k.raw.xz), and artifacts the native backend made
unless the stream file says allow-native-disks: true (exit 65); all before anything is written.

Options:
  --stream S            stream (required)
  --version V           version to publish (required)
  --build DIR           build directory (default: ./out)
  --site DIR            site directory (default: ./site)
  --base-url URL        URL the site is served at (default: the stream's publish.site-url)
  --registry HOST/REPO  image repository (default: the stream's publish.registry; none: SITE/oci)
  --authfile FILE       registry credentials (default: $REGISTRY_AUTH_FILE)
  --insecure-registry   plain HTTP / no TLS verification for the registry
  --sign-by KEY         GPG key for artifact .sig files and image signatures ($GNUPGHOME)
  --github OWNER/REPO   GitHub repository for the release (default: the stream's publish.github);
                        token from $GITHUB_TOKEN, API from --github-api or $GITHUB_API_URL
  --github-api URL      GitHub API root (default: https://api.github.com)
  --github-pace-ms N    pause between GitHub writes (default: 1000, as GitHub asks)
  --require-arch A[,A]  arches the version must have (default: the stream's arches)
  --barrier REASON, --deadend REASON, --rollout-hours N, --rollout-start T,
  --rollout-start-percentage P
                        rollout controls for this release in updates/S.json
  --plan                print the plan as JSON and change nothing: the site plan (files,
                        documents) and the actions publish runs, in order (each one is logged
                        with its outcome in DIR/logs/publish-*.jsonl)
`,
  options: {
    stream: { type: 'string' },
    version: { type: 'string' },
    ...targetOptions,
    github: { type: 'string' },
    'github-api': { type: 'string' },
    'github-pace-ms': { type: 'string', int: { min: 0 } },
    ...controlOptions,
    plan: { type: 'boolean' },
  },
  async run(ctx, v) {
    const stream = str(v, 'stream');
    if (!stream) throw new UsageError('--stream is required');
    const t = resolveTarget(ctx, v, stream);
    const controls = controlsOf(v, ctx.now());
    const builds = readBuilds(t.buildRoot, t.version);
    const repo = githubRepoOf(ctx, v, stream);
    const dests = builds.flatMap((b) =>
      Object.values(b.meta.images).map((i) => `${buildDir(stream, t.version)}/${b.arch}/${i.path}`),
    );
    const existing = await readExisting(t.siteDir, stream, dests, t.version);
    const plan = planSite({
      stream,
      version: t.version,
      requireArches: t.requireArches,
      builds,
      baseUrl: t.baseUrl,
      imageRepo: t.registry ?? `oci:${t.siteDir}/oci`,
      controls,
      existing,
      now: ctx.now(),
      nativeDisks: nativeDisksOf(ctx, stream),
      signed: Boolean(str(v, 'sign-by')),
      artifactHost: artifactHostOf(ctx, stream, t.version, repo),
    });
    for (const b of builds)
      if (!b.meta.images.ostree)
        throw new DataError(`${b.dir}/meta.json: no images.ostree (the OCI archive)`);
    const signBy = str(v, 'sign-by');
    const spec = repo
      ? {
          tag: `v${t.version}`,
          name: `RockNSM ${t.version} (${stream})`,
          body: `RockNSM sensor OS ${t.version}, stream ${stream}.\n\nStream metadata: ${t.baseUrl}/streams/${stream}.json`,
          prerelease: stream !== 'stable',
        }
      : undefined;
    // A signed stream's key is checked before anything is read or written (--plan writes nothing).
    if (!v.plan) await checkSigner(ctx, stream, t, signBy);
    const images = await imageJob(ctx, t, plan, v, [stream, t.version]);
    if (v.plan) {
      const actions = planActions({ plan, images, signBy, github: spec && { spec } });
      ctx.stdout.write(`${JSON.stringify({ schema: ACTIONS_SCHEMA, site: plan, actions }, null, 2)}\n`);
      return ExitCode.ok;
    }
    attachLog(ctx, t, 'publish');
    const token = ctx.env.GITHUB_TOKEN ?? '';
    if (repo && token && ctx.env.GITHUB_ACTIONS === 'true') ctx.stdout.write(`::add-mask::${token}\n`);
    const github =
      repo && spec
        ? {
            gh: createGitHub({
              token,
              repo,
              baseUrl: str(v, 'github-api') ?? ctx.env.GITHUB_API_URL,
              warn: (m) => ctx.log.warn(m),
              writeIntervalMs: intOption(v, 'github-pace-ms'),
            }),
            spec,
          }
        : undefined;
    const result = await applyPlan({
      plan,
      siteDir: t.siteDir,
      images,
      signBy,
      gpgHome: ctx.env.GNUPGHOME,
      github,
      // Hard links where the build and site share a filesystem: no second copy of gigabytes on
      // the disk. Safe because nothing rewrites a published file in place: artifacts and the
      // site replace files by rename (artifacts/index.ts, apply.ts copyIn), and each link is
      // hashed against meta.json before it takes its place.
      link: true,
      log: ctx.log,
    });
    ctx.log.info(
      `published ${t.version} to ${stream}: ${Object.values(result.files).filter((s) => s === 'copied').length} files copied, ${result.signed.length} signed, ${Object.values(result.documents).filter((s) => s === 'written').length} documents written${result.github ? `, GitHub ${result.github}` : ''}`,
    );
    return ExitCode.ok;
  },
};
