import { describe, expect, it } from 'vitest';
import { DEFAULT_PLANNER_CONFIG, isEmptyPlan, planDeployment } from '../../src/domain/planner.js';
import { applyPlan } from '../support/apply-plan.js';
import { firstRevision, ofFirstRevision } from '../support/domain.js';
import type { PlannerInput } from '../../src/domain/planner.js';
import { ZERO_RESOURCES, addResources } from '../../src/domain/resources.js';
import { isAllocating } from '../../src/domain/types.js';
import type { Deployment, Node, NodeStatus, Replica, ReplicaStatus, Resources } from '../../src/domain/types.js';

const NOW = new Date('2025-01-01T00:00:00Z');
const NEED: Resources = { cpuCores: 1, memoryMb: 1024, gpuUnits: 0, storageGb: 1 };
const BIG: Resources = { cpuCores: 16, memoryMb: 16384, gpuUnits: 0, storageGb: 100 };
const times = (n: number, r: Resources): Resources => ({ cpuCores: r.cpuCores * n, memoryMb: r.memoryMb * n, gpuUnits: r.gpuUnits * n, storageGb: r.storageGb * n });

const deployment = (over: Partial<Deployment> = {}): Deployment => ({
  id: 'd1',
  name: 'web',
  status: 'pending',
  statusReason: null,
  targetReplicas: 3,
  deleted: false,
  resources: NEED,
  restartCount: 0,
  backoffUntil: null,
  everRunning: false,
  ...firstRevision,
  ...over,
});
const replica = (id: string, status: ReplicaStatus, nodeId: string | null, over: Partial<Replica> = {}): Replica => ({
  id,
  status,
  nodeId,
  createdAt: new Date(NOW.getTime() - 60_000),
  reason: null,
  replaced: false,
  ...ofFirstRevision(NEED),
  ...over,
});
const node = (id: string, capacity: Resources = BIG, status: NodeStatus = 'ready'): Node => ({ id, name: id, status, capacity, allocated: ZERO_RESOURCES });

/** Builds a consistent input: each node's `allocated` is exactly what this deployment's replicas hold on it. */
const input = (d: Deployment, replicas: readonly Replica[], nodes: readonly Node[], now = NOW): PlannerInput => ({
  deployment: d,
  replicas,
  nodes: nodes.map((n) => ({
    ...n,
    allocated: replicas.filter((r) => r.nodeId === n.id && isAllocating(r.status)).reduce((a) => addResources(a, d.resources), n.allocated),
  })),
  now,
  config: DEFAULT_PLANNER_CONFIG,
});

/** A planned create or bind of a revision-1 replica needing NEED. */
const created = (nodeId: string | null) => ({ nodeId, revision: 1, resources: NEED });
const binding = (replicaId: string, nodeId: string) => ({ replicaId, nodeId, resources: NEED });

const expectSettled = (next: PlannerInput) => expect(isEmptyPlan(planDeployment(next))).toBe(true);

