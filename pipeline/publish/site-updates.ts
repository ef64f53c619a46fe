// releases.json and updates/<stream>.json over time: appending a release, the rollout controls
// (barrier, dead end, rollout window) from the command line or a promotion, and dropping completed
// rollouts; plus the static update graphs. Pure: the caller passes the time and current documents.
import { DataError, PipelineError, UsageError } from '../errors.ts';
import { canonicalJson } from '../files.ts';
import { compareVersions } from '../plan/version.ts';
import { staticGraph, staticGraphPath } from './graph.ts';
import {
  archOrder,
  type ControlsRequest,
  type Document,
  type ReleaseEntry,
  type ReleasesDoc,
  type RolloutControls,
  rfc3339,
  type UpdatesDoc,
} from './site-types.ts';

/**
 * releases.json gains `entry` at the end; existing entries are never changed. A re-run with the
 * same entry leaves the document as it was; a different entry for a published version, or a
 * version older than the newest, is refused.
 */
export function appendRelease(
  doc: ReleasesDoc | undefined,
  stream: string,
  entry: ReleaseEntry,
  when: string,
): ReleasesDoc {
  const current: ReleasesDoc = doc ?? {
    note: 'For use only by Fedora CoreOS-style tooling (coreos-installer, release browsers). Append-only.',
    stream,
    metadata: { 'last-modified': when },
    releases: [],
  };
  if (current.stream !== stream)
    throw new PipelineError(`releases.json is for stream ${current.stream}, not ${stream}`);
  const same = current.releases.find((r) => r.version === entry.version);
  if (same) {
    if (JSON.stringify(same) !== JSON.stringify(entry))
      throw new PipelineError(
        `${entry.version} is already in releases.json of ${stream} with other content; published releases are never rewritten`,
      );
    return current;
  }
  const newest = current.releases.at(-1);
  if (newest && compareVersions(entry.version, newest.version) <= 0)
    throw new PipelineError(
      `${entry.version} is older than ${newest.version}, the newest release of ${stream}; releases.json is append-only in age order`,
    );
  return { ...current, metadata: { 'last-modified': when }, releases: [...current.releases, entry] };
}

/** The static update graph of every arch the stream's releases have (graph.ts staticGraph). */
export function staticGraphs(
  stream: string,
  releases: ReleasesDoc,
  updates: UpdatesDoc,
  now: number,
): Document[] {
  return archOrder
    .filter((a) => releases.releases.some((r) => r['oci-images']?.some((o) => o.architecture === a)))
    .map((a) => ({
      path: staticGraphPath(stream, a),
      kind: 'graph' as const,
      json: staticGraph(releases, updates, a, Math.floor(now / 1000)),
    }));
}

/**
 * The rollout every published release gets unless asked otherwise: to every machine from the
 * publish time on. Fedora CoreOS marks a finished rollout `{"start_percentage": 1.0}`
 * (coreos/fedora-coreos-streams rollout.py:116 @23ca7362, and updates/stable.json there); our
 * schema wants a start_epoch too, and a start of now changes nothing (throttling is
 * start_percentage from the start on, commons/src/policy.rs:68-74 @95388bdf).
 */
export const immediateRollout = (nowSeconds: number) => ({ start_epoch: nowSeconds, start_percentage: 1 });

/**
 * A release's updates entry after a publish, promote or `rollout`:
 * - nothing asked: the entry as it is, with an immediate rollout added when it has none, so that
 *   every published release is an update target (compute_edges makes edges only into rollout and
 *   barrier nodes, commons/src/graph.rs:127-158 @95388bdf);
 * - controls asked: barrier and dead-end as given (absent ones go); the rollout as given, else
 *   the entry's own, else an immediate one. A rollout whose start was not given keeps the
 *   entry's start when nothing else of it changes (a re-run converges), else starts now.
 */
export function resolveControls(
  prev: RolloutControls | undefined,
  request: ControlsRequest | undefined,
  nowSeconds: number,
): RolloutControls {
  const barrier = request ? request.barrier : prev?.barrier;
  const deadend = request ? request.deadend : prev?.deadend;
  let rollout = prev?.rollout;
  const want = request?.rollout;
  if (want) {
    const same =
      rollout !== undefined &&
      rollout.start_percentage === want.start_percentage &&
      rollout.duration_minutes === want.duration_minutes;
    rollout = {
      start_epoch: want.start_epoch ?? (same ? rollout!.start_epoch : nowSeconds),
      start_percentage: want.start_percentage,
      ...(want.duration_minutes !== undefined && { duration_minutes: want.duration_minutes }),
    };
  }
  return {
    ...(barrier && { barrier }),
    ...(deadend && { deadend }),
    rollout: rollout ?? immediateRollout(nowSeconds),
  };
}

