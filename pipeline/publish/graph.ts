// The Cincinnati update graph Zincati reads (formats.md §6), with the semantics of Fedora CoreOS's
// own server, coreos/fedora-coreos-cincinnati @95388bdf (95388bdf6d52f4084846bbd7c6f22b314f3c553a):
// the graph builder's Graph::from_metadata (commons/src/graph.rs), the policy engine's per-request
// throttle_rollouts and filter_deadends (commons/src/policy.rs) and its wariness
// (fcos-policy-engine/src/main.rs). Every rule below cites its upstream line. Only the oci scope
// is built: our releases are container images. Pure: the caller passes the time.
import { rustDefaultHashOfString, u64ToF64 } from './siphash.ts';
import type { ReleasesDoc, UpdatesDoc } from './site.ts';

export interface GraphNode {
  version: string;
  /** String values only (commons/src/graph.rs:10 @95388bdf). */
  metadata: Record<string, string>;
  payload: string;
}

/** Nodes and `[from, to]` index pairs (commons/src/graph.rs:16-19 @95388bdf). */
export interface Graph {
  nodes: GraphNode[];
  edges: [number, number][];
}

/** Node metadata keys (commons/src/metadata.rs:12-24 @95388bdf). */
export const META = {
  scheme: 'org.fedoraproject.coreos.scheme',
  ageIndex: 'org.fedoraproject.coreos.releases.age_index',
  barrier: 'org.fedoraproject.coreos.updates.barrier',
  barrierReason: 'org.fedoraproject.coreos.updates.barrier_reason',
  deadend: 'org.fedoraproject.coreos.updates.deadend',
  deadendReason: 'org.fedoraproject.coreos.updates.deadend_reason',
  rollout: 'org.fedoraproject.coreos.updates.rollout',
  duration: 'org.fedoraproject.coreos.updates.duration_minutes',
  startEpoch: 'org.fedoraproject.coreos.updates.start_epoch',
  startValue: 'org.fedoraproject.coreos.updates.start_value',
} as const;

/**
 * Where the static graph of a stream and basearch lives on the site. Zincati URL-joins `v1/graph`
 * onto its base_url (formats.md §6), so with
 * `base_url = "https://<site>/graph/${stream}/${basearch}/"` it GETs exactly this file (a static
 * host ignores the query string; Zincati does not check the Content-Type).
 */
export const staticGraphPath = (stream: string, basearch: string) => `graph/${stream}/${basearch}/v1/graph`;

// --- Rust's number formatting and parsing, as the upstream code applies them ------------------------

/**
 * Rust's `Display` for f64 (what `val.to_string()` writes, commons/src/graph.rs:227): the shortest
 * digits that read back to the same value, never in exponent form; a whole number has no
 * fraction (1.0 is "1", 0.0 is "0"), -0.0 is "-0", and NaN and infinities are "NaN", "inf", "-inf".
 * JavaScript's Number#toString picks the same shortest digits but switches to exponent form
 * below 1e-6 and from 1e21; those are spelled out here.
 */
export function rustF64Display(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Number.POSITIVE_INFINITY) return 'inf';
  if (x === Number.NEGATIVE_INFINITY) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const sign = x < 0 ? '-' : '';
  const s = Math.abs(x).toString();
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return sign + s;
  const digits = m[1]! + (m[2] ?? '');
  const point = Number(m[3]) + 1;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Rust's integer `Display` (i64 start_epoch, u64 duration_minutes): plain decimal digits. */
const rustIntDisplay = (n: number) => (Number.isSafeInteger(n) ? String(n) : BigInt(n).toString());

/**
 * `str::parse::<f64>()`: an optional sign, then `inf`, `infinity` or `nan` (any case) or decimal
 * digits with an optional point and exponent; no spaces, no hex. undefined when Rust says Err.
 */
