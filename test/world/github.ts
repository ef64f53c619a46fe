// A local, stateful stand-in for the GitHub Releases API (no GitHub-compatible server runs here):
// node:http on 127.0.0.1, implementing ONLY the operations the pipeline calls. Every request and
// every response is checked against GitHub's own OpenAPI description of those operations
// (test/fixtures/github/releases-openapi.json, an excerpt of github/rest-api-description); any
// mismatch is recorded in `violations`. Faults can be injected per operation.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Ajv, type ValidateFunction } from 'ajv';

interface OpenApiOp {
  method: string;
  path: string;
  parameters: { in: string; name: string; required?: boolean; schema: object }[];
  requestBody: { content: Record<string, { schema: object }>; required?: boolean } | null;
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}

export const openapi = JSON.parse(
  readFileSync(new URL('../fixtures/github/releases-openapi.json', import.meta.url), 'utf8'),
) as { source: Record<string, string>; operations: Record<string, OpenApiOp> };

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const compiled = new Map<object, ValidateFunction>();
function validate(schema: object, value: unknown): string[] {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v(value) ? [] : (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
}

/** Finds the operation for a method and path (templates like /repos/{owner}/{repo}/releases). */
export function matchOperation(
  method: string,
  path: string,
): { id: string; op: OpenApiOp; params: Record<string, string> } | undefined {
  for (const [id, op] of Object.entries(openapi.operations)) {
    if (op.method !== method) continue;
    const names: string[] = [];
    const re = new RegExp(
      `^${op.path.replace(/\{(\w+)\}/g, (_, n) => {
        names.push(n);
        return '([^/]+)';
      })}$`,
    );
    const m = re.exec(path);
    if (m)
      return { id, op, params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)])) };
  }
  return undefined;
}

const coerce = (schema: { type?: string }, v: string): unknown =>
  schema.type === 'integer' || schema.type === 'number' ? (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v) : v;

/** Problems of a request (params, query, body) against its operation. */
export function checkRequest(
  op: OpenApiOp,
  params: Record<string, string>,
  query: URLSearchParams,
  contentType: string | undefined,
  body: Buffer,
): string[] {
  const out: string[] = [];
  for (const p of op.parameters) {
    const raw =
      p.in === 'path' ? params[p.name] : p.in === 'query' ? (query.get(p.name) ?? undefined) : undefined;
    if (p.in !== 'path' && p.in !== 'query') continue;
    if (raw === undefined) {
      if (p.required) out.push(`missing ${p.in} parameter ${p.name}`);
      continue;
    }
    for (const e of validate(p.schema, coerce(p.schema as { type?: string }, raw)))
      out.push(`${p.in} ${p.name}: ${e}`);
  }
  for (const k of query.keys())
    if (!op.parameters.some((p) => p.in === 'query' && p.name === k))
      out.push(`unknown query parameter ${k}`);
  if (op.requestBody) {
    const types = Object.keys(op.requestBody.content);
    const ct = (contentType ?? '').split(';')[0]!.trim();
    if (body.length === 0 && op.requestBody.required) out.push('missing request body');
    else if (body.length > 0) {
      if (types.includes('application/json')) {
        if (ct !== 'application/json') out.push(`content-type ${ct}, expected application/json`);
        let json: unknown;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          out.push('body is not JSON');
        }
        if (json !== undefined)
          for (const e of validate(op.requestBody.content['application/json']!.schema, json))
            out.push(`body ${e}`);
      } else if (!ct) out.push('upload without content-type');
    }
  } else if (body.length > 0) out.push('body on an operation that takes none');
  return out;
}

/** Problems of a response against its operation (status documented, body matches its schema). */
export function checkResponse(op: OpenApiOp, status: number, body: unknown): string[] {
  const r = op.responses[String(status)];
  if (!r) return [`status ${status} is not documented for ${op.method} ${op.path}`];
  const schema = r.content?.['application/json']?.schema;
  // GitHub documents some statuses without a body schema (upload 422) yet sends its error JSON
  // (see the recorded exchanges): only a documented schema is checked.
  if (!schema) return [];
  return validate(schema, body).map((e) => `response ${e}`);
}

export type Fault =
  | { op: string; kind: '502-mid-upload'; name?: string }
  | { op: string; kind: 'secondary-rate-limit'; retryAfter?: number }
  | { op: string; kind: 'hang' };