describe('planDeployment: scaling', () => {
  it('scales 0 → 3, one per node, and reports the deployment scheduled', () => {
    const start = input(deployment(), [], [node('n1'), node('n2'), node('n3')]);
    const plan = planDeployment(start);
    expect(plan.create).toEqual([created('n1'), created('n2'), created('n3')]);
    expect(plan.createReason).toBeNull();
    expect(plan.deployment).toEqual({ status: 'scheduled' });
    expect(plan.history).toEqual([{ oldStatus: 'pending', newStatus: 'scheduled', reason: 'All replicas placed' }]);
    expect(plan.requeueAfterMs).toBeNull();
    const next = applyPlan(start, plan, ['a', 'b', 'c']);
    expect(next.replicas.map((r) => [r.id, r.status, r.nodeId])).toEqual([['a', 'pending', 'n1'], ['b', 'pending', 'n2'], ['c', 'pending', 'n3']]);
    expect(next.nodes.map((n) => n.allocated)).toEqual([NEED, NEED, NEED]);
    expectSettled(next);
  });

  it('scales 3 → 1 stopping starting before running, the fuller node first, newest first', () => {
    const rs = [
      replica('old', 'running', 'n1', { createdAt: new Date(1000) }),
      replica('new', 'running', 'n1', { createdAt: new Date(2000) }),
      replica('other', 'running', 'n2', { createdAt: new Date(3000) }),
      replica('boot', 'starting', 'n2', { createdAt: new Date(0) }),
    ];
    const start = input(deployment({ status: 'scheduled', targetReplicas: 1 }), rs, [node('n1'), node('n2')]);
    const plan = planDeployment(start);
    expect(plan.stop).toEqual([
      { replicaId: 'boot', to: 'stopping', reason: 'ScaledDown' },
      { replicaId: 'new', to: 'stopping', reason: 'ScaledDown' },
      { replicaId: 'other', to: 'stopping', reason: 'ScaledDown' },
    ]);
    expect(plan.create).toEqual([]);
    expect(plan.deployment).toEqual({ status: 'running', everRunning: true });
    expect(plan.history).toEqual([{ oldStatus: 'scheduled', newStatus: 'running', reason: 'All replicas running' }]);
    expectSettled(applyPlan(start, plan));
  });

  it('records a generation it has not observed yet, with the actions for it, and nothing more once observed', () => {
    const rs = [replica('a', 'running', 'n1'), replica('b', 'running', 'n1'), replica('c', 'running', 'n1')];
    // Scaled 3 → 2 by the user (generation 2): the stop and the observation are one plan.
    const start = input(deployment({ status: 'running', targetReplicas: 2, everRunning: true, generation: 2, observedGeneration: 1 }), rs, [node('n1')]);
    const plan = planDeployment(start);
    expect(plan.stop).toHaveLength(1);
    expect(plan.deployment).toEqual({ observedGeneration: 2 });
    const next = applyPlan(start, plan);
    expect(next.deployment.observedGeneration).toBe(2);
    expectSettled(next);
    // A spec observed already that needs nothing: an empty plan, no write.
    expect(isEmptyPlan(planDeployment(input(deployment({ status: 'running', targetReplicas: 3, everRunning: true }), rs, [node('n1')])))).toBe(true);
  });

  it('stops an unscheduled victim straight away, a scheduled one through stopping', () => {
    const rs = [replica('placed', 'pending', 'n1'), replica('nowhere', 'pending', null), replica('keep', 'running', 'n1')];
    const plan = planDeployment(input(deployment({ targetReplicas: 1 }), rs, [node('n1')]));
    expect(plan.stop).toEqual([
      { replicaId: 'nowhere', to: 'stopped', reason: 'ScaledDown' },
      { replicaId: 'placed', to: 'stopping', reason: 'ScaledDown' },
    ]);
  });
});

