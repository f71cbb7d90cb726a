import { addResources, fits, RESOURCE_KEYS, subtractResources, ZERO_RESOURCES } from './resources.js';
import type { ReplicaStatus, Resources } from './types.js';

/** A replica holding resources on a node (pending, starting, running or stopping). */
export interface HeldReplica {
  readonly id: string;
  readonly status: ReplicaStatus;
  readonly createdAt: Date;
  /** Priced as allocation counts it (CPU rounded up to the millicore). */
  readonly resources: Resources;
}

/** The reason a replica fails with when its node re-registers with less than it holds. */
export const NODE_CAPACITY_REDUCED = 'NodeCapacityReduced';

// Replicas already on their way out cost nothing to evict; then the least far along, as kubelet's
// eviction spares what serves; newest first among equals.
const STATUS_RANK: Readonly<Partial<Record<ReplicaStatus, number>>> = { stopping: 0, pending: 1, starting: 2, running: 3 };
const preference = (a: HeldReplica, b: HeldReplica): number =>
  (STATUS_RANK[a.status] ?? 0) - (STATUS_RANK[b.status] ?? 0) ||
  b.createdAt.getTime() - a.createdAt.getTime() ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Subsets examined before settling for the greedy choice (a node holding dozens of replicas). */
const SEARCH_BUDGET = 200_000;

/**
 * The replicas a node must give up so that what it keeps fits `capacity`: the fewest possible, and
 * among as few, the first in preference order (stopping, pending, starting, running; newest first;
 * then id), so the same inputs always give the same answer. Exact by search over subsets of growing
 * size; a node with too many replicas for the search gets the greedy choice (each step the replica
 * covering most of what is still over, relative to it).
 */
export function pickCapacityVictims(capacity: Resources, replicas: readonly HeldReplica[]): HeldReplica[] {
  const held = replicas.reduce((sum, r) => addResources(sum, r.resources), ZERO_RESOURCES);
  if (fits(capacity, held)) return [];
  const over = subtractResources(held, capacity);
  const ordered = [...replicas].sort(preference);
  return searchFewest(ordered, over) ?? greedy(ordered, over);
}

const covers = (freed: Resources, over: Resources): boolean => RESOURCE_KEYS.every((k) => over[k] <= 0 || freed[k] >= over[k]);

function searchFewest(ordered: readonly HeldReplica[], over: Resources): HeldReplica[] | null {
  let budget = SEARCH_BUDGET;
  for (let size = 1; size <= ordered.length; size++) {
    const picked: number[] = [];
    // Combinations of `size` in lexicographic order of the preference order: the first that covers wins.
    const visit = (from: number, freed: Resources): boolean => {
      if (picked.length === size) return covers(freed, over);
      for (let i = from; i <= ordered.length - (size - picked.length); i++) {
        if (--budget < 0) return false;
        picked.push(i);
        if (visit(i + 1, addResources(freed, ordered[i]!.resources))) return true;
        picked.pop();
      }
      return false;
    };
    if (visit(0, ZERO_RESOURCES)) return picked.map((i) => ordered[i]!);
    if (budget < 0) return null;
  }
  return null;
}

function greedy(ordered: readonly HeldReplica[], over: Resources): HeldReplica[] {
  const left = [...ordered];
  const victims: HeldReplica[] = [];
  let remaining = over;
  while (!covers(ZERO_RESOURCES, remaining) && left.length > 0) {
    const score = (r: HeldReplica): number =>
      RESOURCE_KEYS.reduce((s, k) => (remaining[k] > 0 ? s + Math.min(r.resources[k], remaining[k]) / remaining[k] : s), 0);
    let best = 0;
    for (let i = 1; i < left.length; i++) if (score(left[i]!) > score(left[best]!)) best = i;
    const [victim] = left.splice(best, 1);
    victims.push(victim!);
    remaining = subtractResources(remaining, victim!.resources);
  }
  return victims;
}
