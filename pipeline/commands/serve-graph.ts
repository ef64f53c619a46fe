// `rock-image serve-graph`: the update-graph service Zincati asks, over the published metadata (a
// site directory as `publish` writes it, or the same documents over http(s)). It answers
// `GET /v1/graph` as Fedora CoreOS's policy engine does, throttling rollouts per request
// (publish/graph.ts, after coreos/fedora-coreos-cincinnati @95388bdf). The unthrottled graph of
// each stream and basearch is built once per change of the documents (a site file's inode, size
// and mtime, looked at at most once a second; a refetch that brings other bytes), so a request
// costs one throttling pass, at its own time, and one write of a body kept per set of hidden nodes.
// Read-only; node:http and nothing else.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DataError, ExitCode, PipelineError, UsageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { computeWariness, graphFromMetadata, ServedGraph } from '../publish/graph.ts';
import { checkSiteDocText, type ReleasesDoc, type UpdatesDoc } from '../publish/site.ts';
import { str } from './publish.ts';
import { type Command, intOption } from './types.ts';

const streamName = /^[a-z][a-z0-9-]*$/;

/** One stream's documents, from whichever source holds them. */
interface Docs {
  releases: ReleasesDoc;
  updates?: UpdatesDoc;
  /** Arches with an OCI image in some release: the basearch values this stream answers. */
  arches: Set<string>;
  loadedAt: number;
}

/** A stream as one source holds it: the last good documents, and the built graphs for them. */
interface Held {
  /** What the documents were when last read (site: file identity; url: the bytes). */
  key: string;
  docs?: Docs;
  /** The last problem reading them, shown on /healthz; the last good documents stay in use. */
  error?: string;
  graphs: Map<string, ServedGraph>;
}

interface Source {
  /** The stream's documents now, or undefined when this source does not hold the stream. */
  get(stream: string): Held | undefined;
  streams(): string[];
}

export interface GraphServiceOptions {
  /** A site directory as `rock-image publish` writes it. */
  site?: string;
  /** The URL the same documents are served at (the site's base URL). */
  metadataUrl?: string;
  /** Streams to serve; default every stream the site holds (required with only metadataUrl). */
  streams?: string[];
  host: string;
  port: number;
  /** Seconds between refetches from metadataUrl; default 30, upstream's scrape pause (fcos-graph-builder/src/scraper.rs:64 @95388bdf). */
  refreshSeconds?: number;
  /** Milliseconds between looks at whether the site's files changed; default 1000 (0: every request). */
  siteRecheckMs?: number;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
  log: Logger;
  /** One JSON line per request on the log. Default off. */
  accessLog?: boolean;
  fetch?: typeof fetch;
}

export interface GraphService {
  /** http://host:port */
  url: string;
  /** Fetch every stream from metadataUrl again now (tests; the timer does it otherwise). */
  refresh(): Promise<void>;
  /** Stops accepting, lets requests in flight finish (idle keep-alive connections are closed). */
  close(): Promise<void>;
}

function loadDocs(
  releasesText: string,
  updatesText: string | undefined,
  where: (f: string) => string,
  stream: string,
  now: number,
): Docs {
  const releases = checkSiteDocText(
    'releases',
    releasesText,
    where(`prod/streams/${stream}/releases.json`),
    stream,
  );
  const updates =
    updatesText === undefined
      ? undefined
      : checkSiteDocText('updates', updatesText, where(`updates/${stream}.json`), stream);
  const arches = new Set(
    releases.releases.flatMap((r) => (r['oci-images'] ?? []).map((o) => o.architecture)),
  );
  return { releases, updates, arches, loadedAt: now };
}

/**
 * A site directory: a stream is held while prod/streams/<s>/releases.json exists; files re-read
 * when they change. Whether they changed (two stat calls) is asked at most every `recheckMs` per
 * stream, on a monotonic clock, not on every request: per request they were about 8% of the
 * service's busy CPU in a profile under load, each a synchronous call on the event loop.
 */