describe('planDeployment: capacity', () => {
  it('creates unschedulable replicas with the reason, records it once, and binds them when capacity appears', () => {
    const small = node('n1', times(2, NEED));
    const start = input(deployment({ targetReplicas: 3 }), [], [small]);
    const plan = planDeployment(start);
    const reason = 'Unschedulable: 0/1 nodes are available: 1 insufficient cpu';
    expect(plan.create).toEqual([created('n1'), created('n1'), created(null)]);
    expect(plan.createReason).toBe(reason);
    expect(plan.deployment).toEqual({ statusReason: reason });
    expect(plan.history).toEqual([]);

    const waiting = applyPlan(start, plan, ['a', 'b', 'c']);
    expect(waiting.replicas.find((r) => r.id === 'c')?.reason).toBe(reason);
    expectSettled(waiting);

    const grown = { ...waiting, nodes: [{ ...waiting.nodes[0]!, capacity: times(3, NEED) }] };
    const bindPlan = planDeployment(grown);
    expect(bindPlan.bind).toEqual([binding('c', 'n1')]);
    expect(bindPlan.create).toEqual([]);
    expect(bindPlan.deployment).toEqual({ status: 'scheduled', statusReason: null });
    expect(bindPlan.history).toEqual([{ oldStatus: 'pending', newStatus: 'scheduled', reason: 'All replicas placed' }]);
    const bound = applyPlan(grown, bindPlan);
    expect(bound.replicas.find((r) => r.id === 'c')).toMatchObject({ nodeId: 'n1', reason: null });
    expect(bound.nodes[0]!.allocated).toEqual(times(3, NEED));
    expectSettled(bound);
  });

  it('counts stopping replicas as holding their node, and resources of other deployments', () => {
    const rs = [replica('going', 'stopping', 'n1'), replica('up', 'running', 'n1')];
    const start = input(deployment({ targetReplicas: 2, status: 'running' }), rs, [
      node('n1', times(2, NEED)),
      { ...node('n2', times(2, NEED)), allocated: times(1.5, NEED) },
    ]);
    const plan = planDeployment(start);
    expect(plan.create).toEqual([created(null)]);
    expect(plan.createReason).toBe('Unschedulable: 0/2 nodes are available: 2 insufficient cpu');
    expect(plan.deployment).toMatchObject({ status: 'pending' });
    expect(plan.history[0]).toEqual({ oldStatus: 'running', newStatus: 'pending', reason: plan.createReason });
  });

  it('binds and creates in one plan without overcommitting', () => {
    const rs = [replica('waiting', 'pending', null, { reason: 'Unschedulable: old' })];
    const start = input(deployment({ targetReplicas: 3 }), rs, [node('n1', times(2, NEED))]);
    const plan = planDeployment(start);
    expect(plan.bind).toEqual([binding('waiting', 'n1')]);
    expect(plan.create).toEqual([created('n1'), created(null)]);
    expect(applyPlan(start, plan).nodes[0]!.allocated).toEqual(times(2, NEED));
  });

  it('moves replicas off draining nodes and never places on them', () => {
    const rs = [replica('a', 'running', 'drain'), replica('b', 'running', 'n1')];
    const start = input(deployment({ targetReplicas: 2, status: 'running', everRunning: true }), rs, [node('drain', BIG, 'draining'), node('n1')]);
    const plan = planDeployment(start);
    expect(plan.stop).toEqual([{ replicaId: 'a', to: 'stopping', reason: 'NodeDraining' }]);
    expect(plan.create).toEqual([created('n1')]);
    expect(plan.deployment).toEqual({ status: 'scheduled' });
    expectSettled(applyPlan(start, plan));
  });
});

describe('planDeployment: stopped, deleted and failed deployments', () => {
  const rs = [
    replica('unsched', 'pending', null),
    replica('placed', 'pending', 'n1'),
    replica('up', 'running', 'n1'),
    replica('dead', 'failed', 'n1'),
    replica('done', 'stopped', 'n1'),
  ];
  it.each([
    [{ status: 'stopped' as const }, 'DeploymentStopped'],
    [{ status: 'running' as const, deleted: true }, 'DeploymentDeleted'],
    [{ status: 'deleted' as const }, 'DeploymentDeleted'],
    [{ status: 'failed' as const }, 'DeploymentFailed'],
  ])('%o stops every active replica with %s and creates nothing', (over, reason) => {
    const start = input(deployment({ ...over, everRunning: true }), rs, [node('n1')]);
    const plan = planDeployment(start);
    expect(plan.stop).toEqual([
      { replicaId: 'unsched', to: 'stopped', reason },
      { replicaId: 'placed', to: 'stopping', reason },
      { replicaId: 'up', to: 'stopping', reason },
    ]);
    expect(plan.create).toEqual([]);
    expect(plan.bind).toEqual([]);
    // The failure is settled, uncounted: no replacement, no restart counted, nothing left to find.
    expect(plan.markReplaced).toEqual(['dead']);
    expect(plan.deployment).toEqual({});
    expect(plan.history).toEqual([]);
    expectSettled(applyPlan(start, plan));
  });

  it('a failure settled while stopped is not counted when the deployment starts again', () => {
    const stopped = input(deployment({ status: 'stopped', restartCount: 2 }), [replica('dead', 'failed', 'n1')], [node('n1')]);
    const settled = applyPlan(stopped, planDeployment(stopped));
    const started = { ...settled, deployment: { ...settled.deployment, status: 'pending' as const } };
    const plan = planDeployment(started);
    expect(plan.markReplaced).toEqual([]);
    expect(plan.deployment.restartCount).toBeUndefined();
    expect(plan.deployment.backoffUntil).toBeUndefined();
    expect(plan.create).toHaveLength(3);
  });
});

