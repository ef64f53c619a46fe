// GitHub Releases through @octokit/rest with the retry (5xx) and throttling (rate limits,
// secondary rate limits with retry-after, paced writes) plugins. The only module that talks to
// GitHub; the token is given here and never logged.
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import Bottleneck from 'bottleneck';
import { PipelineError, ToolError, UsageError } from '../errors.ts';

/** GitHub refuses release assets of 2 GiB and more. */
export const ASSET_LIMIT = 2 * 1024 ** 3;

export interface GitHubOptions {
  /** GITHUB_TOKEN; never printed. */
  token: string;
  /** owner/repo */
  repo: string;
  /** API root. Default https://api.github.com (GHES: https://HOST/api/v3; tests: a local server). */
  baseUrl?: string;
  /** Attempts after the first on 5xx and rate limits. Default 3. */
  retries?: number;
  /** Base of the retry pauses (x retry-after seconds, x attempt²). Default 1000 ms. */
  retryBaseMs?: number;
  /** Pause between writes (GitHub asks for about one per second). Default 1000 ms. */
  writeIntervalMs?: number;
  /** Where retries and limits are reported. */
  warn?: (msg: string) => void;
}

export interface Release {
  id: number;
  tag_name: string;
  name: string | null;
  draft: boolean;
  prerelease: boolean;
  upload_url: string;
  html_url: string;
}

export interface Asset {
  id: number;
  name: string;
  label: string | null;
  size: number;
  state: 'uploaded' | 'open';
  /** "sha256:<hex>" where GitHub computed it (newer servers), else null/absent. */
  digest?: string | null;
  browser_download_url: string;
}

export interface GitHub {
  readonly owner: string;
  readonly repo: string;
  /** Every release, drafts included (drafts are not found by tag). */
  listReleases(): Promise<Release[]>;
  getReleaseByTag(tag: string): Promise<Release | undefined>;
  createRelease(p: {
    tag: string;
    name: string;
    body: string;
    draft: boolean;
    prerelease?: boolean;
    target?: string;
  }): Promise<Release>;
  updateRelease(
    id: number,
    p: { draft?: boolean; name?: string; body?: string; make_latest?: 'true' | 'false' | 'legacy' },
  ): Promise<Release>;
  listAssets(releaseId: number): Promise<Asset[]>;
  /** POSTs to the release's upload_url; `label` is shown by GitHub (we keep the sha256 there). */
  uploadAsset(
    release: Release,
    name: string,
    label: string,
    data: Buffer,
    contentType?: string,
  ): Promise<Asset>;
  deleteAsset(id: number): Promise<void>;
}

/** An HTTP status from GitHub (after the plugins gave up), with GitHub's message. */
export class GitHubError extends ToolError {
  readonly status: number;
  readonly body: unknown;
  constructor(what: string, status: number, body: unknown) {
    const msg = (body as { message?: string })?.message ?? '';
    const errs = (body as { errors?: { code?: string }[] })?.errors?.map((e) => e.code).join(', ');
    super(`GitHub ${what}: HTTP ${status}${msg ? `: ${msg}` : ''}${errs ? ` (${errs})` : ''}`);
    this.status = status;
    this.body = body;
  }
}

const RockOctokit = Octokit.plugin(retry, throttling);

