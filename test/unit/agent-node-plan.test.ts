import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Assignment, ReportedStatus } from '../../src/agent/client.js';
import { planNodeActions, type NodeAction } from '../../src/agent/node-plan.js';
import type { ContainerState, ContainerStatus } from '../../src/agent/runtime.js';

const resources = { cpuCores: 1, memoryMb: 512, gpuUnits: 0, storageGb: 1 };
const run = (replicaId: string): Assignment => ({ replicaId, deploymentId: 'd1', revision: 1, image: 'nginx:1', resources, command: null, env: null, desired: 'run' });
const stop = (replicaId: string): Assignment => ({ ...run(replicaId), desired: 'stop' });
const container = (replicaId: string, state: ContainerState, containerId = `c-${replicaId}`, reason: string | null = null): ContainerStatus => ({
  containerId,
  replicaId,
  state,
  reason,
});

function plan(
  assignments: Assignment[],
  containers: ContainerStatus[] = [],
  reported: Record<string, ReportedStatus> = {},
  busy: string[] = [],
): { actions: readonly NodeAction[]; forget: readonly string[] } {
  return planNodeActions({ assignments, containers, reported: new Map(Object.entries(reported)), busy: new Set(busy) });
}

describe('planNodeActions', () => {
  it('starts a run assignment that has no container', () => {
    expect(plan([run('r1')]).actions).toEqual([{ kind: 'start', assignment: run('r1') }]);
  });

  it('starts again after an agent restart forgot everything, unless it reported the replica failed', () => {
    expect(plan([run('r1')], [], { r1: 'running' }).actions).toEqual([{ kind: 'start', assignment: run('r1') }]);
    expect(plan([run('r1')], [], { r1: 'failed' }).actions).toEqual([]);
  });

  it('re-reports a running container the agent has not reported (after a restart with a surviving runtime)', () => {
    expect(plan([run('r1')], [container('r1', 'running')]).actions).toEqual([
      { kind: 'report', replicaId: 'r1', status: 'running', containerId: 'c-r1', reason: null },
    ]);
    expect(plan([run('r1')], [container('r1', 'running')], { r1: 'running' }).actions).toEqual([]);
  });

  it('reports a crashed container failed, once', () => {
    const crashed = container('r1', 'failed', 'c1', 'SimulatedCrash: exit 137');
    expect(plan([run('r1')], [crashed], { r1: 'running' }).actions).toEqual([
      { kind: 'report', replicaId: 'r1', status: 'failed', containerId: 'c1', reason: 'SimulatedCrash: exit 137' },
    ]);
    expect(plan([run('r1')], [crashed], { r1: 'failed' }).actions).toEqual([]);
  });

  it('leaves a container that is still starting alone', () => {
    expect(plan([run('r1')], [container('r1', 'starting')], { r1: 'starting' }).actions).toEqual([]);
  });

  it('stops and reports a stop assignment, and only reports when there is nothing to stop', () => {
    expect(plan([stop('r1')], [container('r1', 'running')], { r1: 'running' }).actions).toEqual([
      { kind: 'stop', replicaId: 'r1', containerIds: ['c-r1'], report: true },
    ]);
    expect(plan([stop('r1')]).actions).toEqual([{ kind: 'stop', replicaId: 'r1', containerIds: [], report: true }]);
    expect(plan([stop('r1')], [], { r1: 'stopped' }).actions).toEqual([]);
  });

  it('removes containers of replicas no longer assigned and forgets them', () => {
    const result = plan([], [container('gone', 'running')], { gone: 'running' });
    expect(result.actions).toEqual([{ kind: 'remove', replicaId: 'gone', containerIds: ['c-gone'] }]);
    expect(result.forget).toEqual(['gone']);
  });

  it('never touches a replica with an operation in flight', () => {
    const result = plan([run('r1'), stop('r2')], [container('r2', 'running'), container('r3', 'running')], { r3: 'running' }, ['r1', 'r2', 'r3']);
    expect(result).toEqual({ actions: [], forget: [] });
  });

  it('keeps the running container of a replica and removes duplicates', () => {
    const result = plan([run('r1')], [container('r1', 'failed', 'old'), container('r1', 'running', 'new')], { r1: 'running' });
    expect(result.actions).toEqual([{ kind: 'remove', replicaId: 'r1', containerIds: ['old'] }]);
  });

  it('property: at most one action per replica, no start over an existing container, busy replicas untouched', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const arbitrary = fc.record({
      assignments: fc.array(fc.record({ id: fc.constantFrom(...ids), desired: fc.constantFrom('run' as const, 'stop' as const) })),
      containers: fc.array(fc.record({ id: fc.constantFrom(...ids), state: fc.constantFrom<ContainerState>('starting', 'running', 'failed') }), { maxLength: 6 }),
      reported: fc.dictionary(fc.constantFrom(...ids), fc.constantFrom<ReportedStatus>('starting', 'running', 'stopped', 'failed')),
      busy: fc.subarray(ids),
    });
    fc.assert(
      fc.property(arbitrary, (input) => {
        const containers = input.containers.map((c, i) => container(c.id, c.state, `c${i}`));
        const result = plan(
          input.assignments.map((a) => (a.desired === 'run' ? run(a.id) : stop(a.id))),
          containers,
          input.reported,
          input.busy,
        );
        const touched = result.actions.map((a) => (a.kind === 'start' ? a.assignment.replicaId : a.replicaId));
        const nonRemove = result.actions.filter((a) => a.kind !== 'remove').map((a) => (a.kind === 'start' ? a.assignment.replicaId : a.replicaId));
        expect(new Set(nonRemove).size).toBe(nonRemove.length);
        for (const id of touched) expect(input.busy).not.toContain(id);
        for (const id of result.forget) expect(input.busy).not.toContain(id);
        for (const action of result.actions) {
          if (action.kind === 'start') expect(containers.some((c) => c.replicaId === action.assignment.replicaId)).toBe(false);
        }
        // Every container ends up with at most one owner action.
        const removed = result.actions.flatMap((a) => (a.kind === 'remove' || a.kind === 'stop' ? a.containerIds : []));
        expect(new Set(removed).size).toBe(removed.length);
      }),
      { numRuns: 500 },
    );
  });
});
