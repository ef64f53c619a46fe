// GitHub Releases through @octokit/rest with the retry (5xx) and throttling (rate limits,
// secondary rate limits with retry-after, paced writes) plugins. The only module that talks to
// GitHub; the token is given here and never logged.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
  /**
   * POSTs to the release's upload_url; `label` is shown by GitHub (we keep the sha256 there).
   * A FileBody is streamed from its file, read anew for each attempt.
   */
  uploadAsset(
    release: Release,
    name: string,
    label: string,
    data: Buffer | FileBody,
    contentType?: string,
  ): Promise<Asset>;
  deleteAsset(id: number): Promise<void>;
}

/**
 * A file as an upload body: an async iterable that opens and reads the file in 1 MiB chunks each
 * time it is iterated, so a retried request (octokit's retry plugin sends the same options again)
 * reads it from the start, and no asset is ever held whole in memory. fetch sends it with the
 * Content-Length given (`duplex: 'half'`, set by @octokit/request's fetch-wrapper for any body).
 * The bytes and sha256 of the last whole read are kept, for the caller to compare with what it
 * meant to send. Not a plain object, so octokit does not serialize it as JSON
 * (@octokit/request is-plain-object.js).
 */
export class FileBody implements AsyncIterable<Uint8Array> {
  readonly path: string;
  readonly size: number;
  /** What the newest read sent, once it reached `size` bytes (more if the file grew). */
  sent: { bytes: number; sha256: string } | undefined;
  private reads = 0;
  constructor(path: string, size: number) {
    this.path = path;
    this.size = size;
  }
  get [Symbol.toStringTag]() {
    return 'FileBody';
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    // Only the newest read records what it sent: an earlier attempt's may still be winding down.
    const read = ++this.reads;
    this.sent = undefined;
    const h = createHash('sha256');
    let bytes = 0;
    for await (const chunk of createReadStream(this.path, {
      highWaterMark: 1 << 20,
    }) as AsyncIterable<Buffer>) {
      h.update(chunk);
      bytes += chunk.length;
      // Recorded before the chunk goes: fetch may stop pulling once Content-Length bytes are
      // out, and the response may come before this generator would have ended.
      if (bytes >= this.size && read === this.reads) this.sent = { bytes, sha256: h.copy().digest('hex') };
      yield chunk;
    }
    if (this.size === 0 && read === this.reads) this.sent = { bytes, sha256: h.digest('hex') };
  }
}

/**
 * A fetch for uploads over node:http(s), the body piped into the request with backpressure.
 * Node's own fetch (undici) read a 512 MiB body far ahead of the socket here: peak RSS 600 MiB
 * on Node 20.20 (a ReadableStream, a Node stream or an async iterable alike, with or without a
 * Content-Length), against 86 MiB for http.request fed by stream.pipeline. Only what
 * @octokit/request's fetch-wrapper uses is given: method, headers, body, signal in; status,
 * headers and the body stream out.
 */
export function streamingFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: init.method ?? 'GET',
        headers: init.headers as Record<string, string> | undefined,
        ...(init.signal && { signal: init.signal }),
      },
      (res) => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers))
          for (const one of v === undefined ? [] : [v].flat()) headers.append(k, one);
        const status = res.statusCode ?? 500;
        const empty = status === 204 || status === 304 || init.method === 'HEAD';
        if (empty) res.resume();
        resolve(
          new Response(empty ? null : (Readable.toWeb(res) as ReadableStream), {
            status,
            statusText: res.statusMessage ?? '',
            headers,
          }),
        );
      },
    );
    req.on('error', reject);
    const body = init.body as unknown;
    if (body === undefined || body === null) req.end();
    // An early answer (a 403, a 502 mid-upload) can break the pipe: the response tells.
    else
      pipeline(
        typeof body === 'string' || body instanceof Uint8Array
          ? Readable.from([body])
          : Readable.from(body as AsyncIterable<Uint8Array>),
        req,
      ).catch(reject);
  });
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
      const length = Buffer.isBuffer(data) ? data.length : data.size;
      if (length >= ASSET_LIMIT)
        throw new PipelineError(`${name}: ${length} bytes is over GitHub's 2 GiB asset limit`);
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
            // The typings want a string; octokit hands a Buffer or a FileBody to fetch as the body.
            data: data as unknown as string,
            headers: { 'content-type': contentType, 'content-length': length },
            request: { fetch: streamingFetch },
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
