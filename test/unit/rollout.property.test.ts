import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PLANNER_CONFIG, planDeployment, type PlannerInput } from '../../src/domain/planner.js';
import { ZERO_RESOURCES } from '../../src/domain/resources.js';
import { resolveFenceposts } from '../../src/domain/strategy.js';
import { rolloutStep } from '../../src/domain/rollout.js';
import { isActive } from '../../src/domain/types.js';
import type { Deployment, Node, Replica, Resources, Strategy } from '../../src/domain/types.js';
import { applyPlan } from '../support/apply-plan.js';
import { firstRevision } from '../support/domain.js';

// PROPERTY_RUNS=20000 for a deeper search when changing the rollout.
const RUNS = { numRuns: Number(process.env.PROPERTY_RUNS ?? 1_000) };
const T0 = new Date('2025-01-01T00:00:00Z').getTime();
const NEED: Resources = { cpuCores: 0.25, memoryMb: 256, gpuUnits: 0, storageGb: 1 };
const BIG: Node = {
  id: 'n1',
  name: 'n1',
  status: 'ready',
  capacity: { cpuCores: 1000, memoryMb: 1_000_000, gpuUnits: 0, storageGb: 10_000 },
  allocated: ZERO_RESOURCES,
};

describe('resolveFenceposts (Kubernetes rounding)', () => {
  it('rounds surge up and unavailable down, and makes unavailable 1 when both are 0', () => {
    const s = (maxSurge: number | string, maxUnavailable: number | string): Strategy => ({ ...firstRevision.strategy, maxSurge, maxUnavailable });
    expect(resolveFenceposts(s('25%', '25%'), 10)).toEqual({ maxSurge: 3, maxUnavailable: 2 });
    expect(resolveFenceposts(s('25%', '25%'), 3)).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    expect(resolveFenceposts(s('0%', '0%'), 3)).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    expect(resolveFenceposts(s(0, 0), 3)).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    expect(resolveFenceposts(s(2, '50%'), 5)).toEqual({ maxSurge: 2, maxUnavailable: 2 });
    expect(resolveFenceposts(s('100%', '100%'), 4)).toEqual({ maxSurge: 4, maxUnavailable: 4 });
  });
});

const countOrPercent = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('0%', '10%', '25%', '50%', '100%'));
const strategyArb = fc.record({
  type: fc.constantFrom('rolling' as const, 'rolling' as const, 'recreate' as const),
  maxSurge: countOrPercent,
  maxUnavailable: countOrPercent,
  minReadySeconds: fc.constantFrom(0, 0, 5),
  progressDeadlineSeconds: fc.constant(600),
  autoRollback: fc.boolean(),
});

interface World {
  input: PlannerInput;
  serial: number;
}

const replica = (id: string, revision: number, templateRevision: number, startedAt: number): Replica => ({
  id,
  nodeId: 'n1',
  status: 'running',
  createdAt: new Date(startedAt),
  startedAt: new Date(startedAt),
  reason: null,
  replaced: false,
  revision,
  templateRevision,
  resources: NEED,
});

/** What the store does with a plan's rollback: a new revision with the stable template, a fresh rollout. */
const rollBack = (d: Deployment, to: number, now: Date): Deployment => ({
  ...d,
  revision: d.revision + 1,
  templateRevision: d.stableTemplateRevision!,
  rollout: { state: 'progressing', reason: null, progressAt: now, bestAvailable: 0, leastOld: null, failures: 0 },
  restartCount: 0,
  backoffUntil: null,
  stableRevision: d.stableRevision === to ? to : d.stableRevision,
});

/**
 * The agents, one tick: some placed replicas start (a bad template's fail instead), stopping ones stop,
 * and time passes. `choices` decides which, so fast-check can shrink a failing run; `everything`
 * (every few ticks) makes them all act, so every run gets somewhere.
 */
const agentsTick = (w: World, choices: readonly boolean[], badTemplate: number | null, advanceMs: number, everything: boolean): World => {
  const now = new Date(w.input.now.getTime() + advanceMs);
  let i = 0;
  const replicas = w.input.replicas.map((r): Replica => {
    const act = everything || (choices[i++ % choices.length] ?? true);
    if (r.status === 'stopping' && act) return { ...r, status: 'stopped' };
    if ((r.status === 'pending' || r.status === 'starting') && r.nodeId !== null && act) {
      return r.templateRevision === badTemplate ? { ...r, status: 'failed', reason: 'Error: exit code 1' } : { ...r, status: 'running', startedAt: now };
    }
    return r;
  });
  return { ...w, input: { ...w.input, now, replicas } };
};