interface FakeAsset {
  id: number;
  name: string;
  label: string | null;
  state: 'uploaded' | 'open';
  content_type: string;
  data: Buffer;
}

interface FakeRelease {
  id: number;
  tag_name: string;
  name: string | null;
  body: string | null;
  draft: boolean;
  prerelease: boolean;
  target_commitish: string;
  created_at: string;
  published_at: string | null;
  assets: FakeAsset[];
}

export interface FakeGitHub {
  url: string;
  token: string;
  owner: string;
  repo: string;
  releases: FakeRelease[];
  /** Every request: operation id (or '?'), method, path and the status sent. */
  requests: { op: string; method: string; path: string; status: number }[];
  /** Every OpenAPI mismatch seen, request or response. */
  violations: string[];
  faults: Fault[];
  /** Resolves when a request was held by a 'hang' fault. */
  hung: Promise<void>;
  close(): Promise<void>;
}

const user = (base: string) => ({
  login: 'rock-bot',
  id: 1,
  node_id: 'MDQ6VXNlcjE=',
  avatar_url: `${base}/avatars/1`,
  gravatar_id: '',
  url: `${base}/users/rock-bot`,
  html_url: `${base}/rock-bot`,
  followers_url: `${base}/users/rock-bot/followers`,
  following_url: `${base}/users/rock-bot/following{/other_user}`,
  gists_url: `${base}/users/rock-bot/gists{/gist_id}`,
  starred_url: `${base}/users/rock-bot/starred{/owner}{/repo}`,
  subscriptions_url: `${base}/users/rock-bot/subscriptions`,
  organizations_url: `${base}/users/rock-bot/orgs`,
  repos_url: `${base}/users/rock-bot/repos`,
  events_url: `${base}/users/rock-bot/events{/privacy}`,
  received_events_url: `${base}/users/rock-bot/received_events`,
  type: 'User',
  site_admin: false,
});

const STAMP = '2026-11-22T12:00:00Z';