describe('planDeployment: failures', () => {
  const failed = (id: string, reason = 'Exited with code 1') => replica(id, 'failed', 'n1', { reason });

  it('replaces a failure after a back-off, then resets the count once running', () => {
    const start = input(deployment({ status: 'running', targetReplicas: 2, everRunning: true }), [replica('ok', 'running', 'n1'), failed('f1')], [node('n1')]);
    const plan = planDeployment(start);
    const reason = 'CrashLoopBackOff: back-off 10s restarting failed replicas';
    expect(plan.markReplaced).toEqual(['f1']);
    expect(plan.create).toEqual([]);
    expect(plan.requeueAfterMs).toBe(10_000);
    expect(plan.deployment).toEqual({ status: 'pending', statusReason: reason, restartCount: 1, backoffUntil: new Date(NOW.getTime() + 10_000) });
    expect(plan.history).toEqual([{ oldStatus: 'running', newStatus: 'pending', reason }]);

    const held = applyPlan(start, plan);
    const again = planDeployment({ ...held, now: new Date(NOW.getTime() + 4_000) });
    expect(isEmptyPlan(again)).toBe(true);
    expect(again.requeueAfterMs).toBe(6_000);

    const later = { ...held, now: new Date(NOW.getTime() + 10_000) };
    const replace = planDeployment(later);
    expect(replace.create).toEqual([created('n1')]);
    expect(replace.deployment).toEqual({ status: 'scheduled', statusReason: null });
    const started = applyPlan(later, replace, ['f2']);

    const up = { ...started, replicas: started.replicas.map((r) => (r.id === 'f2' ? { ...r, status: 'running' as const } : r)) };
    const runPlan = planDeployment(up);
    expect(runPlan.deployment).toEqual({ status: 'running', restartCount: 0, backoffUntil: null });
    expect(runPlan.history).toEqual([{ oldStatus: 'scheduled', newStatus: 'running', reason: 'All replicas running' }]);
  });

  it('doubles the back-off per counted failure up to the maximum', () => {
    const at = (restartCount: number, fails: number) =>
      planDeployment(
        input(
          deployment({ restartCount, everRunning: true, targetReplicas: fails }),
          Array.from({ length: fails }, (_, i) => failed(`f${i}`)),
          [node('n1')],
        ),
      );
    expect(at(3, 1).deployment.backoffUntil).toEqual(new Date(NOW.getTime() + 80_000));
    expect(at(0, 2).deployment.backoffUntil).toEqual(new Date(NOW.getTime() + 20_000));
    expect(at(9, 1).deployment.backoffUntil).toEqual(new Date(NOW.getTime() + 300_000));
    expect(at(2000, 1).deployment.backoffUntil).toEqual(new Date(NOW.getTime() + 300_000));
  });

  it('fails the deployment at the threshold when no replica ever ran, stopping the rest', () => {
    const rs = [failed('f'), replica('p', 'pending', 'n1'), replica('u', 'pending', null)];
    const start = input(deployment({ restartCount: 4, status: 'scheduled' }), rs, [node('n1')]);
    const plan = planDeployment(start);
    const reason = 'CrashLoopBackOff: 5 replicas failed and none ever ran';
    expect(plan.deployment).toMatchObject({ status: 'failed', statusReason: reason, restartCount: 5 });
    expect(plan.history).toEqual([{ oldStatus: 'scheduled', newStatus: 'failed', reason }]);
    expect(plan.markReplaced).toEqual(['f']);
    expect(plan.stop).toEqual([
      { replicaId: 'p', to: 'stopping', reason: 'DeploymentFailed' },
      { replicaId: 'u', to: 'stopped', reason: 'DeploymentFailed' },
    ]);
    expect(plan.create).toEqual([]);
    expectSettled(applyPlan(start, plan));
  });

  it('keeps retrying past the threshold once any replica has run, including one running now', () => {
    const rs = [failed('f'), replica('r', 'running', 'n1')];
    const plan = planDeployment(input(deployment({ restartCount: 4, status: 'running', targetReplicas: 2 }), rs, [node('n1')]));
    expect(plan.deployment).toMatchObject({ status: 'pending', restartCount: 5, everRunning: true });
    expect(plan.stop).toEqual([]);
  });

  it('replaces NodeLost replicas at once without counting them', () => {
    const rs = [failed('lost', 'NodeLost'), replica('r', 'running', 'n2')];
    const start = input(deployment({ status: 'running', targetReplicas: 2, restartCount: 4, everRunning: true }), rs, [node('n1', BIG, 'not_ready'), node('n2'), node('n3')]);
    const plan = planDeployment(start);
    expect(plan.markReplaced).toEqual(['lost']);
    expect(plan.create).toEqual([created('n3')]);
    expect(plan.requeueAfterMs).toBeNull();
    expect(plan.deployment).toEqual({ status: 'scheduled' });
    expectSettled(applyPlan(start, plan));
  });
});

