import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { placeReplicas } from '../../src/domain/scheduler.js';
import { ZERO_RESOURCES, addResources, allocatedFraction, fits, nodeFreeCapacity } from '../../src/domain/resources.js';
import type { Node, NodeStatus, Resources } from '../../src/domain/types.js';

const res = (cpuCores: number, memoryMb: number, gpuUnits = 0, storageGb = 0): Resources => ({ cpuCores, memoryMb, gpuUnits, storageGb });
const node = (name: string, capacity: Resources, allocated: Resources = ZERO_RESOURCES, status: NodeStatus = 'ready'): Node => ({
  id: `id-${name}`,
  name,
  status,
  capacity,
  allocated,
});
const none = new Map<string, number>();

describe('resources', () => {
  it('fits only when every resource is covered, and rounds float sums', () => {
    expect(fits(res(1, 100, 0, 10), res(1, 100, 0, 10))).toBe(true);
    expect(fits(res(1, 100, 0, 10), res(1, 100, 1, 10))).toBe(false);
    const n = node('a', res(0.3, 0), res(0.1, 0));
    expect(fits(nodeFreeCapacity(n), res(0.2, 0))).toBe(true);
    expect(fits(nodeFreeCapacity(node('b', res(1, 0), res(2, 0))), ZERO_RESOURCES)).toBe(false);
  });

  it('scores the allocated fraction over resources the node has', () => {
    expect(allocatedFraction(res(1, 512), res(4, 1024))).toBeCloseTo(0.375);
    expect(allocatedFraction(ZERO_RESOURCES, ZERO_RESOURCES)).toBe(1);
  });
});

describe('placeReplicas', () => {
  it('spreads over nodes with the fewest replicas of the deployment, counting this call', () => {
    const nodes = [node('a', res(8, 8192)), node('b', res(8, 8192)), node('c', res(8, 8192))];
    const { placements, unschedulableReason } = placeReplicas(4, res(1, 1024), nodes, new Map([['id-a', 1]]));
    expect(unschedulableReason).toBeNull();
    expect(placements).toEqual(['id-b', 'id-c', 'id-a', 'id-b']);
  });

  it('breaks a tie on replica count by least allocated, then by name', () => {
    const nodes = [node('z', res(8, 8192)), node('b', res(8, 8192), res(4, 4096)), node('a', res(8, 8192))];
    expect(placeReplicas(2, res(1, 1024), nodes, none).placements).toEqual(['id-a', 'id-z']);
  });

  it('uses only ready nodes, accounts capacity placed in this call and never overcommits', () => {
    const nodes = [node('a', res(2, 2048)), node('b', res(64, 65536), ZERO_RESOURCES, 'cordoned')];
    const { placements, unschedulableReason } = placeReplicas(3, res(1, 1024), nodes, none);
    expect(placements).toEqual(['id-a', 'id-a', null]);
    expect(unschedulableReason).toBe('Unschedulable: 0/2 nodes are available: 1 cordoned, 1 insufficient cpu');
  });

  it('counts each node under its first failing resource or its status, most common first', () => {
    const nodes = [
      node('a', res(4, 1024)),
      node('b', res(4, 1024, 0, 0), res(0, 512)),
      node('c', res(0.5, 8192)),
      node('d', res(8, 8192), ZERO_RESOURCES, 'not_ready'),
      node('e', res(8, 8192, 0, 0)),
    ];
    const { placements, unschedulableReason } = placeReplicas(1, res(1, 2048, 0, 1), nodes, none);
    expect(placements).toEqual([null]);
    expect(unschedulableReason).toBe(
      'Unschedulable: 0/5 nodes are available: 2 insufficient memory, 1 insufficient cpu, 1 insufficient storage, 1 not ready',
    );
  });

  it('reports an empty fleet and returns nothing for a zero count', () => {
    expect(placeReplicas(2, res(1, 1), [], none)).toEqual({ placements: [null, null], unschedulableReason: 'Unschedulable: 0/0 nodes are available' });
    expect(placeReplicas(0, res(1, 1), [], none)).toEqual({ placements: [], unschedulableReason: null });
  });

  it('keeps the reason short for a large fleet', () => {
    const nodes = Array.from({ length: 1000 }, (_, i) => node(`n${i}`, res(1, 1), ZERO_RESOURCES, (['ready', 'not_ready', 'cordoned', 'draining'] as const)[i % 4]!));
    const reason = placeReplicas(1, res(2, 2), nodes, none).unschedulableReason!;
    expect(reason.length).toBeLessThanOrEqual(500);
    expect(reason).toBe('Unschedulable: 0/1000 nodes are available: 250 cordoned, 250 draining, 250 insufficient cpu, 250 not ready');
  });
});