/** N replicas of revision 1 running for an hour, and the PATCH: revision 2, a new template, a fresh rollout. */
const patchedToRevision2 = (target: number, strategy: Strategy): World => {
  const deployment: Deployment = {
    id: 'd',
    name: 'web',
    status: 'running',
    statusReason: null,
    targetReplicas: target,
    deleted: false,
    resources: NEED,
    restartCount: 0,
    backoffUntil: null,
    everRunning: true,
    ...firstRevision,
    strategy,
    revision: 2,
    templateRevision: 2,
    rollout: { state: 'progressing', reason: null, progressAt: new Date(T0), bestAvailable: 0, leastOld: null, failures: 0 },
  };
  const start = Array.from({ length: target }, (_, i) => replica(`old-${i}`, 1, 1, T0 - 3_600_000));
  return { input: { deployment, replicas: start, nodes: [BIG], now: new Date(T0), config: DEFAULT_PLANNER_CONFIG }, serial: 0 };
};

describe('rollouts through the planner (property)', () => {
  it('keep active ≤ N + surge and available ≥ N − unavailable at every step, and end on the new template or on a rollback, never looping', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        strategyArb,
        fc.boolean(),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 4_000 }),
        (target, strategy, bad, choices, tickMs) => {
          let w = patchedToRevision2(target, strategy);
          const { maxSurge, maxUnavailable } = resolveFenceposts(strategy, target);
          const templates: number[] = [2];
          let rollbacks = 0;

          for (let pass = 0; pass < 400; pass++) {
            const plan = planDeployment(w.input);
            const ids = plan.create.map(() => `new-${w.serial++}`);
            const after = applyPlan(w.input, plan, ids);
            const d = w.input.deployment;
            const active = after.replicas.filter((r) => isActive(r.status));
            if (strategy.type === 'rolling') {
              expect(active.length).toBeLessThanOrEqual(target + maxSurge);
              const minReadyMs = d.strategy.minReadySeconds * 1000;
              const available = active.filter((r) => r.status === 'running' && r.startedAt!.getTime() + minReadyMs <= after.now.getTime());
              expect(available.length).toBeGreaterThanOrEqual(target - maxUnavailable);
            }
            // Every replica created runs the desired template.
            for (const c of plan.create) expect(c.revision).toBe(d.revision);
            let next = after.deployment;
            if (plan.rollbackTo !== null) {
              rollbacks++;
              next = rollBack(next, plan.rollbackTo, after.now);
              templates.push(next.templateRevision);
            }
            w = { ...w, input: { ...after, deployment: next } };
            if (next.rollout.state === 'complete' && active.every((r) => r.templateRevision === next.templateRevision)) break;
            if (next.rollout.state === 'failed' && plan.rollbackTo === null && pass > 0) break;
            w = agentsTick(w, choices, bad ? 2 : null, tickMs + 1_000, pass % 3 === 2);
          }
          const d = w.input.deployment;
          // No template loop: at most one rollback, and never back to the template that failed.
          expect(rollbacks).toBeLessThanOrEqual(1);
          if (rollbacks === 1) expect(templates).toEqual([2, 1]);
          if (!bad) {
            expect(d.rollout.state).toBe('complete');
            expect(d.templateRevision).toBe(2);
          } else if (strategy.autoRollback) {
            expect(rollbacks).toBe(1);
            expect(d.rollout.state).toBe('complete');
            expect(d.templateRevision).toBe(1);
          } else {
            expect(d.rollout.state).toBe('failed');
          }
          const active = w.input.replicas.filter((r) => isActive(r.status));
          if (d.rollout.state === 'complete') {
            expect(active).toHaveLength(target);
            expect(active.every((r) => r.templateRevision === d.templateRevision)).toBe(true);
          }
        },
      ),
      RUNS,
    );
  });
});

