import { describe, expect, it } from 'vitest';
import { CapacityWatch } from '../../src/controller/capacity-watch.js';
import type { Node, NodeStatus } from '../../src/domain/types.js';

const node = (id: string, usedCpu: number, status: NodeStatus = 'ready', memoryMb = 8192): Node => ({
  id,
  name: id,
  status,
  capacity: { cpuCores: 4, memoryMb, gpuUnits: 0, storageGb: 100 },
  allocated: { cpuCores: usedCpu, memoryMb: 0, gpuUnits: 0, storageGb: 0 },
});

describe('CapacityWatch', () => {
  it('reports growth on first sight, then only when a ready node frees or gains something', () => {
    const watch = new CapacityWatch();
    expect(watch.grew([node('a', 2)])).toBe(true);
    expect(watch.grew([node('a', 2)])).toBe(false);
    expect(watch.grew([node('a', 3)])).toBe(false); // more allocated: less free
    expect(watch.grew([node('a', 1)])).toBe(true); // a replica stopped
    expect(watch.grew([node('a', 1, 'ready', 16384)])).toBe(true); // re-registered bigger
    expect(watch.grew([node('a', 1, 'ready', 16384)])).toBe(false);
  });

  it('counts a node that arrives or comes back ready, but never one that is not ready', () => {
    const watch = new CapacityWatch();
    expect(watch.grew([node('a', 0, 'not_ready')])).toBe(false);
    expect(watch.grew([node('a', 0, 'ready')])).toBe(true);
    expect(watch.grew([node('a', 0, 'cordoned')])).toBe(false);
    expect(watch.grew([node('a', 0, 'cordoned'), node('b', 4, 'draining')])).toBe(false);
    expect(watch.grew([node('a', 0, 'ready'), node('b', 4, 'draining')])).toBe(true);
    expect(watch.grew([node('a', 0, 'ready'), node('b', 4, 'draining'), node('c', 4)])).toBe(true);
  });
});
