import { addResources, allocatedFraction, firstShortfall, nodeFreeCapacity } from './resources.js';
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

/**
 * Places `count` replicas needing `need` each on ready nodes, spreading: fewest replicas of this
 * deployment first, then least allocated, then name. Capacity taken by earlier placements in the
 * same call is accounted, so the result never overcommits a node.
 */
export const placeReplicas = (
  count: number,
  need: Resources,
  nodes: readonly Node[],
  replicasOfDeploymentPerNode: ReadonlyMap<string, number>,
): PlacementResult => {
  let fleet = nodes;
  const perNode = new Map(replicasOfDeploymentPerNode);
  const placements: (string | null)[] = [];
  let reason: string | null = null;

  for (let i = 0; i < count; i++) {
    const candidates = fleet.filter((n) => n.status === 'ready' && firstShortfall(nodeFreeCapacity(n), need) === null);
    if (candidates.length === 0) {
      // Nothing changes between attempts once one fails, so every later one fails the same way.
      reason ??= unschedulableReason(need, fleet);
      placements.push(null);
      continue;
    }
    const score = (n: Node) => allocatedFraction(n.allocated, n.capacity);
    const best = candidates.reduce((a, b) => {
      const byCount = (perNode.get(a.id) ?? 0) - (perNode.get(b.id) ?? 0);
      const byFraction = score(a) - score(b);
      const order = byCount || byFraction || compareText(a.name, b.name) || compareText(a.id, b.id);
      return order <= 0 ? a : b;
    });
    placements.push(best.id);
    perNode.set(best.id, (perNode.get(best.id) ?? 0) + 1);
    fleet = fleet.map((n) => (n.id === best.id ? { ...n, allocated: addResources(n.allocated, need) } : n));
  }
  return { placements, unschedulableReason: reason };
};
