// `rock-image bundle`: one published release, offline. Makes a signed bundle from what publish
// published (the site, its directory or over HTTP(S): publish/site-source.ts; the registry, by
// digest; never rebuilt); `bundle verify` checks one; `bundle load` checks one and loads it into
// a site's registry and lookaside. Glue: reads the world, plans (publish/bundle.ts, pure),
// applies (publish/bundle-apply.ts).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Arch } from '../config/index.ts';
import { ExitCode, PipelineError, UsageError } from '../errors.ts';
import { inspectRaw, type Remote, sha256Digest } from '../exec/skopeo.ts';
import {
  type BundlePlan,
  type IndexDoc,
  planBundle,
  type ReleaseDoc,
  splitDigestRef,
} from '../publish/bundle.ts';
import { checkBundle, loadBundle, makeBundle, openBundle } from '../publish/bundle-apply.ts';
import { parseDoc, readBuilds } from '../publish/read.ts';
import { buildDir, type ReleasesDoc } from '../publish/site.ts';
import { dirSource, isUrl, type ReleaseMedia, type SiteSource, urlSource } from '../publish/site-source.ts';
import { str, streamDefaults, type Values } from './publish.ts';
import { archesOption, type Command, type Context } from './types.ts';

const remoteOf = (ctx: Context, v: Values): Remote => ({
  run: ctx.run,
  authFile: str(v, 'authfile') ?? ctx.env.REGISTRY_AUTH_FILE,
  tlsVerify: !v['insecure-registry'],
});

/** --keyring files, else the public keys the stream's sensors trust (publish.trust). */
function keyFilesOf(ctx: Context, v: Values, stream: string): string[] {
  const given = str(v, 'keyring');
  if (given) return given.split(',').map((f) => resolve(ctx.cwd, f));
  if (!stream)
    throw new UsageError(
      'the bundle names no stream (no bundle.json): give --keyring with the release public key',
    );
  const trust = streamDefaults(ctx, stream)?.trust;
  if (!trust)
    throw new UsageError(
      `stream ${stream} has no publish.trust here: give --keyring with the release public key`,
    );
  return trust.keyFiles.map((f) => resolve(ctx.root, f));
}

