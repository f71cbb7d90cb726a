import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pickCapacityVictims, type HeldReplica } from '../../src/domain/capacity-eviction.js';
import { addResources, fits, ZERO_RESOURCES } from '../../src/domain/resources.js';
import type { ReplicaStatus, Resources } from '../../src/domain/types.js';

const res = (cpuCores: number, memoryMb = 512, gpuUnits = 0, storageGb = 1): Resources => ({ cpuCores, memoryMb, gpuUnits, storageGb });
const replica = (id: string, resources: Resources, status: ReplicaStatus = 'running', minute = 0): HeldReplica => ({
  id,
  status,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, minute)),
  resources,
});
const ids = (rs: readonly HeldReplica[]) => rs.map((r) => r.id);
const sum = (rs: readonly HeldReplica[]) => rs.reduce((s, r) => addResources(s, r.resources), ZERO_RESOURCES);

describe('pickCapacityVictims', () => {
  it('evicts nothing when everything still fits', () => {
    expect(pickCapacityVictims(res(4, 8192, 0, 100), [replica('a', res(2)), replica('b', res(2))])).toEqual([]);
  });

  it('evicts the fewest: one big replica rather than two small ones that are evicted first otherwise', () => {
    const held = [replica('small-1', res(0.5), 'pending', 3), replica('small-2', res(0.5), 'pending', 2), replica('big', res(2))];
    expect(ids(pickCapacityVictims(res(1.5, 8192, 0, 100), held))).toEqual(['big']);
  });

  it('among as few, prefers stopping, then pending, starting, running, then the newest, then id', () => {
    const same = res(1);
    const cap = res(2, 8192, 0, 100);
    expect(ids(pickCapacityVictims(cap, [replica('run', same), replica('stop', same, 'stopping'), replica('start', same, 'starting')]))).toEqual(['stop']);
    expect(ids(pickCapacityVictims(cap, [replica('run', same), replica('pend', same, 'pending'), replica('start', same, 'starting')]))).toEqual(['pend']);
    expect(ids(pickCapacityVictims(cap, [replica('old', same, 'running', 1), replica('new', same, 'running', 5), replica('mid', same, 'running', 3)]))).toEqual(['new']);
    expect(ids(pickCapacityVictims(cap, [replica('b', same), replica('a', same), replica('c', same)]))).toEqual(['a']);
  });

  it('covers every resource that is over, each by as much as needed', () => {
    // Memory is over by 1024 and GPUs by 1: the GPU replica frees one, not enough memory on its own.
    const held = [replica('gpu', res(0.5, 512, 1)), replica('mem', res(0.5, 1024)), replica('both', res(0.5, 2048, 1))];
    expect(ids(pickCapacityVictims(res(4, 2560, 1, 100), held))).toEqual(['both']);
  });

  it('a node shrunk to nothing gives up everything', () => {
    const held = [replica('a', res(0.5)), replica('b', res(1))];
    expect(ids(pickCapacityVictims(res(0.1, 1, 0, 0), held)).sort()).toEqual(['a', 'b']);
  });

  it('always leaves a set that fits, of the least possible size, the same whatever the input order', () => {
    const replicaArb = fc.record({
      cpu: fc.integer({ min: 1, max: 8 }).map((x) => x / 2),
      mem: fc.integer({ min: 1, max: 8 }).map((x) => x * 512),
      gpu: fc.integer({ min: 0, max: 2 }),
      status: fc.constantFrom<ReplicaStatus>('pending', 'starting', 'running', 'stopping'),
      minute: fc.integer({ min: 0, max: 5 }),
    });
    fc.assert(
      fc.property(fc.array(replicaArb, { maxLength: 8 }), fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 4 }), (specs, cpu, memK, gpu) => {
        const held = specs.map((s, i) => replica(`r${i}`, res(s.cpu, s.mem, s.gpu), s.status, s.minute));
        const cap = res(cpu / 2, memK * 512, gpu, 1000);
        const victims = pickCapacityVictims(cap, held);
        const kept = held.filter((r) => !victims.includes(r));
        expect(fits(cap, sum(kept))).toBe(true);
        // Brute force: no smaller set of victims would do.
        let fewest = held.length;
        for (let mask = 0; mask < 1 << held.length; mask++) {
          const keep = held.filter((_, i) => !(mask & (1 << i)));
          const size = held.length - keep.length;
          if (size < fewest && fits(cap, sum(keep))) fewest = size;
        }
        expect(victims).toHaveLength(fewest);
        expect(ids(pickCapacityVictims(cap, [...held].reverse()))).toEqual(ids(victims));
      }),
      { numRuns: 300 },
    );
  });

  it('a node with many replicas still gets a set that fits (greedy beyond the search budget)', () => {
    const held = Array.from({ length: 80 }, (_, i) => replica(`r${String(i).padStart(2, '0')}`, res(0.5 + (i % 3) * 0.5, 512 + (i % 5) * 512)));
    const cap = res(20, 40_000, 0, 1000);
    const victims = pickCapacityVictims(cap, held);
    expect(fits(cap, sum(held.filter((r) => !victims.includes(r))))).toBe(true);
    expect(ids(pickCapacityVictims(cap, [...held].reverse()))).toEqual(ids(victims));
  });
});