describe('planDeployment: old replicas lost during a rollout', () => {
  // Rolling from revision 1 (NEED, complete: the stable one) to revision 2, whose replicas fit on no node.
  const HUGE: Resources = { cpuCores: 64, memoryMb: 1024, gpuUnits: 0, storageGb: 1 };
  const rolling = (over: Partial<Deployment> = {}) =>
    deployment({
      status: 'running',
      targetReplicas: 2,
      everRunning: true,
      revision: 2,
      templateRevision: 2,
      resources: HUGE,
      strategy: { ...firstRevision.strategy, maxSurge: 1, maxUnavailable: 0 },
      rollout: { state: 'progressing', reason: 'RolloutBlocked: Unschedulable', progressAt: NOW, bestAvailable: 0, leastOld: 2, failures: 0 },
      ...over,
    });
  const running = (id: string, nodeId: string) => replica(id, 'running', nodeId, { startedAt: new Date(NOW.getTime() - 60_000) });
  const lost = (id: string) => replica(id, 'failed', null, { reason: 'NodeLost' });

  it('brings a lost old replica back with the last template that completed, before any new one takes its room', () => {
    const rs = [running('old-1', 'n1'), lost('old-2'), replica('new-1', 'pending', null, { revision: 2, templateRevision: 2, resources: HUGE })];
    const plan = planDeployment(input(rolling(), rs, [node('n1'), node('n2')]));
    expect(plan.markReplaced).toEqual(['old-2']);
    // Availability was 1 of a floor of 2 − 0: one replica of revision 1 comes back; the surge is the pending new one.
    expect(plan.create).toEqual([{ nodeId: 'n2', revision: 1, resources: NEED }]);
    expect(plan.step).toMatchObject({ created: 0 });
  });

  it('restores nothing while availability holds, nor when the template that completed is the one rolled to', () => {
    const rs = [running('old-1', 'n1'), running('old-2', 'n2'), replica('new-1', 'pending', null, { revision: 2, templateRevision: 2, resources: HUGE })];
    expect(planDeployment(input(rolling(), rs, [node('n1'), node('n2')])).create).toEqual([]);
    // A rollback in progress: revision 3 carries the stable template 1; the lost replica was of the failed template.
    const back = rolling({ revision: 3, templateRevision: 1, resources: NEED, stableRevision: 1, stableTemplateRevision: 1 });
    const bad = [replica('bad-1', 'running', 'n1', { revision: 2, templateRevision: 2, startedAt: new Date(NOW.getTime() - 60_000) }), replica('bad-2', 'failed', null, { reason: 'NodeLost', revision: 2, templateRevision: 2, resources: HUGE })];
    const plan = planDeployment(input(back, bad, [node('n1'), node('n2')]));
    expect(plan.create.length).toBeGreaterThan(0);
    expect(plan.create.every((c) => c.revision === 3)).toBe(true);
  });
});

describe('applyPlan and isEmptyPlan', () => {
  it('gives generated ids that do not collide and marks failures replaced', () => {
    const rs = [replica('d1-r1', 'failed', 'n1', { reason: 'NodeLost' })];
    const start = input(deployment({ targetReplicas: 2 }), rs, [node('n1')]);
    const next = applyPlan(start, planDeployment(start));
    const ids = next.replicas.map((r) => r.id);
    expect(new Set(ids).size).toBe(3);
    expect(next.replicas[0]!.replaced).toBe(true);
    expect(next.replicas.slice(1).every((r) => r.createdAt === NOW && r.status === 'pending')).toBe(true);
  });

  it('treats a plan that only requeues as empty, and a patch alone as not', () => {
    const base = { create: [], createReason: null, bind: [], stop: [], markReplaced: [], deployment: {}, history: [], requeueAfterMs: 5, rollbackTo: null, step: null };
    expect(isEmptyPlan(base)).toBe(true);
    expect(isEmptyPlan({ ...base, deployment: { everRunning: true } })).toBe(false);
  });
});
