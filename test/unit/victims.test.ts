import { describe, expect, it } from 'vitest';
import { ZERO_RESOURCES } from '../../src/domain/resources.js';
import { pickVictims } from '../../src/domain/victims.js';
import { ofFirstRevision } from '../support/domain.js';
import type { Replica, ReplicaStatus } from '../../src/domain/types.js';

const replica = (id: string, status: ReplicaStatus, nodeId: string | null, createdAtSec = 0): Replica => ({
  id,
  status,
  nodeId,
  createdAt: new Date(createdAtSec * 1000),
  reason: null,
  replaced: false,
  ...ofFirstRevision(ZERO_RESOURCES),
});
const ids = (rs: readonly Replica[]) => rs.map((r) => r.id);

describe('pickVictims', () => {
  it('takes unscheduled, then pending, starting, running', () => {
    const rs = [
      replica('run', 'running', 'n1', 9),
      replica('start', 'starting', 'n2', 1),
      replica('pend', 'pending', 'n3', 1),
      replica('unsched', 'pending', null, 0),
    ];
    expect(ids(pickVictims(rs, 4))).toEqual(['unsched', 'pend', 'start', 'run']);
  });

  it('never picks inactive replicas and stops at what is available', () => {
    const rs = [replica('a', 'stopping', 'n1'), replica('b', 'failed', 'n1'), replica('c', 'stopped', null), replica('d', 'running', 'n1')];
    expect(ids(pickVictims(rs, 3))).toEqual(['d']);
    expect(pickVictims(rs, 0)).toEqual([]);
  });

  it('prefers the node holding the most replicas, re-counted after each pick', () => {
    const rs = [
      replica('a1', 'running', 'a', 1),
      replica('a2', 'running', 'a', 2),
      replica('a3', 'running', 'a', 3),
      replica('b1', 'running', 'b', 4),
      replica('b2', 'running', 'b', 5),
      replica('c1', 'running', 'c', 6),
    ];
    // a has 3: take its newest; then a and b tie at 2, the newest of them (b2) goes.
    expect(ids(pickVictims(rs, 2))).toEqual(['a3', 'b2']);
  });

  it('breaks remaining ties by newest, then id', () => {
    const rs = [replica('y', 'running', 'n1', 5), replica('x', 'running', 'n2', 5), replica('old', 'running', 'n3', 1)];
    expect(ids(pickVictims(rs, 3))).toEqual(['x', 'y', 'old']);
  });
});