/**
 * updates/<stream>.json with `version`'s entry resolved (resolveControls) and the entries cleaned
 * (cleanUpdates; `order` is releases.json's versions). Entries that come out the same (keys in any
 * order) leave the document, last-modified included, as it was.
 */
export function upsertUpdates(
  doc: UpdatesDoc | undefined,
  stream: string,
  version: string,
  request: ControlsRequest | undefined,
  now: number,
  order: readonly string[],
): UpdatesDoc {
  const when = rfc3339(now);
  const current: UpdatesDoc = doc ?? { stream, metadata: { 'last-modified': when }, releases: [] };
  if (current.stream !== stream)
    throw new DataError(`updates/${stream}.json is for stream ${current.stream}, not ${stream}`);
  const at = current.releases.findIndex((r) => r.version === version);
  const prev = at >= 0 ? current.releases[at]!.metadata : undefined;
  const next = resolveControls(prev, request, Math.floor(now / 1000));
  const releases = [...current.releases];
  if (at >= 0) releases[at] = { version, metadata: next };
  else releases.push({ version, metadata: next });
  const cleaned = cleanUpdates(releases, Math.floor(now / 1000), order);
  if (canonicalJson(cleaned) === canonicalJson(current.releases)) return current;
  return { stream, metadata: { 'last-modified': when }, releases: cleaned };
}

/** A rollout every machine takes from its start on, with no duration left to run. */
export const isCompleted = (r: UpdatesDoc['releases'][number]['metadata']['rollout']) =>
  r !== undefined && r.start_percentage === 1 && r.duration_minutes === undefined;

/**
 * The updates entries normalised as Fedora CoreOS's releng normalises its own on every rollout
 * (`clean`, coreos/fedora-coreos-streams rollout.py:114-138 @23ca7362), where that changes no
 * machine's next update:
 * - a rollout whose duration has run out is completed (start_percentage 1, no duration; unlike
 *   rollout.py it keeps its start_epoch, which our schema requires);
 * - a completed rollout in force goes when a later release, before any barrier, is a completed
 *   rollout in force, or when the first barrier after it hides nothing (no rollout, or a
 *   completed one in force). rollout.py drops every completed rollout but the last; a barrier
 *   whose own rollout is still in progress between the two would then leave the releases before
 *   it with no update at all, so that one is kept;
 * - an entry left with no rollout, barrier or dead-end goes.
 * Why no next update changes: Zincati takes the target with the highest age_index (coreos/zincati
 * src/cincinnati/mod.rs:302-306 @be76c4aa), and every release with an edge into the dropped
 * rollout, back to the barrier before it, also has one into that later target, which no wariness
 * hides (commons/src/graph.rs:127-158, policy.rs:26-89 @95388bdf). Only a sensor that rolled back
 * from the later target (Zincati's denylist, mod.rs:287-289) is offered nothing older, as on
 * Fedora CoreOS. What it saves: with a rollout per release, edges grow with the square of the
 * releases between barriers (47,680 per arch for 1,000 releases); kept this way, linearly
 * (npm run bench -- graph). `order`: releases.json's versions, the graph's age order; entries of
 * other versions are left as they are.
 */
export function cleanUpdates(
  releases: UpdatesDoc['releases'],
  nowSeconds: number,
  order: readonly string[],
): UpdatesDoc['releases'] {
  const out = releases.map((rel) => {
    const r = rel.metadata.rollout;
    if (r?.duration_minutes === undefined || r.start_epoch + 60 * r.duration_minutes >= nowSeconds)
      return rel;
    return {
      version: rel.version,
      metadata: { ...rel.metadata, rollout: { start_epoch: r.start_epoch, start_percentage: 1 } },
    };
  });
  const age = new Map(order.map((v, i) => [v, i]));
  const byAge = out
    .map((rel, at) => ({ rel, at, age: age.get(rel.version) }))
    .filter((x): x is { rel: (typeof out)[number]; at: number; age: number } => x.age !== undefined)
    .sort((a, b) => a.age - b.age);
  const inForce = (m: RolloutControls) => isCompleted(m.rollout) && m.rollout!.start_epoch <= nowSeconds;
  byAge.forEach(({ rel, at }, k) => {
    if (!inForce(rel.metadata)) return;
    const next = byAge.slice(k + 1).find(({ rel: r }) => r.metadata.barrier || inForce(r.metadata));
    if (!next) return;
    const m = next.rel.metadata;
    if (m.barrier && m.rollout && !inForce(m)) return;
    const { rollout: _dropped, ...rest } = rel.metadata;
    out[at] = { version: rel.version, metadata: rest };
  });
  return out.filter((rel) => rel.metadata.rollout || rel.metadata.barrier || rel.metadata.deadend);
}