export function createGitHub(opts: GitHubOptions): GitHub {
  const [owner, repo] = opts.repo.split('/');
  if (!owner || !repo || opts.repo.split('/').length !== 2)
    throw new UsageError(`--github must be OWNER/REPO (got '${opts.repo}')`);
  if (!opts.token) throw new UsageError('GITHUB_TOKEN is not set: publishing a GitHub release needs it');
  const retries = opts.retries ?? 3;
  const base = opts.retryBaseMs ?? 1000;
  const warn = opts.warn ?? (() => {});
  const octokit = new RockOctokit({
    auth: opts.token,
    baseUrl: opts.baseUrl ?? 'https://api.github.com',
    userAgent: 'rock-image',
    log: { debug: () => {}, info: () => {}, warn: (m: string) => warn(m), error: (m: string) => warn(m) },
    retry: { retries, retryAfterBaseValue: base },
    throttle: {
      retryAfterBaseValue: base,
      write: new Bottleneck.Group({ maxConcurrent: 1, minTime: opts.writeIntervalMs ?? 1000 }),
      onRateLimit: (after: number, o: { method: string; url: string }, _o: unknown, count: number) => {
        warn(`GitHub rate limit on ${o.method} ${o.url}: retrying in ${after} s (attempt ${count + 1})`);
        return count < retries;
      },
      onSecondaryRateLimit: (
        after: number,
        o: { method: string; url: string },
        _o: unknown,
        count: number,
      ) => {
        warn(
          `GitHub secondary rate limit on ${o.method} ${o.url}: retrying in ${after} s (attempt ${count + 1})`,
        );
        return count < retries;
      },
    },
  });

  const call = async <T>(what: string, fn: () => Promise<{ data: T }>): Promise<T> => {
    try {
      return (await fn()).data;
    } catch (err) {
      const e = err as { status?: number; response?: { data?: unknown }; message?: string };
      if (typeof e.status === 'number')
        throw new GitHubError(what, e.status, e.response?.data ?? { message: e.message });
      throw new PipelineError(`GitHub ${what}: ${e.message ?? String(err)}`);
    }
  };

  return {
    owner,
    repo,
    async listReleases() {
      const all = await octokit.paginate(octokit.rest.repos.listReleases, { owner, repo, per_page: 100 });
      return all as Release[];
    },
    async getReleaseByTag(tag) {
      try {
        return await call(
          `get release ${tag}`,
          () => octokit.rest.repos.getReleaseByTag({ owner, repo, tag }) as Promise<{ data: Release }>,
        );
      } catch (err) {
        if (err instanceof GitHubError && err.status === 404) return undefined;
        throw err;
      }
    },
    createRelease(p) {
      return call(
        `create release ${p.tag}`,
        () =>
          octokit.rest.repos.createRelease({
            owner,
            repo,
            tag_name: p.tag,
            name: p.name,
            body: p.body,
            draft: p.draft,
            prerelease: p.prerelease ?? false,
            ...(p.target ? { target_commitish: p.target } : {}),
          }) as Promise<{ data: Release }>,
      );
    },
    updateRelease(id, p) {
      return call(
        `update release ${id}`,
        () =>
          octokit.rest.repos.updateRelease({ owner, repo, release_id: id, ...p }) as Promise<{
            data: Release;
          }>,
      );
    },
    async listAssets(releaseId) {
      try {
        const all = await octokit.paginate(octokit.rest.repos.listReleaseAssets, {
          owner,
          repo,
          release_id: releaseId,
          per_page: 100,
        });
        return all as Asset[];
      } catch (err) {
        const e = err as { status?: number; response?: { data?: unknown }; message?: string };
        throw new GitHubError(
          `list assets of ${releaseId}`,
          e.status ?? 0,
          e.response?.data ?? { message: e.message },
        );
      }
    },
    uploadAsset(release, name, label, data, contentType = 'application/octet-stream') {
      if (data.length >= ASSET_LIMIT)
        throw new PipelineError(`${name}: ${data.length} bytes is over GitHub's 2 GiB asset limit`);
      return call(
        `upload ${name}`,
        () =>
          octokit.rest.repos.uploadReleaseAsset({
            owner,
            repo,
            release_id: release.id,
            url: release.upload_url,
            name,
            label,
            // The typings want a string; octokit sends a Buffer as the raw body.
            data: data as unknown as string,
            headers: { 'content-type': contentType, 'content-length': data.length },
          }) as Promise<{ data: Asset }>,
      );
    },
    async deleteAsset(id) {
      await call(`delete asset ${id}`, () =>
        octokit.rest.repos.deleteReleaseAsset({ owner, repo, asset_id: id }),
      );
    },
  };
}