export function parseRustF64(s: string): number | undefined {
  const m = /^([+-]?)(?:(inf|infinity|nan)|((?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?))$/i.exec(s);
  if (!m) return undefined;
  if (m[2]) {
    if (m[2].toLowerCase() === 'nan') return Number.NaN;
    return m[1] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  return Number(`${m[1]}${m[3]}`);
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

/** `str::parse::<i64>()`: optional sign, digits, in range. */
function parseRustI64(s: string): number | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const v = BigInt(s);
  return v < I64_MIN || v > I64_MAX ? undefined : Number(v);
}

/** `str::parse::<u64>()`: optional `+`, digits, in range. */
function parseRustU64(s: string): number | undefined {
  if (!/^\+?\d+$/.test(s)) return undefined;
  const v = BigInt(s);
  return v > U64_MAX ? undefined : Number(v);
}

// --- the graph builder ------------------------------------------------------------------------------

/**
 * `Graph::from_metadata` for the oci scope (commons/src/graph.rs:23-108 @95388bdf):
 * - nodes in releases.json order; age_index is the release's position in releases.json, counted
 *   before releases are skipped (`enumerate()` precedes `filter_map`, :28-36);
 * - a release without `oci-images` is skipped (:54-56); of its images, those of another
 *   architecture or with an empty digest-ref are passed over and the last remaining one gives
 *   the payload and scheme `oci` (:41-53); a release with none is skipped (:83-85);
 * - metadata from every updates entry of the same version, in file order (a later entry
 *   overwrites what an earlier one set): dead-end, barrier, then rollout (:87-94, :163-236);
 * - edges by compute_edges (:101), then filter_deadends (:105).
 * Metadata keys are written in sorted order (upstream's HashMap has none) for stable output.
 */
export function graphFromMetadata(
  releases: ReleasesDoc,
  updates: UpdatesDoc | undefined,
  basearch: string,
): Graph {
  const byVersion = new Map<string, UpdatesDoc['releases'][number]['metadata'][]>();
  for (const e of updates?.releases ?? []) {
    const list = byVersion.get(e.version) ?? [];
    list.push(e.metadata);
    byVersion.set(e.version, list);
  }
  const nodes: GraphNode[] = [];
  releases.releases.forEach((entry, ageIndex) => {
    const images = entry['oci-images'];
    if (!images) return;
    let payload: string | undefined;
    for (const img of images) {
      if (img.architecture !== basearch || img['digest-ref'] === '') continue;
      payload = img['digest-ref'];
    }
    if (payload === undefined) return;
    const metadata: Record<string, string> = {
      [META.ageIndex]: String(ageIndex),
      [META.scheme]: 'oci',
    };
    const controls = byVersion.get(entry.version) ?? [];
    // inject_deadend_reason (:186-207): "true", and the reason or "generic" when empty.
    for (const c of controls)
      if (c.deadend) {
        metadata[META.deadend] = 'true';
        metadata[META.deadendReason] = c.deadend.reason === '' ? 'generic' : c.deadend.reason;
      }
    // inject_barrier_reason (:163-184): the same for barriers.
    for (const c of controls)
      if (c.barrier) {
        metadata[META.barrier] = 'true';
        metadata[META.barrierReason] = c.barrier.reason === '' ? 'generic' : c.barrier.reason;
      }
    // inject_throttling_params (:209-236): "true", then each parameter only when present,
    // written with Rust's Display (i64, f64, u64).
    for (const c of controls)
      if (c.rollout) {
        const r = c.rollout as { start_epoch?: number; start_percentage?: number; duration_minutes?: number };
        metadata[META.rollout] = 'true';
        if (r.start_epoch !== undefined) metadata[META.startEpoch] = rustIntDisplay(r.start_epoch);
        if (r.start_percentage !== undefined) metadata[META.startValue] = rustF64Display(r.start_percentage);
        if (r.duration_minutes !== undefined) metadata[META.duration] = rustIntDisplay(r.duration_minutes);
      }
    nodes.push({ version: entry.version, metadata: sortedKeys(metadata), payload });
  });
  return filterDeadends({ nodes, edges: computeEdges(nodes) });
}

const sortedKeys = (m: Record<string, string>) =>
  Object.fromEntries(
    Object.keys(m)
      .sort()
      .map((k) => [k, m[k]!]),
  ) as Record<string, string>;

/**
 * `compute_edges` (commons/src/graph.rs:111-161 @95388bdf), in its order:
 * 1. for each rollout node, from the newest down (:129-144): an edge from every node since the
 *    previous barrier (that barrier included; node 0 when there is none, :135-139) into it;
 * 2. for each barrier node, oldest first, that is not itself a rollout (:147-158): an edge from
 *    every node since the previous barrier (included; node 0 for the first) into it.
 * A node is a rollout or barrier by the key's presence (`contains_key`, :119-124). No other edges:
 * a release with neither is never an update target.
 */
export function computeEdges(nodes: GraphNode[]): [number, number][] {
  const isRollout = nodes.map((n) => Object.hasOwn(n.metadata, META.rollout));
  const isBarrier = nodes.map((n) => Object.hasOwn(n.metadata, META.barrier));
  // The last barrier strictly before each index, or 0 (`unwrap_or(0)`).
  const previousBarrier: number[] = [];
  let last = 0;
  for (let i = 0; i < nodes.length; i++) {
    previousBarrier.push(last);
    if (isBarrier[i]) last = i;
  }
  const edges: [number, number][] = [];
  for (let age = nodes.length - 1; age >= 0; age--) {
    if (!isRollout[age]) continue;
    for (let i = previousBarrier[age]!; i < age; i++) edges.push([i, age]);
  }
  let start = 0;
  for (let target = 0; target < nodes.length; target++) {
    if (!isBarrier[target]) continue;
    if (!isRollout[target]) for (let i = start; i < target; i++) edges.push([i, target]);
    start = target;
  }
  return edges;
}

/**
 * `filter_deadends` (commons/src/policy.rs:6-23 @95388bdf): edges out of nodes whose dead-end key
 * is exactly "true" are dropped; the rest keep their order.
 */
export function filterDeadends(graph: Graph): Graph {
  const dead = new Set<number>();
  graph.nodes.forEach((n, i) => {
    if (n.metadata[META.deadend] === 'true') dead.add(i);
  });
  return { nodes: graph.nodes, edges: graph.edges.filter(([from]) => !dead.has(from)) };
}

// --- the policy engine ------------------------------------------------------------------------------

/** A rollout node's parameters as throttle_rollouts reads them from its metadata. */
export interface RolloutParams {
  index: number;
  startEpoch: number;
  startValue: number;
  /** Undefined: no duration, so no progress past the start value. */
  minutes?: number;
}

/**
 * The parameters of a rollout node, or undefined for a node without the rollout key
 * (commons/src/policy.rs:32-55 @95388bdf): start_epoch parsed as i64, 0 when absent or not a
 * number (:37-41); start_value parsed as f64, 0 likewise (:43-47); duration_minutes parsed as
 * u64 and at least 1, and when absent or not a number there is no duration (:49-55).
 */
export function rolloutParams(node: GraphNode, index: number): RolloutParams | undefined {
  const m = node.metadata;
  if (!Object.hasOwn(m, META.rollout)) return undefined;
  const epoch = m[META.startEpoch];
  const value = m[META.startValue];
  const mins = m[META.duration];
  const minutes = mins === undefined ? undefined : parseRustU64(mins);
  return {
    index,
    startEpoch: (epoch === undefined ? undefined : parseRustI64(epoch)) ?? 0,
    startValue: (value === undefined ? undefined : parseRustF64(value)) ?? 0,
    ...(minutes !== undefined && { minutes: Math.max(minutes, 1) }),
  };
}

/**
 * How far a rollout is at `now` (seconds), 0..1, exactly as commons/src/policy.rs:57-75
 * @95388bdf computes it, in the same floating-point order: with a duration,
 * end = start + minutes * 60, rate = (1 - start_value) / (end - start); 0 before the start,
 * 1 after the end, else start_value + rate * (now - start). Without one: 0 before the start,
 * start_value from then on.
 */
export function throttlingAt(p: RolloutParams, now: number): number {
  if (p.minutes !== undefined) {
    const end = p.startEpoch + p.minutes * 60;
    const rate = (1.0 - p.startValue) / (end - p.startEpoch);
    if (now < p.startEpoch) return 0.0;
    if (now > end) return 1.0;
    return p.startValue + rate * (now - p.startEpoch);
  }
  return now < p.startEpoch ? 0.0 : p.startValue;
}

/**
 * `throttle_rollouts` (commons/src/policy.rs:26-89 @95388bdf): a rollout node is hidden from a
 * client whose wariness is greater than the rollout's throttling now (:77-79), and every edge
 * into a hidden node is dropped (:82-85). `now` is whole seconds (`Utc::now().timestamp()`, :29).
 */
export function throttleRollouts(graph: Graph, wariness: number, now: number): Graph {
  const hidden = new Set<number>();
  graph.nodes.forEach((n, i) => {
    const p = rolloutParams(n, i);
    if (p && wariness > throttlingAt(p, now)) hidden.add(i);
  });
  return { nodes: graph.nodes, edges: graph.edges.filter(([, to]) => !hidden.has(to)) };
}

/** The graph a client gets: throttle_rollouts, then filter_deadends (fcos-policy-engine/src/main.rs:170-171 @95388bdf). */
export const clientGraph = (graph: Graph, wariness: number, now: number) =>
  filterDeadends(throttleRollouts(graph, wariness, now));

/** The wariness bounds of a hashed node_uuid: (0, 1] (fcos-policy-engine/src/main.rs:203-205 @95388bdf). */
const COMPUTED_MIN = 0.0 + 0.000001;
const COMPUTED_MAX = 1.0;

/** f64::clamp as Rust's core writes it: two comparisons, so NaN stays NaN. */
function clamp(x: number, lo: number, hi: number): number {
  let v = x;
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  return v;
}

/**
 * `compute_wariness` (fcos-policy-engine/src/main.rs:182-216 @95388bdf): the `rollout_wariness`
 * query value, when it parses as an f64, clamped to 0..1 (:186-195); otherwise the node_uuid
 * (empty when absent, :197-201) hashed with Rust's DefaultHasher (SipHash-1-3, zero keys, over
 * its UTF-8 bytes and 0xff: siphash.ts), scaled by u64::MAX (which as an f64 is 2^64) and
 * clamped to [0.000001, 1] (:202-213).
 */
export function computeWariness(rolloutWariness: string | undefined, nodeUuid: string | undefined): number {
  if (rolloutWariness !== undefined) {
    const input = parseRustF64(rolloutWariness);
    if (input !== undefined) return clamp(input, 0.0, 1.0);
  }
  const digest = rustDefaultHashOfString(nodeUuid ?? '');
  return clamp(u64ToF64(digest) / 2 ** 64, COMPUTED_MIN, COMPUTED_MAX);
}

// --- what the site and the service publish ------------------------------------------------------------

/**
 * The graph written as a static file (staticGraphPath). A file cannot throttle per request, so
 * it holds what the most wary client (wariness 1) would get from the policy engine at publish
 * time: every barrier and every rollout that has fully rolled out by `now` is an update target;
 * a rollout still in progress (or not started) is not, until the file is written again (the
 * next publish, promote or `rock-image rollout` of the stream). The alternative, an edge into
 * every rollout node whatever its progress, would hand a gradual rollout to every machine at
 * once. Nodes stay in either case, so a machine on any release still finds itself in the graph.
 */
export function staticGraph(
  releases: ReleasesDoc,
  updates: UpdatesDoc | undefined,
  basearch: string,
  now: number,
) {
  return clientGraph(graphFromMetadata(releases, updates, basearch), 1.0, now);
}

const enc = (s: string) => Buffer.from(s, 'utf8');

/**
 * A graph prepared for serving many clients: the nodes serialised once, the edges as runs that
 * share a target (compute_edges emits each target's edges together), and the rollout parameters
 * parsed once. A request then costs one throttling pass over the rollout nodes, at the time of the
 * request; the whole body for a given set of hidden nodes is kept (at most `cacheSize` sets; the
 * sets a moment can produce are nested, one per rollout under way plus none hidden), so it is
 * written with one call. The body is compact JSON (the policy engine pretty-prints; JSON readers
 * do not care) in upstream's field order.
 */
export class ServedGraph {
  readonly graph: Graph;
  private readonly head: string;
  private readonly runs: { to: number; text: string }[] = [];
  private readonly rollouts: RolloutParams[] = [];
  private readonly all: Buffer;
  private readonly cache = new Map<string, Buffer>();

  constructor(
    graph: Graph,
    private readonly cacheSize = 64,
  ) {
    // filter_deadends is idempotent and throttling only removes edges, so filtering once here is
    // the same as filtering after every throttling pass.
    this.graph = filterDeadends(graph);
    this.head = `{"nodes":${JSON.stringify(this.graph.nodes)},"edges":[`;
    for (const [from, to] of this.graph.edges) {
      const last = this.runs.at(-1);
      if (last && last.to === to) last.text += `,[${from},${to}]`;
      else this.runs.push({ to, text: `[${from},${to}]` });
    }
    this.graph.nodes.forEach((n, i) => {
      const p = rolloutParams(n, i);
      if (p) this.rollouts.push(p);
    });
    this.all = enc(`${this.head}${this.runs.map((r) => r.text).join(',')}]}`);
  }

  /** The body of clientGraph(graph, wariness, now) as JSON. */
  body(wariness: number, now: number): Buffer {
    let key = '';
    for (const p of this.rollouts) if (wariness > throttlingAt(p, now)) key += `${p.index},`;
    if (key === '') return this.all;
    let body = this.cache.get(key);
    if (!body) {
      const hidden = new Set(key.slice(0, -1).split(',').map(Number));
      body = enc(
        `${this.head}${this.runs
          .filter((r) => !hidden.has(r.to))
          .map((r) => r.text)
          .join(',')}]}`,
      );
      if (this.cache.size >= this.cacheSize) this.cache.clear();
      this.cache.set(key, body);
    }
    return body;
  }
}