function siteSource(dir: string, log: Logger, now: () => number, recheckMs: number): Source {
  const held = new Map<string, Held>();
  /** Per stream: when its files were last looked at (performance.now), and whether it was there. */
  const checked = new Map<string, { at: number; present: boolean }>();
  const fileKey = (p: string) => {
    const s = statSync(p, { throwIfNoEntry: false });
    return s ? `${s.ino}:${s.size}:${s.mtimeMs}` : '-';
  };
  return {
    get(stream) {
      const t = performance.now();
      const last = checked.get(stream);
      if (last && t - last.at < recheckMs) return last.present ? held.get(stream) : undefined;
      const rel = join(dir, 'prod/streams', stream, 'releases.json');
      const upd = join(dir, 'updates', `${stream}.json`);
      const relKey = fileKey(rel);
      checked.set(stream, { at: t, present: relKey !== '-' });
      if (relKey === '-') return undefined;
      const key = `${relKey}|${fileKey(upd)}`;
      let h = held.get(stream);
      if (h?.key === key) return h;
      h ??= { key, graphs: new Map() };
      h.key = key;
      try {
        const updText = key.endsWith('|-') ? undefined : readFileSync(upd, 'utf8');
        h.docs = loadDocs(readFileSync(rel, 'utf8'), updText, (f) => join(dir, f), stream, now());
        h.graphs = new Map();
        h.error = undefined;
        log.info(
          `${stream}: documents (re)loaded from ${dir}${updText === undefined ? ' (no updates file: no update targets)' : ''}`,
        );
      } catch (err) {
        h.error = (err as Error).message;
        log.error(`${stream}: ${h.error}${h.docs ? '; still serving the last good documents' : ''}`);
      }
      held.set(stream, h);
      return h;
    },
    streams: () => [...held.keys()],
  };
}

/** Documents over http(s), fetched at start and every refresh; the last good copy is kept. */
function urlSource(base: string, streams: string[], log: Logger, now: () => number, get: typeof fetch) {
  const held = new Map<string, Held>();
  const text = async (url: string, optional: boolean) => {
    const res = await get(url, {
      signal: AbortSignal.timeout(60_000),
      headers: { accept: 'application/json' },
    });
    if (optional && res.status === 404) return undefined;
    if (!res.ok) throw new PipelineError(`${url}: HTTP ${res.status}`);
    return res.text();
  };
  const refreshOne = async (stream: string) => {
    const h: Held = held.get(stream) ?? { key: '', graphs: new Map() };
    held.set(stream, h);
    try {
      const [rel, upd] = await Promise.all([
        text(`${base}/prod/streams/${stream}/releases.json`, false),
        text(`${base}/updates/${stream}.json`, true),
      ]);
      const key = `${rel}\u0000${upd ?? '-'}`;
      if (key === h.key && h.docs) return;
      h.docs = loadDocs(rel!, upd, (f) => `${base}/${f}`, stream, now());
      h.key = key;
      h.graphs = new Map();
      h.error = undefined;
      log.info(`${stream}: documents (re)loaded from ${base}`);
    } catch (err) {
      h.error = (err as Error).message;
      log.error(`${stream}: ${h.error}${h.docs ? '; still serving the last good documents' : ''}`);
    }
  };
  const source: Source = {
    get: (stream) => (held.get(stream)?.docs || held.get(stream)?.error ? held.get(stream) : undefined),
    streams: () => streams,
  };
  return { source, refresh: () => Promise.all(streams.map(refreshOne)).then(() => undefined) };
}

/** The one duplicated, missing or malformed query value that makes upstream answer 400. */
class BadRequest extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The query as actix-web's `web::Query<GraphQuery>` reads it (fcos-policy-engine/src/main.rs:128-134
 * @95388bdf, serde_urlencoded): each known field at most once, `oci` a bool ("true"/"false");
 * unknown parameters (os_version, group, platform, os_checksum) ignored. Then validate_scope
 * (commons/src/web.rs:26-59 @95388bdf): basearch and stream present and non-empty; oci false when
 * absent. This service's scope allowlist (web.rs:46-56) is oci=true for the streams it serves.
 */
function readQuery(query: string) {
  const params = new URLSearchParams(query);
  const one = (k: string) => {
    const all = params.getAll(k);
    if (all.length > 1) throw new BadRequest('invalid_query', `duplicate field \`${k}\``);
    return all[0];
  };
  const basearch = one('basearch');
  const stream = one('stream');
  const oci = one('oci');
  const rolloutWariness = one('rollout_wariness');
  const nodeUuid = one('node_uuid');
  if (oci !== undefined && oci !== 'true' && oci !== 'false')
    throw new BadRequest('invalid_query', `oci: provided string was not \`true\` or \`false\``);
  if (basearch === undefined) throw new BadRequest('invalid_scope', 'missing basearch');
  if (basearch === '') throw new BadRequest('invalid_scope', 'empty basearch');
  if (stream === undefined) throw new BadRequest('invalid_scope', 'missing stream');
  if (stream === '') throw new BadRequest('invalid_scope', 'empty stream');
  if (oci !== 'true')
    throw new BadRequest(
      'invalid_scope',
      `scope not allowed: basearch='${basearch}', stream='${stream}', oci='false' (this service serves container-image graphs: oci=true)`,
    );
  return { basearch, stream, rolloutWariness, nodeUuid };
}