async function make(ctx: Context, v: Values): Promise<number> {
  const stream = str(v, 'stream');
  const version = str(v, 'version');
  const output = str(v, 'output');
  const signBy = str(v, 'sign-by');
  if (!stream || !version || !output) throw new UsageError('--stream, --version and --output are required');
  if (!signBy) throw new UsageError('--sign-by is required: the site checks SHA256SUMS by its signature');
  const arches = archesOption(v, 'arch');
  const siteArg = str(v, 'site') ?? 'site';
  let site: SiteSource;
  if (isUrl(siteArg)) site = urlSource(siteArg);
  else {
    const siteDir = resolve(ctx.cwd, siteArg);
    if (!existsSync(siteDir)) throw new UsageError(`--site ${siteDir} does not exist`);
    site = dirSource(siteDir);
  }
  /** A site document, schema-checked; undefined when the site has none. */
  const doc = async <T>(rel: string, kind: 'release' | 'releases'): Promise<T | undefined> => {
    const text = await site.text(rel);
    return text === undefined ? undefined : parseDoc<T>(site.where(rel), text, kind);
  };
  const out = resolve(ctx.cwd, output);
  const remote = remoteOf(ctx, v);
  const dir = buildDir(stream, version);
  const releases = await doc<ReleasesDoc>(`prod/streams/${stream}/releases.json`, 'releases');
  const release = await doc<ReleaseDoc & ReleaseMedia>(`${dir}/release.json`, 'release');
  // The first release check needs no registry: an unpublished version stops here.
  const firstRef = Object.values(release?.architectures ?? {})[0]?.['oci-image']['digest-ref'];
  const source = str(v, 'registry') ?? firstRef?.slice(0, firstRef.lastIndexOf('@'));
  let index: { digest: string; doc: IndexDoc } = { digest: '', doc: { manifests: [] } };
  if (releases?.releases.some((r) => r.version === version) && source) {
    const raw = await inspectRaw(remote, `docker://${source}:${version}`);
    if (raw === undefined)
      throw new PipelineError(`${source} has no tag ${version}: the release's images are not there`);
    index = { digest: sha256Digest(raw), doc: JSON.parse(raw) as IndexDoc };
  }
  const build = resolve(ctx.cwd, str(v, 'build') ?? 'out');
  const metas: Partial<Record<Arch, NonNullable<ReturnType<typeof readBuilds>[number]['meta']>>> = {};
  // readBuilds reads DIR/builds/V or DIR/V.
  if ([join(build, 'builds', version), join(build, version)].some((d) => existsSync(d)))
    for (const b of readBuilds(build, version)) metas[b.arch] = b.meta;
  else
    ctx.log.warn(`no build records of ${version} in ${build}: the bundle carries no service or agent images`);
  const sinceVersion = str(v, 'since');
  let since: NonNullable<Parameters<typeof planBundle>[0]['since']> | undefined;
  if (sinceVersion && source && index.digest) {
    const sinceRelease = await doc<ReleaseDoc>(`${buildDir(stream, sinceVersion)}/release.json`, 'release');
    const digests = [release, sinceRelease].flatMap((r) =>
      Object.values(r?.architectures ?? {}).map((a) => a['oci-image']['digest-ref'].split('@')[1]!),
    );
    const layers: Record<string, string[]> = {};
    for (const d of digests) {
      const raw = await inspectRaw(remote, `docker://${source}@${d}`);
      if (raw === undefined)
        throw new PipelineError(`${source} has no ${d}: cannot tell which layers ${sinceVersion} has`);
      layers[d] = ((JSON.parse(raw) as { layers?: { digest: string }[] }).layers ?? []).map((l) => l.digest);
    }
    since = { version: sinceVersion, release: sinceRelease, layers };
  }
  // Over HTTP the lookaside has no listing: it is read for the release's images and the index.
  const refs = Object.values(release?.architectures ?? {}).flatMap((a) => {
    const r = splitDigestRef(a['oci-image']?.['digest-ref'] ?? '');
    return r ? [r] : [];
  });
  const signatureFiles = refs.length
    ? await site.signatureFiles(
        refs[0]!.repository,
        [...refs.map((r) => r.digest), index.digest].filter(Boolean),
      )
    : [];
  const plan = planBundle({
    since,
    stream,
    version,
    releases,
    release,
    streamArches: streamDefaults(ctx, stream)?.arches,
    arches: arches as Arch[] | undefined,
    source,
    index,
    metas,
    siteFiles: await site.versionFiles(stream, version, release),
    signatureFiles,
  });
  for (const u of plan.unpinned)
    ctx.log.warn(`${u} is not pinned by digest: not in the bundle (rock-image pin)`);
  if (v.plan) {
    ctx.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    return ExitCode.ok;
  }
  const made = await makeBundle({
    plan,
    site,
    remote,
    output: out,
    signBy,
    gpgHome: ctx.env.GNUPGHOME,
    log: ctx.log,
  });
  ctx.log.info(
    `bundle of ${stream} ${version} (${plan.arches.join(', ')}): ${plan.images.length} images, ${made.files} files, ${made.bytes} bytes at ${out}`,
  );
  return ExitCode.ok;
}

function peekStream(dir: string): string {
  try {
    return (JSON.parse(readFileSync(join(dir, 'bundle.json'), 'utf8')) as { stream?: string }).stream ?? '';
  } catch {
    return '';
  }
}

