import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PLANNER_CONFIG, isEmptyPlan, planDeployment } from '../../src/domain/planner.js';
import { applyPlan } from '../support/apply-plan.js';
import { firstRevision, ofFirstRevision } from '../support/domain.js';
import type { Plan, PlannerInput } from '../../src/domain/planner.js';
import { RESOURCE_KEYS, ZERO_RESOURCES, addResources, fits, nodeFreeCapacity } from '../../src/domain/resources.js';
import { DEPLOYMENT_STATUSES, NODE_STATUSES, REPLICA_STATUSES, isActive, isAllocating } from '../../src/domain/types.js';
import type { Deployment, Node, Replica, Resources } from '../../src/domain/types.js';

const NOW = new Date('2025-01-01T00:00:00Z').getTime();
// PROPERTY_RUNS=20000 for a deeper search when changing the planner.
const RUNS = { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) };
const LIVE = new Set(['pending', 'scheduled', 'running']);

const resources = (max: { cpu: number; mem: number; gpu: number; disk: number }) =>
  fc.record({
    cpuCores: fc.integer({ min: 0, max: max.cpu * 4 }).map((q) => q / 4),
    memoryMb: fc.integer({ min: 0, max: max.mem }).map((m) => m * 256),
    gpuUnits: fc.integer({ min: 0, max: max.gpu }),
    storageGb: fc.integer({ min: 0, max: max.disk }),
  });

const needArb = resources({ cpu: 2, mem: 4, gpu: 1, disk: 5 });

const scaled = (r: Resources, k: number): Resources => ({
  cpuCores: r.cpuCores * k,
  memoryMb: r.memoryMb * k,
  gpuUnits: r.gpuUnits * k,
  storageGb: r.storageGb * k,
});

/**
 * Nodes with some usage by other deployments (`allocated` at most capacity). Half are sized in whole
 * replicas of `need`, so plans often fill a node exactly, where an overcommit would show.
 */
const fleetArb = (need: Resources) =>
  fc.array(
    fc.record({
      status: fc.constantFrom(...NODE_STATUSES, 'ready', 'ready'),
      capacity: fc.oneof(resources({ cpu: 8, mem: 32, gpu: 2, disk: 20 }), fc.integer({ min: 0, max: 4 }).map((k) => scaled(need, k))),
      used: fc.integer({ min: 0, max: 4 }),
    }),
    { maxLength: 5 },
  ).map((nodes) =>
    nodes.map(({ status, capacity, used }) => ({
      status,
      capacity,
      allocated: { ...ZERO_RESOURCES, cpuCores: Math.floor(capacity.cpuCores * used) / 4, memoryMb: Math.floor((capacity.memoryMb * used) / 4 / 256) * 256 },
    })),
  );

const replicaArb = (nodeCount: number) =>
  fc.record({
    status: fc.constantFrom(...REPLICA_STATUSES, 'pending', 'running'),
    node: fc.option(fc.integer({ min: 0, max: nodeCount }), { nil: null, freq: 2 }), // nodeCount itself = a node no longer listed
    ageSec: fc.integer({ min: 0, max: 600 }),
    reason: fc.constantFrom(null, 'NodeLost', 'Exited with code 1'),
    replaced: fc.boolean(),
  });

const deploymentArb = (statuses: readonly Deployment['status'][], deleted: fc.Arbitrary<boolean>) =>
  fc.record({
    status: fc.constantFrom(...statuses),
    deleted,
    targetReplicas: fc.integer({ min: 0, max: 6 }),
    restartCount: fc.integer({ min: 0, max: 6 }),
    backoffSec: fc.option(fc.integer({ min: -400, max: 400 }), { nil: null }),
    everRunning: fc.boolean(),
  });

interface Scenario {
  readonly input: PlannerInput;
  /** Per node, what other deployments hold: `allocated` must always be this plus our allocating replicas. */
  readonly others: ReadonlyMap<string, Resources>;
}

const scenarioArb = (opts: { statuses?: readonly Deployment['status'][]; deleted?: fc.Arbitrary<boolean>; ample?: boolean } = {}) =>
  fc
    .tuple(needArb, deploymentArb(opts.statuses ?? DEPLOYMENT_STATUSES, opts.deleted ?? fc.boolean()))
    .chain(([need, d]) => fc.tuple(fc.constant(need), fleetArb(need), fc.constant(d)))
    .chain(([need, fleet, d]) => fc.tuple(fc.constant(need), fc.constant(fleet), fc.constant(d), fc.array(replicaArb(fleet.length), { maxLength: 8 })))
    .map(([need, fleet, d, rawReplicas]): Scenario => {
      // Room for the target plus every generated replica still holding resources (8 + 6 at the largest need).
      const sized = opts.ample
        ? [...fleet, { status: 'ready' as const, capacity: { cpuCores: 28, memoryMb: 14 * 1024, gpuUnits: 14, storageGb: 70 }, allocated: ZERO_RESOURCES }]
        : fleet;
      const others = new Map(sized.map((n, i) => [`n${i}`, n.allocated]));
      const nodes: Node[] = sized.map((n, i) => ({ id: `n${i}`, name: `node-${(i * 7) % 5}-${i}`, ...n }));
      const deployment: Deployment = {
        id: 'd',
        name: 'web',
        status: d.status,
        statusReason: null,
        targetReplicas: d.targetReplicas,
        deleted: d.deleted,
        resources: need,
        restartCount: d.restartCount,
        backoffUntil: d.backoffSec === null ? null : new Date(NOW + d.backoffSec * 1000),
        everRunning: d.everRunning,
        ...firstRevision,
      };
      // Keep the generated world possible: an allocating replica only sits on a node with room for it.
      const replicas = rawReplicas.map((r, i): Replica => {
        let nodeId = r.node === null ? null : `n${r.node}`;
        let status = r.status;
        const host = nodes.findIndex((n) => n.id === nodeId);
        if (host >= 0 && isAllocating(status)) {
          if (fits(nodeFreeCapacity(nodes[host]!), need)) nodes[host] = { ...nodes[host]!, allocated: addResources(nodes[host]!.allocated, need) };
          else status = 'stopped';
        }
        if (nodeId === null && status !== 'pending' && isAllocating(status)) nodeId = `n${sized.length}`;
        return { id: `r${i}`, nodeId, status, createdAt: new Date(NOW - r.ageSec * 1000), reason: r.reason, replaced: status === 'failed' ? r.replaced : false, ...ofFirstRevision(need) };
      });
      return { input: { deployment, replicas, nodes, now: new Date(NOW), config: DEFAULT_PLANNER_CONFIG }, others };
    });

