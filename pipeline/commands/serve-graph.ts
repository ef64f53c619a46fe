// `rock-image serve-graph`: the command around the update-graph service
// (publish/graph-service.ts): reads the options, starts the service, and closes it on SIGTERM or
// SIGINT.
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ExitCode, UsageError } from '../errors.ts';
import { startGraphService, streamName } from '../publish/graph-service.ts';
import { str } from './publish.ts';
import { type Command, intOption } from './types.ts';

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
