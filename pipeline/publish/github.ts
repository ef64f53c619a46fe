// A GitHub release for a version: a DRAFT found or created, assets uploaded when missing or
// different (name, size and sha256, kept in the asset label; GitHub's own digest when it has one),
// broken or mismatched ones deleted and uploaded again, and only then published. Published
// releases are immutable on GitHub, so publishing is the very last step; a re-run converges.
import { statSync } from 'node:fs';
import { PipelineError } from '../errors.ts';
import { ASSET_LIMIT, type Asset, FileBody, type GitHub, GitHubError, type Release } from '../exec/github.ts';

export interface WantedAsset {
  name: string;
  path: string;
  size: number;
  sha256: string;
}

export type AssetResult = 'uploaded' | 'kept' | 'replaced';

export interface ReleaseSpec {
  tag: string;
  name: string;
  body: string;
  prerelease?: boolean;
  assets: WantedAsset[];
}

export const assetLabel = (sha256: string) => `sha256:${sha256}`;

/** Whether an asset on GitHub is exactly the wanted file. */
export function assetMatches(a: Asset, w: WantedAsset): boolean {
  if (a.state !== 'uploaded' || a.size !== w.size) return false;
  if (a.digest) return a.digest === `sha256:${w.sha256}`;
  return a.label === assetLabel(w.sha256);
}

/** Refuses what GitHub would refuse, before anything is uploaded. */
export function checkAssets(assets: WantedAsset[]): void {
  const big = assets.filter((a) => a.size >= ASSET_LIMIT);
  if (big.length)
    throw new PipelineError(
      `GitHub release assets must be under 2 GiB; too big: ${big.map((a) => `${a.name} (${a.size} bytes)`).join(', ')}. Nothing was uploaded; ship these from the site only.`,
    );
  const seen = new Set<string>();
  for (const a of assets) {
    if (seen.has(a.name)) throw new PipelineError(`two release assets named ${a.name}`);
    seen.add(a.name);
  }
}

/** Finds the release for `tag`: a published one by tag, else a draft among all releases. */
export async function findRelease(gh: GitHub, tag: string): Promise<Release | undefined> {
  const byTag = await gh.getReleaseByTag(tag);
  if (byTag) return byTag;
  const drafts = (await gh.listReleases())
    .filter((r) => r.draft && r.tag_name === tag)
    .sort((a, b) => a.id - b.id);
  return drafts[0];
}

/** Uploads one asset; when GitHub already has that name (a broken upload), deletes it and retries once. */
export async function uploadOne(
  gh: GitHub,
  release: Release,
  w: WantedAsset,
  data: Buffer | FileBody,
): Promise<Asset> {
  try {
    return await gh.uploadAsset(release, w.name, assetLabel(w.sha256), data);
  } catch (err) {
    if (!(err instanceof GitHubError && err.status === 422)) throw err;
    const stale = (await gh.listAssets(release.id)).find((a) => a.name === w.name);
    if (!stale) throw err;
    await gh.deleteAsset(stale.id);
    return gh.uploadAsset(release, w.name, assetLabel(w.sha256), data);
  }
}