/** Opens (unpacks) and checks the bundle; `then` runs on the checked directory. */
async function checked<T>(
  ctx: Context,
  v: Values,
  path: string | undefined,
  then: (dir: string, plan: BundlePlan) => Promise<T>,
): Promise<T> {
  if (!path) throw new UsageError('give the bundle: a directory or a .tar file');
  const full = resolve(ctx.cwd, path);
  const work = mkdtempSync(join(tmpdir(), 'rock-bundle-'));
  try {
    const dir = await openBundle(ctx.run, full, work);
    // Only picks which of this project's keys to trust; the bundle's own word is checked below.
    const keys = keyFilesOf(ctx, v, peekStream(dir));
    const { plan, signer, files } = await checkBundle(ctx.run, dir, keys, full);
    ctx.log.info(`${full}: ${files} files as SHA256SUMS lists them, signed by ${signer}`);
    return await then(dir, plan);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export const bundle: Command = {
  name: 'bundle',
  summary: 'an offline bundle of a published release: make, verify, load into a site registry',
  positionals: true,
  usage: `
Usage: rock-image bundle --stream S --version V --output DIR|FILE.tar --sign-by KEY [--since V0] [options]
       rock-image bundle verify DIR|FILE.tar [--keyring FILE[,FILE]]
       rock-image bundle load DIR|FILE.tar --registry HOST[:PORT] --lookaside DIR [options]

Make: V must be published in S (SITE/prod/streams/S/releases.json; SITE a directory or a
URL). Reads the index tag V points at in the registry and refuses, with nothing written, when
its images are not release.json's digests (or meta.json's, when --build holds the version),
when the release lacks an arch the stream needs or one --arch asks for, or when an image has no
signature in SITE/signatures. Then copies by digest with skopeo, into OCI layouts: each arch's
image (images/os, ref name the arch), the index (ref name V; when every arch it lists is
bundled) and the service and agent images the build pins (images/services); the OS image's
signatures (signatures/, as in the lookaside); the version's artifacts of those arches with
their .sig and SHA256SUMS, but not the .ociarchive (images/os holds it); streams/S.json,
releases.json, updates/S.json and the update graphs (site/). Last bundle.json (what it
holds), SHA256SUMS over every file and SHA256SUMS.sig. Written to a temp directory, then
renamed (or tarred, then renamed): a failed run leaves nothing.

Verify: SHA256SUMS.sig good by a key of --keyring (default: the stream's publish.trust keys), each
file listed present with its sha256, no file unlisted. A tarball tar cannot read to its end is
refused. Every problem names its file.

Load: verifies, then pushes every image by digest to HOST/<its repository path> (the layout a
registries.conf mirror of the original registry has), tags V and S at the OS index, and adds the
signatures to --lookaside DIR (serve it at the URL the sensors' registries.d names). Re-runs
converge.

Options:
  --stream S, --version V   release to bundle (required)
  --output DIR|FILE.tar     where the bundle goes (required)
  --sign-by KEY             GPG key that signs SHA256SUMS ($GNUPGHOME) (required)
  --site DIR|URL            the published site: its directory (default: ./site), or the
                            http(s) URL it is served at; then the files release.json names
                            are read where it names them (site, GitHub release, object store),
                            each checked against its sha256, and the lookaside's signature-N
                            for N = 1, 2, ... until the first 404
  --build DIR               build records of V: service and agent images (default: ./out)
  --registry HOST/REPO      read the OS image here (default: release.json's repository);
                            with load: the site registry, HOST[:PORT]
  --arch A[,A]              arches to carry (default: every arch of the release)
  --since V0                incremental: leave out the OS image layers V0's images have (the
                            site has loaded V0; load refuses the bundle where V0 is absent)
  --authfile FILE           registry credentials (default: $REGISTRY_AUTH_FILE)
  --insecure-registry       plain HTTP / no TLS verification for the registry
  --keyring FILE[,FILE]     public keys SHA256SUMS.sig must be by (verify, load)
  --lookaside DIR           the site's signature directory (load; required)
  --plan                    print the make plan as JSON and write nothing
`,
  options: {
    stream: { type: 'string' },
    version: { type: 'string' },
    output: { type: 'string' },
    'sign-by': { type: 'string' },
    site: { type: 'string' },
    build: { type: 'string' },
    registry: { type: 'string' },
    arch: { type: 'string', arches: true },
    authfile: { type: 'string' },
    'insecure-registry': { type: 'boolean' },
    keyring: { type: 'string' },
    lookaside: { type: 'string' },
    since: { type: 'string' },
    plan: { type: 'boolean' },
  },
  async run(ctx, v, positionals) {
    const [verb, path, ...extra] = positionals;
    if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
    if (verb === undefined) return make(ctx, v);
    if (verb === 'verify') return checked(ctx, v, path, async () => 0);
    if (verb === 'load') {
      const host = str(v, 'registry');
      const lookaside = str(v, 'lookaside');
      if (!host || !/^[a-z0-9.-]+(:\d+)?$/.test(host))
        throw new UsageError('bundle load needs --registry HOST[:PORT] (the site registry, no path)');
      if (!lookaside)
        throw new UsageError('bundle load needs --lookaside DIR (the site signature directory)');
      return checked(ctx, v, path, async (dir, plan) => {
        const result = await loadBundle({
          dir,
          plan,
          host,
          remote: remoteOf(ctx, v),
          lookasideDir: resolve(ctx.cwd, lookaside),
          log: ctx.log,
        });
        const n = (s: string) => Object.values(result).filter((r) => r === s).length;
        const kept = Object.values(result).find((r) => r.startsWith('kept at newer '));
        ctx.log.info(
          `loaded ${plan.stream} ${plan.version} into ${host}: ${n('loaded')} new, ${n('already-present') + n('already-tagged')} already there${kept ? `; ${plan.stream} stays at the newer ${kept.slice('kept at newer '.length)}` : ''}`,
        );
        return ExitCode.ok;
      });
    }
    throw new UsageError(`unknown bundle action '${verb}' (verify or load)`);
  },
};
