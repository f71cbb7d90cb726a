import { addResources, allocatedFraction, firstShortfall, nodeFreeCapacity, subtractResources } from './resources.js';
import type { ResourceKey } from './resources.js';
import type { Node, Resources } from './types.js';

export interface PlacementResult {
  /** One entry per requested replica: the chosen node id, or null when it fits nowhere. */
  readonly placements: readonly (string | null)[];
  /** Why the first unplaceable replica fits nowhere, or null if every replica was placed. */
  readonly unschedulableReason: string | null;
}

const SHORTFALL_LABEL: Readonly<Record<ResourceKey, string>> = {
  cpuCores: 'insufficient cpu',
  memoryMb: 'insufficient memory',
  gpuUnits: 'insufficient gpu',
  storageGb: 'insufficient storage',
};

const MAX_REASON_LENGTH = 500;

/**
 * Kubernetes-style: `Unschedulable: 0/3 nodes are available: 2 insufficient memory, 1 not ready`.
 * Each node is counted once, under its status if not ready, else under its first missing resource.
 */
const unschedulableReason = (need: Resources, nodes: readonly Node[]): string => {
  const tally = new Map<string, number>();
  for (const node of nodes) {
    const shortfall = node.status === 'ready' ? firstShortfall(nodeFreeCapacity(node), need) : null;
    const label = node.status !== 'ready' ? node.status.replace('_', ' ') : shortfall ? SHORTFALL_LABEL[shortfall] : 'available';
    tally.set(label, (tally.get(label) ?? 0) + 1);
  }
  const parts = [...tally]
    .sort(([la, ca], [lb, cb]) => cb - ca || (la < lb ? -1 : la > lb ? 1 : 0))
    .map(([label, count]) => `${count} ${label}`);
  const head = `Unschedulable: 0/${nodes.length} nodes are available`;
  const text = parts.length === 0 ? head : `${head}: ${parts.join(', ')}`;
  return text.length <= MAX_REASON_LENGTH ? text : `${text.slice(0, MAX_REASON_LENGTH - 3)}...`;
};

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

interface Candidate {
  readonly node: Node;
  allocated: Resources;
  free: Resources;
  /** allocatedFraction(allocated, capacity), kept with `allocated`. */
  fraction: number;
}

/** Spreading order: fewest replicas of this deployment, then least allocated, then name, then id. */
const before = (a: Candidate, b: Candidate, perNode: ReadonlyMap<string, number>): boolean => {
  const byCount = (perNode.get(a.node.id) ?? 0) - (perNode.get(b.node.id) ?? 0);
  if (byCount !== 0) return byCount < 0;
  if (a.fraction !== b.fraction) return a.fraction < b.fraction;
  return (compareText(a.node.name, b.node.name) || compareText(a.node.id, b.node.id)) < 0;
};

/**
 * Places `count` replicas needing `need` each on ready nodes, spreading: fewest replicas of this
 * deployment first, then least allocated, then name. Capacity taken by earlier placements in the
 * same call is accounted, so the result never overcommits a node.
 *
 * Only the nodes that can take one replica at all are scanned per replica, and a placement updates
 * its node in place: O(count × candidates) comparisons and no copy of the fleet, which matters when
 * a controller places thousands of replicas on thousands of nodes.
 */
export const placeReplicas = (
  count: number,
  need: Resources,
  nodes: readonly Node[],
  replicasOfDeploymentPerNode: ReadonlyMap<string, number>,
): PlacementResult => {
  const perNode = new Map(replicasOfDeploymentPerNode);
  const candidates: Candidate[] = [];
  if (count > 0) {
    for (const node of nodes) {
      if (node.status !== 'ready') continue;
      const free = nodeFreeCapacity(node);
      if (firstShortfall(free, need) !== null) continue;
      candidates.push({ node, allocated: node.allocated, free, fraction: allocatedFraction(node.allocated, node.capacity) });
    }
  }
  const placements: (string | null)[] = [];
  let reason: string | null = null;

  for (let i = 0; i < count; i++) {
    let best: Candidate | null = null;
    for (const c of candidates) {
      if (firstShortfall(c.free, need) !== null) continue;
      if (best === null || before(c, best, perNode)) best = c;
    }
    if (best === null) {
      // Nothing changes between attempts once one fails, so every later one fails the same way.
      reason ??= unschedulableReason(need, withAllocations(nodes, candidates));
      placements.push(null);
      continue;
    }
    placements.push(best.node.id);
    perNode.set(best.node.id, (perNode.get(best.node.id) ?? 0) + 1);
    best.allocated = addResources(best.allocated, need);
    best.free = subtractResources(best.node.capacity, best.allocated);
    best.fraction = allocatedFraction(best.allocated, best.node.capacity);
  }
  return { placements, unschedulableReason: reason };
};

/** The fleet as this call left it, for the reason text. */
const withAllocations = (nodes: readonly Node[], candidates: readonly Candidate[]): Node[] => {
  const allocated = new Map(candidates.map((c) => [c.node.id, c.allocated]));
  return nodes.map((n) => {
    const a = allocated.get(n.id);
    return a === undefined || a === n.allocated ? n : { ...n, allocated: a };
  });
};
