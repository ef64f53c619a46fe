// The Cincinnati update graph Zincati reads (formats.md §6), rendered statically per basearch from
// releases.json (age order) and updates.json (barriers, dead-ends, rollouts). Pure.
import type { ReleasesDoc, UpdatesDoc } from './site.ts';

export interface GraphNode {
  version: string;
  payload: string;
  metadata: Record<string, string>;
}

export interface Graph {
  nodes: GraphNode[];
  edges: [number, number][];
}

const K = 'org.fedoraproject.coreos';

/** Where the static graph of a stream and basearch lives on the site (the oci=true scheme). */
export const graphPath = (stream: string, basearch: string) => `v1/graph/${stream}/${basearch}.json`;

/**
 * Nodes: every release of `basearch` with an OCI image, oldest first; payload is the image's
 * digest-ref. Edges i -> j (i older than j) exist when no barrier lies strictly between them
 * (i at or after the last barrier before j) and i is not a dead-end. So every node since the
 * previous barrier points to each newer node, and nothing jumps over a barrier: older nodes reach
 * a barrier node first. Rollout metadata rides on the target node; clients throttle (see below).
 */
export function renderGraph(releases: ReleasesDoc, updates: UpdatesDoc | undefined, basearch: string): Graph {
  const controls = new Map((updates?.releases ?? []).map((r) => [r.version, r.metadata]));
  const nodes: GraphNode[] = [];
  for (const r of releases.releases) {
    const oci = r['oci-images']?.find((o) => o.architecture === basearch);
    if (!oci) continue;
    const c = controls.get(r.version) ?? {};
    const metadata: Record<string, string> = {
      [`${K}.scheme`]: 'oci',
      [`${K}.releases.age_index`]: String(nodes.length),
    };
    if (c.barrier) {
      metadata[`${K}.updates.barrier`] = 'true';
      metadata[`${K}.updates.barrier_reason`] = c.barrier.reason;
    }
    if (c.deadend) {
      metadata[`${K}.updates.deadend`] = 'true';
      metadata[`${K}.updates.deadend_reason`] = c.deadend.reason;
    }
    if (c.rollout) {
      metadata[`${K}.updates.rollout`] = 'true';
      metadata[`${K}.updates.start_epoch`] = String(c.rollout.start_epoch);
      metadata[`${K}.updates.start_value`] = String(c.rollout.start_percentage);
      metadata[`${K}.updates.duration_minutes`] = String(c.rollout.duration_minutes ?? 0);
    }
    nodes.push({ version: r.version, payload: oci['digest-ref'], metadata });
  }
  const edges: [number, number][] = [];
  let lastBarrier = 0;
  for (let j = 0; j < nodes.length; j++) {
    for (let i = lastBarrier; i < j; i++)
      if (nodes[i]!.metadata[`${K}.updates.deadend`] !== 'true') edges.push([i, j]);
    if (nodes[j]!.metadata[`${K}.updates.barrier`] === 'true') lastBarrier = j;
  }
  return { nodes, edges };
}

/**
 * What a client sees (Zincati's throttling): an edge into a rollout node is hidden while the
 * client's wariness (0..1) exceeds start_value + (1 - start_value) * elapsed / duration.
 */
export function visibleEdges(graph: Graph, wariness: number, nowSeconds: number): [number, number][] {
  return graph.edges.filter(([, to]) => {
    const m = graph.nodes[to]!.metadata;
    if (m[`${K}.updates.rollout`] !== 'true') return true;
    const start = Number(m[`${K}.updates.start_epoch`]);
    const value = Number(m[`${K}.updates.start_value`]);
    const minutes = Number(m[`${K}.updates.duration_minutes`]);
    if (nowSeconds < start) return false;
    const progress = minutes <= 0 ? 1 : Math.min(1, (nowSeconds - start) / (minutes * 60));
    return wariness <= value + (1 - value) * progress;
  });
}
