// Where `rock-image serve-graph` reads each stream's published documents: a site directory as
// `publish` writes it (files re-read when their inode, size or mtime change, looked at at most once
// a second), or the same documents over http(s) (refetched on a timer; a refetch that brings other
// bytes counts as a change). Each source keeps the last good documents and the graphs built from
// them (publish/graph-service.ts builds and fills those).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PipelineError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ServedGraph } from './graph.ts';
import { checkSiteDocText, type ReleasesDoc, type UpdatesDoc } from './site.ts';

/** One stream's documents, from whichever source holds them. */
export interface Docs {
  releases: ReleasesDoc;
  updates?: UpdatesDoc;
  /** Arches with an OCI image in some release: the basearch values this stream answers. */
  arches: Set<string>;
  loadedAt: number;
}

/** A stream as one source holds it: the last good documents, and the built graphs for them. */
export interface Held {
  /** What the documents were when last read (site: file identity; url: the bytes). */
  key: string;
  docs?: Docs;
  /** The last problem reading them, shown on /healthz; the last good documents stay in use. */
  error?: string;
  graphs: Map<string, ServedGraph>;
}

export interface Source {
  /** The stream's documents now, or undefined when this source does not hold the stream. */
  get(stream: string): Held | undefined;
  streams(): string[];
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
export function siteSource(dir: string, log: Logger, now: () => number, recheckMs: number): Source {
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
export function urlSource(
  base: string,
  streams: string[],
  log: Logger,
  now: () => number,
  get: typeof fetch,
) {
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