const activeOf = (s: PlannerInput) => s.replicas.filter((r) => isActive(r.status));
const isLive = (d: Deployment) => !d.deleted && LIVE.has(d.status);

const expectWithinCapacity = (before: PlannerInput, plan: Plan, after: PlannerInput, others: ReadonlyMap<string, Resources>) => {
  const ready = new Set(before.nodes.filter((n) => n.status === 'ready').map((n) => n.id));
  for (const target of [...plan.bind.map((b) => b.nodeId), ...plan.create.flatMap((c) => (c.nodeId === null ? [] : [c.nodeId]))]) {
    expect(ready.has(target)).toBe(true);
  }
  after.nodes.forEach((n, i) => {
    const held = after.replicas
      .filter((r) => r.nodeId === n.id && isAllocating(r.status))
      .reduce((sum) => addResources(sum, after.deployment.resources), others.get(n.id)!);
    expect(n.allocated).toEqual(held);
    const prior = before.nodes[i]!;
    for (const k of RESOURCE_KEYS) {
      if (prior.allocated[k] <= prior.capacity[k]) expect(n.allocated[k]).toBeLessThanOrEqual(n.capacity[k]);
      else expect(n.allocated[k]).toBeLessThanOrEqual(prior.allocated[k]);
    }
  });
};

/** Plans and applies until nothing is left to do, jumping the clock to each requested requeue. */
const converge = ({ input, others }: Scenario) => {
  let state = input;
  for (let pass = 0; pass < 10; pass++) {
    const plan = planDeployment(state);
    const next = applyPlan(state, plan);
    expectWithinCapacity(state, plan, next, others);
    state = next;
    if (isEmptyPlan(plan)) {
      if (plan.requeueAfterMs === null) return { state, passes: pass + 1 };
      expect(plan.requeueAfterMs).toBeGreaterThan(0);
      state = { ...state, now: new Date(state.now.getTime() + plan.requeueAfterMs) };
    }
  }
  throw new Error('did not converge in 10 passes');
};

describe('planDeployment properties', () => {
  it('(a) converges to target active replicas for live deployments, none for the others', () => {
    fc.assert(
      fc.property(scenarioArb(), (scenario) => {
        const { state } = converge(scenario);
        expect(activeOf(state).length).toBe(isLive(state.deployment) ? state.deployment.targetReplicas : 0);
      }),
      RUNS,
    );
  });

  it('(a) places every replica and reaches scheduled or running when capacity suffices', () => {
    fc.assert(
      fc.property(scenarioArb({ statuses: ['pending', 'scheduled', 'running'], deleted: fc.constant(false), ample: true }), (scenario) => {
        const { state } = converge(scenario);
        const d = state.deployment;
        if (d.status === 'failed') return;
        const active = activeOf(state);
        expect(active.length).toBe(d.targetReplicas);
        expect(active.every((r) => r.nodeId !== null)).toBe(true);
        expect(d.status).toBe(active.every((r) => r.status === 'running') ? 'running' : 'scheduled');
        expect(d.statusReason).toBeNull();
        if (d.status === 'running') expect([d.restartCount, d.backoffUntil]).toEqual([0, null]);
      }),
      RUNS,
    );
  });

  it('(b) never overcommits a node, and keeps allocation equal to what the replicas hold', () => {
    fc.assert(
      fc.property(scenarioArb(), ({ input, others }) => {
        const plan = planDeployment(input);
        expectWithinCapacity(input, plan, applyPlan(input, plan), others);
      }),
      RUNS,
    );
  });

  it('(c) planning an applied plan again gives an empty plan', () => {
    fc.assert(
      fc.property(scenarioArb(), ({ input }) => {
        const next = applyPlan(input, planDeployment(input));
        const again = planDeployment(next);
        expect(again).toMatchObject({ create: [], bind: [], stop: [], markReplaced: [], history: [], deployment: {} });
        expect(isEmptyPlan(again)).toBe(true);
      }),
      RUNS,
    );
  });

  it('(d) leaves nothing active for stopped or deleted deployments after one plan', () => {
    const stoppedOrDeleted = fc.oneof(
      scenarioArb({ statuses: ['stopped', 'deleted'] }),
      scenarioArb({ deleted: fc.constant(true) }),
    );
    fc.assert(
      fc.property(stoppedOrDeleted, ({ input }) => {
        const plan = planDeployment(input);
        expect(plan.create).toEqual([]);
        expect(plan.bind).toEqual([]);
        expect(activeOf(applyPlan(input, plan))).toEqual([]);
      }),
      RUNS,
    );
  });
});
