import { randomUUID } from 'node:crypto';
import type { Context } from '../context.js';
import { applyPlanRows, loadNodes, loadReplicas, lockDeployment, takeSchedulingLock } from '../db/controller/reconcile-store.js';
import { isEmptyPlan, planDeployment, type Plan, type PlannerConfig } from '../domain/planner.js';
import type { Node, Replica } from '../domain/types.js';

export interface ReconcileResult {
  /** Look again after this long (timed work such as a back-off), or null. */
  readonly requeueAfterMs: number | null;
  /** Whether anything was written. */
  readonly changed: boolean;
  /** Whether replicas of this deployment are still waiting for a node. */
  readonly unscheduled: boolean;
}

export type Reconcile = (deploymentId: string, trigger: string) => Promise<ReconcileResult>;

/**
 * One reconcile = one transaction: lock the deployment, load, plan (pure), and when the plan places
 * replicas, take the scheduling lock and plan again on a fresh read of the nodes; apply, commit.
 * Level-triggered: the trigger is only logged, never used to decide.
 */
export function createReconciler(ctx: Context, plannerConfig: PlannerConfig): Reconcile {
  return async (deploymentId, trigger) => {
    const started = performance.now();
    const reconcileId = randomUUID().slice(0, 8);
    const log = ctx.logger.child({ deployment_id: deploymentId, reconcile_id: reconcileId });
    try {
      const outcome = await ctx.database.db.transaction().execute(async (tx) => {
        const loaded = await lockDeployment(tx, deploymentId);
        if (!loaded) return null;
        const replicas = await loadReplicas(tx, deploymentId);
        const now = ctx.clock.now();
        const planWith = (nodes: readonly Node[]): Plan =>
          planDeployment({ deployment: loaded.deployment, replicas, nodes, now, config: plannerConfig });
        // Placement decisions are serialised (kube-scheduler places one pod at a time too): under
        // the lock, no other placement can change any node's allocation, so a plan made from a read
        // taken after it cannot overcommit. A draft without nodes tells, with no I/O, whether this
        // reconcile will want to place, so the common case reads the nodes once, under the lock.
        const locked = wantsPlacement(planWith([]), replicas);
        if (locked) await takeSchedulingLock(tx);
        let plan = planWith(await loadNodes(tx));
        if (!locked && placesReplicas(plan)) {
          // Rare: only node state (a draining node) asked for replacements.
          await takeSchedulingLock(tx);
          plan = planWith(await loadNodes(tx));
        }
        const unscheduled = stillUnscheduled(replicas, plan);
        if (isEmptyPlan(plan)) return { name: loaded.deployment.name, plan, changed: false, unscheduled };
        await applyPlanRows(tx, deploymentId, plan, replicas);
        return { name: loaded.deployment.name, plan, changed: true, unscheduled };
      });
      const durationMs = performance.now() - started;
      const outcomeLabel = outcome?.changed ? 'changed' : 'unchanged';
      ctx.metrics.reconciles.inc({ outcome: outcomeLabel });
      ctx.metrics.reconcileDuration.observe({ outcome: outcomeLabel }, durationMs / 1000);
      if (!outcome) {
        log.debug({ trigger }, 'deployment gone');
        return { requeueAfterMs: null, changed: false, unscheduled: false };
      }
      const summary = { name: outcome.name, trigger, ...describePlan(outcome.plan), duration_ms: round(durationMs) };
      if (outcome.changed) log.info(summary, 'reconciled');
      else log.debug(summary, 'nothing to do');
      return {
        requeueAfterMs: outcome.plan.requeueAfterMs,
        changed: outcome.changed,
        unscheduled: outcome.unscheduled,
      };
    } catch (err) {
      const durationMs = performance.now() - started;
      ctx.metrics.reconciles.inc({ outcome: 'error' });
      ctx.metrics.reconcileDuration.observe({ outcome: 'error' }, durationMs / 1000);
      throw err;
    }
  };
}

function stillUnscheduled(replicas: readonly Replica[], plan: Plan): boolean {
  if (plan.create.some((c) => c.nodeId === null)) return true;
  const handled = new Set([...plan.bind.map((b) => b.replicaId), ...plan.stop.map((s) => s.replicaId)]);
  return replicas.some((r) => r.nodeId === null && r.status === 'pending' && !handled.has(r.id));
}

/** A draft planned with no nodes places nothing; it still shows replicas to create or waiting to be bound. */
function wantsPlacement(draft: Plan, replicas: readonly Replica[]): boolean {
  const stopped = new Set(draft.stop.map((s) => s.replicaId));
  return draft.create.length > 0 || replicas.some((r) => r.nodeId === null && r.status === 'pending' && !stopped.has(r.id));
}

function placesReplicas(plan: Plan): boolean {
  return plan.bind.length > 0 || plan.create.some((c) => c.nodeId !== null);
}

/** What an operator reads in the log line: counts, and the status move when there is one. */
export function describePlan(plan: Plan): Record<string, unknown> {
  const placed = plan.create.filter((c) => c.nodeId !== null).length;
  const out: Record<string, unknown> = {};
  if (plan.create.length > 0) out.created = plan.create.length;
  if (placed > 0) out.placed = placed;
  if (plan.create.length > placed) out.unscheduled = plan.create.length - placed;
  if (plan.bind.length > 0) out.bound = plan.bind.length;
  if (plan.stop.length > 0) out.stopped = plan.stop.length;
  if (plan.markReplaced.length > 0) out.replaced_failed = plan.markReplaced.length;
  if (plan.history.length > 0) out.status = plan.history.map((h) => `${h.oldStatus}→${h.newStatus}`).join(', ');
  const reason = plan.deployment.statusReason ?? plan.createReason;
  if (reason) out.reason = reason;
  if (plan.requeueAfterMs !== null) out.requeue_after_ms = plan.requeueAfterMs;
  return out;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