/** Whole seconds since the epoch, or an ISO 8601 date or date-time with a zone. */
export function parseStart(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number.isSafeInteger(Number(s)) ? Number(s) : undefined;
  const iso = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$/;
  if (!iso.test(s) || (s.includes('T') && !/(Z|[+-]\d{2}:\d{2})$/.test(s))) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) && ms >= 0 ? Math.floor(ms / 1000) : undefined;
}

/**
 * Rollout controls from command-line values; every problem listed in one UsageError (exit 64).
 * - `--rollout-hours N` (> 0): from P (default 0) to every machine over N hours from T (default:
 *   when the entry is written), as Fedora CoreOS's rollout.py writes them (start_percentage 0.0,
 *   duration_minutes = hours * 60: coreos/fedora-coreos-streams rollout.py:93-102 @23ca7362);
 * - without it, `--rollout-start T` and/or `--rollout-start-percentage P`: P (default 1, everyone)
 *   from T on, held there (no duration: commons/src/policy.rs:68-74 @95388bdf);
 * - P is a fraction 0..1, as start_percentage in updates.json (0.5 is half the machines).
 * `now` is not read: an open start is decided when the entry is written (resolveControls).
 */
export function parseControls(v: {
  barrier?: string;
  deadend?: string;
  rolloutHours?: string;
  rolloutStart?: string;
  rolloutStartPercentage?: string;
  now?: number;
}): ControlsRequest | undefined {
  const out: ControlsRequest = {};
  const errs: string[] = [];
  if (v.barrier !== undefined) {
    if (!v.barrier.trim()) errs.push('--barrier needs a reason');
    out.barrier = { reason: v.barrier };
  }
  if (v.deadend !== undefined) {
    if (!v.deadend.trim()) errs.push('--deadend needs a reason');
    out.deadend = { reason: v.deadend };
  }
  const { rolloutHours: hours, rolloutStart: start, rolloutStartPercentage: pct } = v;
  if (hours !== undefined || start !== undefined || pct !== undefined) {
    let minutes: number | undefined;
    if (hours !== undefined) {
      const h = /^(\d+\.?\d*|\.\d+)$/.test(hours) ? Number(hours) : Number.NaN;
      minutes = Math.round(h * 60);
      if (!(h > 0) || !(minutes >= 1) || !Number.isSafeInteger(minutes))
        errs.push(
          `--rollout-hours must be a number of hours > 0, at least one minute (got ${hours}); leave it out for a rollout to every machine at once`,
        );
    }
    let startEpoch: number | undefined;
    if (start !== undefined) {
      startEpoch = parseStart(start);
      if (startEpoch === undefined)
        errs.push(
          `--rollout-start is not a time: give seconds since 1970-01-01T00:00:00Z or an ISO 8601 time with a zone, such as 2026-11-22T12:00:00Z (got ${start})`,
        );
    }
    let fraction = minutes !== undefined ? 0 : 1;
    if (pct !== undefined) {
      fraction = /^(\d+\.?\d*|\.\d+)$/.test(pct) ? Number(pct) : Number.NaN;
      if (!(fraction >= 0 && fraction <= 1))
        errs.push(
          `--rollout-start-percentage is a fraction of machines, 0..1, as start_percentage in updates.json (got ${pct}${Number(pct) > 1 && Number(pct) <= 100 ? `; for ${pct}% give ${Number(pct) / 100}` : ''})`,
        );
    }
    out.rollout = {
      ...(startEpoch !== undefined && { start_epoch: startEpoch }),
      start_percentage: fraction,
      ...(minutes !== undefined && { duration_minutes: minutes }),
    };
  }
  if (errs.length) throw new UsageError(errs.join('; '));
  return Object.keys(out).length ? out : undefined;
}