/** Starts the service; resolves once it listens (and, with metadataUrl, after the first fetch). */
export async function startGraphService(opts: GraphServiceOptions): Promise<GraphService> {
  const now = opts.now ?? Date.now;
  const log = opts.log;
  const sources: Source[] = [];
  if (opts.site) sources.push(siteSource(opts.site, log, now, opts.siteRecheckMs ?? 1000));
  let refresh = async () => {};
  if (opts.metadataUrl) {
    if (!opts.streams?.length) throw new UsageError('--metadata-url needs --stream (the streams to fetch)');
    const u = urlSource(opts.metadataUrl.replace(/\/+$/, ''), opts.streams, log, now, opts.fetch ?? fetch);
    sources.push(u.source);
    refresh = u.refresh;
  }
  if (sources.length === 0) throw new UsageError('give --site DIR and/or --metadata-url URL');
  const allowed = opts.streams ? new Set(opts.streams) : undefined;
  // The site's streams are read now: a broken document there stops the start (exit 65) with its
  // file and line, rather than the first request finding it. (Over a URL a failure may pass.)
  if (opts.site) {
    const dir = join(opts.site, 'prod/streams');
    const found = statSync(dir, { throwIfNoEntry: false })?.isDirectory()
      ? readdirSync(dir).filter((s) => streamName.test(s) && (!allowed || allowed.has(s)))
      : [];
    for (const s of found.sort()) {
      const h = sources[0]!.get(s);
      if (h?.error && !h.docs) throw new DataError(h.error);
    }
  }

  /** The first source holding the stream (the site before the URL). */
  const held = (stream: string) => {
    for (const s of sources) {
      const h = s.get(stream);
      if (h) return h;
    }
    return undefined;
  };

  const json = (res: ServerResponse, status: number, body: unknown, head: boolean) => {
    const bytes = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
    res.end(head ? undefined : bytes);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const head = req.method === 'HEAD';
    let info: Record<string, unknown> = {};
    const done = (status: number) => {
      if (opts.accessLog)
        log.info(
          JSON.stringify({
            method: req.method,
            path,
            status,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
            ...info,
          }),
        );
    };
    // /v1/graph under any prefix: a base_url with a path (the static layout's
    // <site>/graph/${stream}/${basearch}/, a reverse proxy's prefix) reaches the same graph; the
    // query names the stream and basearch.
    const graphPath = path.endsWith('/v1/graph');
    if (!graphPath && path !== '/healthz') {
      json(res, 404, { kind: 'not_found', value: `no such path: ${path}` }, head);
      return done(404);
    }
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      json(res, 405, { kind: 'method_not_allowed', value: `${req.method} ${path}` }, head);
      return done(405);
    }
    if (path === '/healthz') {
      const names = [...new Set([...(opts.streams ?? []), ...sources.flatMap((s) => s.streams())])].sort();
      const streams = Object.fromEntries(
        names.map((s) => {
          const h = held(s);
          return [
            s,
            {
              ok: Boolean(h?.docs),
              ...(h?.docs && {
                releases: h.docs.releases.releases.length,
                loaded: new Date(h.docs.loadedAt).toISOString(),
              }),
              ...(h?.error && { error: h.error }),
            },
          ];
        }),
      );
      const ok = Object.values(streams).every((s) => s.ok);
      json(res, ok ? 200 : 503, { status: ok ? 'ok' : 'degraded', streams }, head);
      return done(ok ? 200 : 503);
    }
    try {
      const query = readQuery(q < 0 ? '' : url.slice(q + 1));
      info = { stream: query.stream, basearch: query.basearch };
      if (!streamName.test(query.stream) || (allowed && !allowed.has(query.stream)))
        throw new BadRequest('invalid_scope', `unknown stream '${query.stream}'`);
      const h = held(query.stream);
      if (!h) throw new BadRequest('invalid_scope', `unknown stream '${query.stream}'`);
      if (!h.docs) {
        json(
          res,
          503,
          { kind: 'graph_unavailable', value: `no valid documents for ${query.stream} yet` },
          head,
        );
        return done(503);
      }
      if (!h.docs.arches.has(query.basearch))
        throw new BadRequest(
          'invalid_scope',
          `unknown basearch '${query.basearch}' for stream '${query.stream}'`,
        );
      let graph = h.graphs.get(query.basearch);
      if (!graph) {
        graph = new ServedGraph(graphFromMetadata(h.docs.releases, h.docs.updates, query.basearch));
        h.graphs.set(query.basearch, graph);
      }
      const wariness = computeWariness(query.rolloutWariness, query.nodeUuid);
      info.wariness = wariness;
      const body = graph.body(wariness, Math.floor(now() / 1000));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(head ? undefined : body);
      return done(200);
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      json(res, 400, { kind: err.kind, value: err.message }, head);
      return done(400);
    }
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      log.error(`${req.method} ${req.url}: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) json(res, 500, { kind: 'internal', value: 'internal error' }, false);
      else res.destroy();
    }
  });
  await refresh();
  const period = (opts.refreshSeconds ?? 30) * 1000;
  let busy = false;
  const timer = opts.metadataUrl
    ? setInterval(() => {
        if (busy) return;
        busy = true;
        refresh().finally(() => {
          busy = false;
        });
      }, period)
    : undefined;
  timer?.unref();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port, opts.host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    refresh,
    close: () =>
      new Promise<void>((ok) => {
        if (timer) clearInterval(timer);
        const force = setTimeout(() => server.closeAllConnections(), 10_000);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          ok();
        });
        server.closeIdleConnections();
      }),
  };
}

/** HOST:PORT, [V6]:PORT or :PORT. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new UsageError(`--listen must be HOST:PORT (got ${s})`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export const serveGraph: Command = {
  name: 'serve-graph',
  summary: 'serve the Cincinnati update graph Zincati asks for, throttling rollouts per request',
  usage: `
Usage: rock-image serve-graph (--site DIR | --metadata-url URL --stream S[,S]) [options]

A read-only update-graph service for Zincati (base_url = "http://HOST:PORT/"), over the metadata
that publish writes: prod/streams/S/releases.json and updates/S.json. GET /v1/graph answers as
Fedora CoreOS's policy engine does: nodes in release order, edges into barriers and rollouts,
none out of dead-ends, and each gradual rollout shown to a machine only once it has reached the
machine's wariness (the rollout_wariness parameter, else a hash of node_uuid). Zincati's other
parameters are accepted and ignored. The same answer under any path prefix: sensors whose
base_url names the static graph (<site>/graph/\${stream}/\${basearch}/) can be pointed at the
service unchanged. 400 for a missing or unknown stream or basearch, or oci not true; 503 while a
stream has no valid documents; GET /healthz says what is loaded. SIGTERM or SIGINT: stops
accepting, finishes the requests in flight, exits 0.

Options:
  --site DIR            a site directory as publish writes it; files re-read when they change
                        (looked at at most once a second)
  --metadata-url URL    the site's base URL: the same documents over http(s), fetched again every
                        --refresh seconds (a failed or invalid fetch keeps the last good copy);
                        with --site too, streams the directory lacks come from the URL
  --stream S[,S]        streams to serve (default: every stream the site directory holds;
                        required with --metadata-url alone)
  --listen HOST:PORT    address to listen on (default: 0.0.0.0:8080)
  --refresh SECONDS     refetch interval for --metadata-url (default: 30)
  --access-log          one JSON line per request on stderr
`,
  options: {
    site: { type: 'string' },
    'metadata-url': { type: 'string', url: true },
    stream: { type: 'string', multiple: true },
    listen: { type: 'string' },
    refresh: { type: 'string', int: { min: 1 } },
    'access-log': { type: 'boolean' },
  },
  async run(ctx, v) {
    const site = str(v, 'site');
    const metadataUrl = str(v, 'metadata-url');
    const streams = ((v.stream as string[] | undefined) ?? []).flatMap((s) => s.split(',')).filter(Boolean);
    for (const s of streams) if (!streamName.test(s)) throw new UsageError(`'${s}' is not a stream name`);
    const refreshSeconds = intOption(v, 'refresh') ?? 30;
    const { host, port } = parseListen(str(v, 'listen') ?? '0.0.0.0:8080');
    const siteDir = site === undefined ? undefined : resolve(ctx.cwd, site);
    if (siteDir !== undefined && !statSync(siteDir, { throwIfNoEntry: false })?.isDirectory())
      throw new UsageError(`--site ${site}: no such directory`);
    const service = await startGraphService({
      site: siteDir,
      metadataUrl,
      streams: streams.length ? streams : undefined,
      host,
      port,
      refreshSeconds,
      now: ctx.now,
      log: ctx.log,
      accessLog: Boolean(v['access-log']),
    });
    ctx.log.info(`serving update graphs at ${service.url}/v1/graph`);
    await new Promise<void>((done) => {
      const stop = (signal: string) => {
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        ctx.log.info(`${signal}: closing (requests in flight finish)`);
        service.close().then(done);
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.once('SIGTERM', onTerm);
      process.once('SIGINT', onInt);
    });
    return ExitCode.ok;
  },
};