/** Draft -> assets -> (with `publish`) published. Returns what happened to each asset. */
export async function syncRelease(
  gh: GitHub,
  spec: ReleaseSpec,
  opts: { publish: boolean; log?: (msg: string) => void },
): Promise<{
  release: Release;
  assets: Record<string, AssetResult>;
  published: 'published' | 'already-published' | 'draft';
}> {
  const log = opts.log ?? (() => {});
  checkAssets(spec.assets);
  let release = await findRelease(gh, spec.tag);
  if (release && !release.draft) {
    const have = await gh.listAssets(release.id);
    const wrong = spec.assets.filter((w) => !have.some((a) => a.name === w.name && assetMatches(a, w)));
    if (wrong.length)
      throw new PipelineError(
        `release ${spec.tag} is already published and differs in: ${wrong.map((w) => w.name).join(', ')}; published releases are not changed`,
      );
    return {
      release,
      assets: Object.fromEntries(spec.assets.map((w) => [w.name, 'kept' as const])),
      published: 'already-published',
    };
  }
  if (!release) {
    release = await gh.createRelease({
      tag: spec.tag,
      name: spec.name,
      body: spec.body,
      draft: true,
      prerelease: spec.prerelease,
    });
    log(`GitHub: created draft release ${spec.tag} (${release.id})`);
  }
  const results: Record<string, AssetResult> = {};
  const have = await gh.listAssets(release.id);
  const wanted = new Set(spec.assets.map((w) => w.name));
  for (const a of have)
    if (!wanted.has(a.name)) {
      log(`GitHub: deleting stray asset ${a.name}`);
      await gh.deleteAsset(a.id);
    }
  for (const w of spec.assets) {
    const cur = have.find((a) => a.name === w.name);
    if (cur && assetMatches(cur, w)) {
      results[w.name] = 'kept';
      continue;
    }
    const size = statSync(w.path).size;
    if (size !== w.size) throw new PipelineError(`${w.path}: ${size} bytes, expected ${w.size}`);
    // Streamed from the file, hashed as it goes: what was sent is checked below.
    const data = new FileBody(w.path, w.size);
    if (cur) {
      log(
        `GitHub: ${w.name} is ${cur.state === 'uploaded' ? 'different' : `broken (${cur.state})`}: replacing`,
      );
      await gh.deleteAsset(cur.id);
    }
    const got = await uploadOne(gh, release, w, data);
    if (data.sent?.bytes !== w.size || data.sent.sha256 !== w.sha256) {
      // The file changed while it was read: the asset goes, nothing names bytes not checked.
      await gh.deleteAsset(got.id);
      throw new PipelineError(
        `${w.path} changed while it was uploaded: sent ${data.sent?.bytes ?? 0} bytes with sha256 ${data.sent?.sha256 ?? '-'}, expected ${w.size} bytes with sha256 ${w.sha256}`,
      );
    }
    if (got.size !== w.size)
      throw new PipelineError(`GitHub stored ${got.size} bytes of ${w.name}, sent ${w.size}`);
    results[w.name] = cur ? 'replaced' : 'uploaded';
  }
  // What GitHub holds now must be exactly the wanted set before anyone can see the release.
  const final = await gh.listAssets(release.id);
  const bad = spec.assets.filter((w) => !final.some((a) => a.name === w.name && assetMatches(a, w)));
  if (bad.length || final.length !== spec.assets.length)
    throw new PipelineError(
      `release ${spec.tag}: after uploading, GitHub holds ${final.length} assets, ${bad.length} not as sent (${bad.map((b) => b.name).join(', ')})`,
    );
  if (!opts.publish) return { release, assets: results, published: 'draft' };
  release = await gh.updateRelease(release.id, { draft: false });
  log(`GitHub: published release ${spec.tag}`);
  return { release, assets: results, published: 'published' };
}

/**
 * Checks that a published release `tag` serves each file at its planned location (GitHub's
 * browser_download_url) with the same bytes (size and sha256), and its .sig when `signed`: for
 * a promote, which names the files publish put on the version's release.
 */
export async function checkServed(
  gh: GitHub,
  tag: string,
  files: { name: string; location: string; size: number; sha256: string; dest: string }[],
  signed: boolean,
): Promise<void> {
  const release = await gh.getReleaseByTag(tag);
  if (!release)
    throw new PipelineError(`no published GitHub release ${tag}: publish the version first; nothing written`);
  const have = await gh.listAssets(release.id);
  const errs: string[] = [];
  for (const f of files) {
    const a = have.find((x) => x.name === f.name);
    if (!a || !assetMatches(a, { name: f.name, path: f.dest, size: f.size, sha256: f.sha256 }))
      errs.push(`${f.name}: ${a ? 'other bytes' : 'not an asset'}`);
    else if (a.browser_download_url !== f.location)
      errs.push(`${f.name}: served at ${a.browser_download_url}, not ${f.location}`);
    if (signed && !have.some((x) => x.name === `${f.name}.sig` && x.state === 'uploaded'))
      errs.push(`${f.name}.sig: not an asset`);
  }
  if (errs.length)
    throw new PipelineError(
      `GitHub release ${tag} does not serve what the metadata would name; nothing written:\n  ${errs.join('\n  ')}`,
    );
}