/** Starts the fake on 127.0.0.1 for `owner/repo`, accepting only `token`. */
export async function startFakeGitHub(
  owner = 'rocknsm',
  repo = 'rocknsm-coreos',
  token = 'ghp_testtoken_0123456789',
): Promise<FakeGitHub> {
  let nextId = 100;
  let releaseHung: () => void = () => {};
  const held: ServerResponse[] = [];
  const state: FakeGitHub = {
    url: '',
    token,
    owner,
    repo,
    releases: [],
    requests: [],
    violations: [],
    faults: [],
    hung: new Promise((r) => (releaseHung = r)),
    close: async () => {},
  };
  const base = () => state.url;
  const assetJson = (r: FakeRelease, a: FakeAsset) => ({
    url: `${base()}/repos/${owner}/${repo}/releases/assets/${a.id}`,
    browser_download_url: `${base()}/${owner}/${repo}/releases/download/${r.tag_name}/${a.name}`,
    id: a.id,
    node_id: `RA_${a.id}`,
    name: a.name,
    label: a.label,
    state: a.state,
    content_type: a.content_type,
    size: a.data.length,
    digest: a.state === 'uploaded' ? `sha256:${createHash('sha256').update(a.data).digest('hex')}` : null,
    download_count: 0,
    created_at: STAMP,
    updated_at: STAMP,
    uploader: user(base()),
  });
  const releaseJson = (r: FakeRelease) => ({
    url: `${base()}/repos/${owner}/${repo}/releases/${r.id}`,
    html_url: `${base()}/${owner}/${repo}/releases/${r.draft ? `untagged-${r.id}` : `tag/${r.tag_name}`}`,
    assets_url: `${base()}/repos/${owner}/${repo}/releases/${r.id}/assets`,
    upload_url: `${base()}/repos/${owner}/${repo}/releases/${r.id}/assets{?name,label}`,
    tarball_url: r.draft ? null : `${base()}/repos/${owner}/${repo}/tarball/${r.tag_name}`,
    zipball_url: r.draft ? null : `${base()}/repos/${owner}/${repo}/zipball/${r.tag_name}`,
    id: r.id,
    node_id: `RE_${r.id}`,
    tag_name: r.tag_name,
    target_commitish: r.target_commitish,
    name: r.name,
    body: r.body,
    draft: r.draft,
    prerelease: r.prerelease,
    created_at: r.created_at,
    published_at: r.published_at,
    author: user(base()),
    assets: r.assets.map((a) => assetJson(r, a)),
  });
  const error = (message: string, extra: Record<string, unknown> = {}) => ({
    message,
    documentation_url: 'https://docs.github.com/rest/releases',
    ...extra,
  });

  /**
   * Release downloads (browser_download_url), outside the API: a published release's uploaded
   * asset, anonymously, as a 302 to an opaque storage URL (GitHub's API documents that a
   * download may be "redirect[ed] ... to the location" and that clients must handle 200 and 302:
   * repos/get-release-asset in github/rest-api-description); a draft's asset is not public: 404.
   */
  const download = (u: URL, res: ServerResponse): boolean => {
    const m = /^\/([^/]+)\/([^/]+)\/releases\/download\/([^/]+)\/([^/]+)$/.exec(u.pathname);
    const blob = /^\/_storage\/(\d+)$/.exec(u.pathname);
    if (!m && !blob) return false;
    const published = state.releases.filter((r) => !r.draft);
    const found = m
      ? m[1] === owner && m[2] === repo
        ? published
            .find((r) => r.tag_name === decodeURIComponent(m[3]!))
            ?.assets.find((a) => a.name === decodeURIComponent(m[4]!) && a.state === 'uploaded')
        : undefined
      : published.flatMap((r) => r.assets).find((a) => a.id === Number(blob![1]));
    state.requests.push({
      op: 'download',
      method: 'GET',
      path: u.pathname,
      status: found ? (m ? 302 : 200) : 404,
    });
    if (!found) res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
    else if (m) res.writeHead(302, { location: `${state.url}/_storage/${found.id}` }).end();
    else
      res
        .writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': String(found.data.length),
          'content-disposition': `attachment; filename=${found.name}`,
        })
        .end(found.data);
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    if (method === 'GET' && download(u, res)) return;
    const match = matchOperation(method, u.pathname);
    const chunks: Buffer[] = [];
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}, checked = true) => {
      state.requests.push({ op: match?.id ?? '?', method, path: u.pathname + u.search, status });
      if (match && checked)
        for (const v of checkResponse(match.op, status, body))
          state.violations.push(`${match.id} response ${status}: ${v}`);
      res.writeHead(status, {
        ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
        ...headers,
      });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (!match) {
      state.violations.push(`not an implemented operation: ${method} ${u.pathname}`);
      req.resume();
      return send(404, error('Not Found'), {}, false);
    }
    const fault = state.faults.find((f) => f.op === match.id);
    if (fault?.kind === 'hang') {
      state.faults.splice(state.faults.indexOf(fault), 1);
      held.push(res);
      releaseHung();
      return;
    }
    if (fault?.kind === 'secondary-rate-limit') {
      state.faults.splice(state.faults.indexOf(fault), 1);
      req.resume();
      // What GitHub sends (docs: "Exceeding the secondary rate limit"): 403, retry-after, this message.
      return send(
        403,
        error('You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'),
        { 'retry-after': String(fault.retryAfter ?? 1) },
        false,
      );
    }
    if (fault?.kind === '502-mid-upload' && match.id === 'repos/upload-release-asset') {
      state.faults.splice(state.faults.indexOf(fault), 1);
      // Half the body arrives, GitHub keeps a broken ("open") asset of that name, the proxy answers 502.
      const rel = state.releases.find((r) => r.id === Number(match.params.release_id));
      let got = 0;
      const want = Number(req.headers['content-length'] ?? 0);
      for await (const c of req) {
        chunks.push(c as Buffer);
        got += (c as Buffer).length;
        if (got >= want / 2) break;
      }
      rel?.assets.push({
        id: nextId++,
        name: u.searchParams.get('name') ?? '',
        label: u.searchParams.get('label'),
        state: 'open',
        content_type: String(req.headers['content-type']),
        data: Buffer.concat(chunks).subarray(0, Math.floor(want / 2)),
      });
      state.requests.push({ op: match.id, method, path: u.pathname + u.search, status: 502 });
      res.writeHead(502, { 'content-type': 'text/html', connection: 'close' });
      res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
      req.destroy();
      return;
    }
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    for (const v of checkRequest(match.op, match.params, u.searchParams, req.headers['content-type'], body))
      state.violations.push(`${match.id} request: ${v}`);
    const auth = req.headers.authorization ?? '';
    if (auth !== `token ${token}` && auth !== `bearer ${token}` && auth !== `Bearer ${token}`)
      return send(401, error('Bad credentials'), {}, false);
    if (match.params.owner !== owner || match.params.repo !== repo) return send(404, error('Not Found'));
    const json = () => JSON.parse(body.toString('utf8') || '{}');
    const findRelease = () => state.releases.find((r) => r.id === Number(match.params.release_id));
    switch (match.id) {
      case 'repos/list-releases': {
        const per = Number(u.searchParams.get('per_page') ?? 30);
        const page = Number(u.searchParams.get('page') ?? 1);
        const all = [...state.releases].reverse();
        return send(200, all.slice((page - 1) * per, page * per).map(releaseJson));
      }
      case 'repos/get-release-by-tag': {
        const r = state.releases.find((x) => !x.draft && x.tag_name === match.params.tag);
        return r ? send(200, releaseJson(r)) : send(404, error('Not Found'));
      }
      case 'repos/get-release': {
        const r = findRelease();
        return r ? send(200, releaseJson(r)) : send(404, error('Not Found'), {}, false);
      }
      case 'repos/create-release': {
        const b = json();
        if (!b.draft && state.releases.some((r) => !r.draft && r.tag_name === b.tag_name))
          return send(
            422,
            error('Validation Failed', {
              errors: [{ resource: 'Release', code: 'already_exists', field: 'tag_name' }],
            }),
          );
        const r: FakeRelease = {
          id: nextId++,
          tag_name: b.tag_name,
          name: b.name ?? null,
          body: b.body ?? null,
          draft: Boolean(b.draft),
          prerelease: Boolean(b.prerelease),
          target_commitish: b.target_commitish ?? 'main',
          created_at: STAMP,
          published_at: b.draft ? null : STAMP,
          assets: [],
        };
        state.releases.push(r);
        return send(201, releaseJson(r));
      }
      case 'repos/update-release': {
        const r = findRelease();
        if (!r) return send(404, error('Not Found'));
        const b = json();
        if (r.draft === false && b.draft === true) return send(422, error('Validation Failed'), {}, false);
        for (const k of ['name', 'body', 'prerelease', 'tag_name'] as const)
          if (k in b) (r as never as Record<string, unknown>)[k] = b[k];
        if (b.draft === false && r.draft) {
          r.draft = false;
          r.published_at = STAMP;
        }
        return send(200, releaseJson(r));
      }
      case 'repos/list-release-assets': {
        const r = findRelease();
        if (!r) return send(404, error('Not Found'), {}, false);
        const per = Number(u.searchParams.get('per_page') ?? 30);
        const page = Number(u.searchParams.get('page') ?? 1);
        return send(
          200,
          r.assets.slice((page - 1) * per, page * per).map((a) => assetJson(r, a)),
        );
      }
      case 'repos/upload-release-asset': {
        const r = findRelease();
        if (!r) return send(404, error('Not Found'), {}, false);
        if (!r.draft) return send(422, error('Cannot upload assets to an immutable release.'));
        const name = u.searchParams.get('name') ?? '';
        if (r.assets.some((a) => a.name === name))
          return send(
            422,
            error('Validation Failed', {
              errors: [{ resource: 'ReleaseAsset', code: 'already_exists', field: 'name' }],
            }),
          );
        const a: FakeAsset = {
          id: nextId++,
          name,
          label: u.searchParams.get('label'),
          state: 'uploaded',
          content_type: String(req.headers['content-type']),
          data: body,
        };
        r.assets.push(a);
        return send(201, assetJson(r, a));
      }
      case 'repos/delete-release-asset': {
        for (const r of state.releases) {
          const i = r.assets.findIndex((a) => a.id === Number(match.params.asset_id));
          if (i >= 0) {
            if (!r.draft) return send(422, error('Cannot delete assets of an immutable release.'), {}, false);
            r.assets.splice(i, 1);
            return send(204);
          }
        }
        return send(404, error('Not Found'));
      }
      default:
        return send(404, error('Not Found'), {}, false);
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      state.violations.push(`fake server error: ${err}`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  state.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  state.close = () =>
    new Promise<void>((r) => {
      for (const h of held) h.destroy();
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}