describe('rollouts while old replicas are lost (property)', () => {
  it('never exceed N + surge, create only the desired or the completed template, and still end on the new template', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        strategyArb.filter((s) => s.type === 'rolling'),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 4 }),
        (target, strategy, choices, lossPasses) => {
          let w = patchedToRevision2(target, strategy);
          const { maxSurge } = resolveFenceposts(strategy, target);
          let restored = 0;
          for (let pass = 0; pass < 400; pass++) {
            const plan = planDeployment(w.input);
            const after = applyPlan(w.input, plan, plan.create.map(() => `new-${w.serial++}`));
            expect(after.replicas.filter((r) => isActive(r.status)).length).toBeLessThanOrEqual(target + maxSurge);
            for (const c of plan.create) expect([2, 1]).toContain(c.revision);
            restored += plan.create.filter((c) => c.revision === 1).length;
            w = { ...w, input: after };
            const d = after.deployment;
            if (d.rollout.state === 'complete' && after.replicas.filter((r) => isActive(r.status)).every((r) => r.templateRevision === 2)) break;
            w = agentsTick(w, choices, null, 1_000, pass % 3 === 2);
            // A node goes: the oldest running old replica is lost with it.
            if (lossPasses.includes(pass)) {
              const victim = w.input.replicas.find((r) => r.status === 'running' && r.templateRevision === 1);
              if (victim) w = { ...w, input: { ...w.input, replicas: w.input.replicas.map((r) => (r === victim ? { ...r, status: 'failed', reason: 'NodeLost' } : r)) } };
            }
          }
          const d = w.input.deployment;
          expect(d.rollout.state).toBe('complete');
          expect(d.templateRevision).toBe(2);
          const active = w.input.replicas.filter((r) => isActive(r.status));
          expect(active).toHaveLength(target);
          expect(active.every((r) => r.templateRevision === 2)).toBe(true);
          // Bring-backs are only ever for losses.
          expect(restored).toBeLessThanOrEqual(lossPasses.length);
        },
      ),
      RUNS,
    );
  });
});

describe('rolloutStep', () => {
  const strategy: Strategy = { ...firstRevision.strategy, maxSurge: 1, maxUnavailable: 0 };
  const at = (id: string, revision: number, status: Replica['status'], nodeId: string | null = 'n1') => ({
    ...replica(id, revision, revision, T0 - 60_000),
    status,
    nodeId,
    startedAt: status === 'running' ? new Date(T0 - 60_000) : null,
  });
  const available = (r: Replica) => r.status === 'running';

  it('surges one new replica and stops nothing while it is unavailable (maxUnavailable 0)', () => {
    const old = [at('a', 1, 'running'), at('b', 1, 'running'), at('c', 1, 'running')];
    expect(rolloutStep({ target: 3, strategy, current: [], old, oldStopping: 0, isAvailable: available })).toMatchObject({ scaleUp: 1, stopOld: [] });
    const current = [at('n', 2, 'running')];
    const step = rolloutStep({ target: 3, strategy, current, old, oldStopping: 0, isAvailable: available });
    expect(step.scaleUp).toBe(0);
    expect(step.stopOld.map((r) => r.id)).toHaveLength(1);
  });

  it('stops unavailable old replicas first, then the oldest revision', () => {
    const old = [at('r3', 3, 'running'), at('r1', 1, 'running'), at('p2', 2, 'pending', null)];
    const wide: Strategy = { ...strategy, maxSurge: 0, maxUnavailable: 2 };
    const step = rolloutStep({ target: 3, strategy: wide, current: [], old, oldStopping: 0, isAvailable: available });
    expect(step.stopOld.map((r) => r.id)).toEqual(['p2', 'r1']);
  });

  it('brings lost old replicas back (restorable) before growing the new template into their room', () => {
    const old = [at('a', 1, 'running')];
    // Target 2, maxUnavailable 0: one old replica was lost and no new one is available.
    expect(rolloutStep({ target: 2, strategy, current: [], old, oldStopping: 0, isAvailable: available, restorable: true })).toMatchObject({ restore: 1, scaleUp: 1, stopOld: [] });
    expect(rolloutStep({ target: 2, strategy, current: [], old, oldStopping: 0, isAvailable: available })).toMatchObject({ restore: 0, scaleUp: 2 });
    // An available new replica holds availability up: nothing to bring back.
    expect(rolloutStep({ target: 2, strategy, current: [at('n', 2, 'running')], old, oldStopping: 0, isAvailable: available, restorable: true }).restore).toBe(0);
  });

  it('recreate stops every old replica, then waits for them to be gone before creating', () => {
    const recreate: Strategy = { ...strategy, type: 'recreate' };
    const old = [at('a', 1, 'running'), at('b', 1, 'pending')];
    expect(rolloutStep({ target: 2, strategy: recreate, current: [], old, oldStopping: 0, isAvailable: available })).toMatchObject({ scaleUp: 0 });
    expect(rolloutStep({ target: 2, strategy: recreate, current: [], old, oldStopping: 0, isAvailable: available }).stopOld).toHaveLength(2);
    expect(rolloutStep({ target: 2, strategy: recreate, current: [], old: [], oldStopping: 1, isAvailable: available }).scaleUp).toBe(0);
    expect(rolloutStep({ target: 2, strategy: recreate, current: [], old: [], oldStopping: 0, isAvailable: available }).scaleUp).toBe(2);
  });
});
