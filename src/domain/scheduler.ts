import { addResources, firstShortfall, nodeFreeCapacity, ZERO_RESOURCES } from './resources.js';
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
 * A node that can take at least one replica, with what the placement rule compares kept as plain
 * numbers: free capacity per resource, the allocated fraction, and this deployment's replica count.
 */
interface Candidate {
  node: Node;
  allocated: Resources;
  freeCpu: number;
  freeMem: number;
  freeGpu: number;
  freeSto: number;
  fraction: number;
  count: number;
}

// The same arithmetic as resources.ts (subtractResources, firstShortfall, allocatedFraction), without
// building an object per node per call: with a thousand nodes, placement runs a million times a minute.
const round = (x: number): number => Math.round(x * 1e6) / 1e6;

const fraction = (a: Resources, c: Resources): number => {
  let sum = 0;
  let present = 0;
  if (c.cpuCores > 0) (sum += a.cpuCores / c.cpuCores), present++;
  if (c.memoryMb > 0) (sum += a.memoryMb / c.memoryMb), present++;
  if (c.gpuUnits > 0) (sum += a.gpuUnits / c.gpuUnits), present++;
  if (c.storageGb > 0) (sum += a.storageGb / c.storageGb), present++;
  return present === 0 ? 1 : sum / present;
};

const measure = (c: Candidate): void => {
  const { capacity } = c.node;
  c.freeCpu = round(capacity.cpuCores - c.allocated.cpuCores);
  c.freeMem = round(capacity.memoryMb - c.allocated.memoryMb);
  c.freeGpu = round(capacity.gpuUnits - c.allocated.gpuUnits);
  c.freeSto = round(capacity.storageGb - c.allocated.storageGb);
  c.fraction = fraction(c.allocated, capacity);
};

const fitsIn = (c: Candidate, need: Resources): boolean =>
  c.freeCpu >= need.cpuCores && c.freeMem >= need.memoryMb && c.freeGpu >= need.gpuUnits && c.freeSto >= need.storageGb;

/** Spreading order: fewest replicas of this deployment, then least allocated, then name, then id. */
const before = (a: Candidate, b: Candidate): boolean => {
  if (a.count !== b.count) return a.count < b.count;
  if (a.fraction !== b.fraction) return a.fraction < b.fraction;
  return (compareText(a.node.name, b.node.name) || compareText(a.node.id, b.node.id)) < 0;
};

/** A binary min-heap of candidates in spreading order. */
class CandidateHeap {
  constructor(private readonly items: Candidate[]) {
    for (let i = (items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  get size(): number {
    return this.items.length;
  }

  peek(): Candidate | undefined {
    return this.items[0];
  }

  /** The top's key grew (a replica landed on it): move it down to its place. */
  topChanged(): void {
    this.down(0);
  }

  removeTop(): void {
    const last = this.items.pop()!;
    if (this.items.length === 0) return;
    this.items[0] = last;
    this.down(0);
  }

  private down(i: number): void {
    siftDown(this.items, i, before);
  }
}

/** Moves items[i] down a binary heap whose top is what `first` puts first. */
const siftDown = <T>(items: T[], i: number, first: (a: T, b: T) => boolean): void => {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < items.length && first(items[l]!, items[m]!)) m = l;
    if (r < items.length && first(items[r]!, items[m]!)) m = r;
    if (m === i) return;
    [items[i], items[m]] = [items[m]!, items[i]!];
    i = m;
  }
};

/** The reverse of the spreading order: the heap of BestOf keeps its worst on top. */
const after = (a: Candidate, b: Candidate): boolean => before(b, a);

/**
 * The `limit` best candidates offered, in spreading order, kept in a max-heap (the worst on top) so
 * that an offer worse than all of them costs one comparison and no allocation.
 */
class BestOf {
  readonly items: Candidate[] = [];

  constructor(private readonly limit: number) {}

  /** Whether `c` would be kept; only then does the caller copy it and `add` the copy. */
  wants(c: Candidate): boolean {
    return this.items.length < this.limit || before(c, this.items[0]!);
  }

  add(c: Candidate): void {
    const { items } = this;
    if (items.length < this.limit) {
      items.push(c);
      for (let i = items.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!after(items[i]!, items[parent]!)) return;
        [items[i], items[parent]] = [items[parent]!, items[i]!];
        i = parent;
      }
      return;
    }
    items[0] = c;
    siftDown(items, 0, after);
  }
}

/**
 * Places `count` replicas needing `need` each on ready nodes, spreading: fewest replicas of this
 * deployment first, then least allocated, then name. Capacity taken by earlier placements in the
 * same call is accounted, so the result never overcommits a node.
 *
 * One pass finds the nodes that can take a replica at all and heaps them in that order; each
 * replica then goes to the top node, whose key only grows (one more replica, more allocated), so it
 * sinks back into the heap, or leaves it once nothing more fits. Of the nodes holding no replica of
 * this deployment only the `count` first in that order can ever be chosen (each of them comes
 * before any later one until it has taken a replica, and there are only `count` to place), so only
 * those are kept, without an object for any other: O(nodes · log count + count · log count), no copy
 * of the fleet: placement runs for every deployment on every node of a large cluster.
 */
export const placeReplicas = (
  count: number,
  need: Resources,
  nodes: readonly Node[],
  replicasOfDeploymentPerNode: ReadonlyMap<string, number>,
): PlacementResult => {
  const candidates: Candidate[] = [];
  if (count > 0 && nodes.length > 0) {
    const fresh = new BestOf(count);
    const probe: Candidate = { node: nodes[0]!, allocated: ZERO_RESOURCES, freeCpu: 0, freeMem: 0, freeGpu: 0, freeSto: 0, fraction: 0, count: 0 };
    for (const node of nodes) {
      if (node.status !== 'ready') continue;
      probe.node = node;
      probe.allocated = node.allocated;
      measure(probe);
      if (!fitsIn(probe, need)) continue;
      probe.count = replicasOfDeploymentPerNode.size === 0 ? 0 : (replicasOfDeploymentPerNode.get(node.id) ?? 0);
      if (probe.count > 0) candidates.push({ ...probe });
      else if (fresh.wants(probe)) fresh.add({ ...probe });
    }
    candidates.push(...fresh.items);
  }
  const placed = new Map<string, Candidate>();
  const heap = new CandidateHeap(candidates);
  const placements: (string | null)[] = [];
  let reason: string | null = null;

  for (let i = 0; i < count; i++) {
    const best = heap.peek();
    if (best === undefined) {
      // Nothing changes between attempts once one fails, so every later one fails the same way.
      reason ??= unschedulableReason(need, withAllocations(nodes, placed));
      placements.push(null);
      continue;
    }
    placements.push(best.node.id);
    placed.set(best.node.id, best);
    best.count++;
    best.allocated = addResources(best.allocated, need);
    measure(best);
    if (fitsIn(best, need)) heap.topChanged();
    else heap.removeTop();
  }
  return { placements, unschedulableReason: reason };
};

/** The fleet as this call left it, for the reason text. */
const withAllocations = (nodes: readonly Node[], placed: ReadonlyMap<string, Candidate>): Node[] =>
  nodes.map((n) => {
    const c = placed.get(n.id);
    return c === undefined ? n : { ...n, allocated: c.allocated };
  });
