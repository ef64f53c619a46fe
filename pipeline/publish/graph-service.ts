// The update-graph service Zincati asks, over the published metadata (publish/graph-sources.ts:
// a site directory, or the same documents over http(s)). It answers `GET /v1/graph` as Fedora
// CoreOS's policy engine does, throttling rollouts per request (publish/graph.ts, after
// coreos/fedora-coreos-cincinnati @95388bdf). The unthrottled graph of each stream and basearch is
// built once per change of the documents, so a request costs one throttling pass, at its own time,
// and one write of a body kept per set of hidden nodes. Read-only; node:http and nothing else.
import { readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DataError, UsageError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { computeWariness, graphFromMetadata, ServedGraph } from './graph.ts';
import { type Source, siteSource, urlSource } from './graph-sources.ts';

export const streamName = /^[a-z][a-z0-9-]*$/;

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