/**
 * The placement rule written the obvious way, one full scan and one fleet copy per replica: the
 * specification the optimised placeReplicas must match exactly.
 */
const referencePlacement = (count: number, need: Resources, nodes: readonly Node[], counts: ReadonlyMap<string, number>): (string | null)[] => {
  let fleet = nodes;
  const perNode = new Map(counts);
  const out: (string | null)[] = [];
  for (let i = 0; i < count; i++) {
    const fitting = fleet.filter((n) => n.status === 'ready' && fits(nodeFreeCapacity(n), need));
    const key = (n: Node): [number, number, string, string] => [perNode.get(n.id) ?? 0, allocatedFraction(n.allocated, n.capacity), n.name, n.id];
    const best = fitting.sort((a, b) => {
      const [ka, kb] = [key(a), key(b)];
      for (let k = 0; k < 4; k++) if (ka[k] !== kb[k]) return ka[k]! < kb[k]! ? -1 : 1;
      return 0;
    })[0];
    out.push(best?.id ?? null);
    if (!best) continue;
    perNode.set(best.id, (perNode.get(best.id) ?? 0) + 1);
    fleet = fleet.map((n) => (n.id === best.id ? { ...n, allocated: addResources(n.allocated, need) } : n));
  }
  return out;
};

describe('placeReplicas against the reference rule', () => {
  const quarter = fc.integer({ min: 0, max: 16 }).map((q) => q / 4);
  const resArb = fc.record({ cpuCores: quarter, memoryMb: fc.integer({ min: 0, max: 8 }).map((m) => m * 256), gpuUnits: fc.integer({ min: 0, max: 2 }), storageGb: fc.integer({ min: 0, max: 4 }) });
  const nodeArb = fc.record({
    // Few names, so ties on name fall through to the id.
    name: fc.constantFrom('a', 'b', 'c'),
    status: fc.constantFrom<NodeStatus>('ready', 'ready', 'ready', 'not_ready', 'draining', 'cordoned'),
    // Few shapes and usages, so nodes often tie on count and fraction and the later keys decide.
    capacity: fc.oneof(fc.constantFrom(res(4, 2048), res(8, 4096, 1, 2), res(2, 1024)), resArb),
    usedQuarters: fc.integer({ min: 0, max: 2 }),
  });

  it('chooses exactly the nodes the rule says, replica by replica', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), resArb, fc.array(nodeArb, { maxLength: 8 }), fc.array(fc.nat(3), { maxLength: 8 }), (count, need, specs, existing) => {
        const nodes = specs.map((s, i): Node => ({
          id: `id-${i}`,
          name: s.name,
          status: s.status,
          capacity: s.capacity,
          allocated: { ...ZERO_RESOURCES, cpuCores: (Math.floor(s.capacity.cpuCores * 4 * s.usedQuarters) / 4) / 4 },
        }));
        const counts = new Map(existing.slice(0, nodes.length).map((n, i) => [`id-${i}`, n]));
        const { placements, unschedulableReason } = placeReplicas(count, need, nodes, counts);
        expect(placements).toEqual(referencePlacement(count, need, nodes, counts));
        expect(unschedulableReason === null).toBe(!placements.includes(null));
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 500) },
    );
  });
});
