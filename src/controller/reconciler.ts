import { randomUUID } from 'node:crypto';
import PQueue from 'p-queue';
import type { Context } from '../context.js';
import { NodeCache, type Fleet } from '../db/controller/node-cache.js';
import { applyPlans, loadNodes, loadReplicas, lockDeployments } from '../db/controller/reconcile-store.js';
import { NodeView } from '../domain/node-view.js';
import { isEmptyPlan, planDeployment, type Plan, type PlannerConfig } from '../domain/planner.js';
import type { Deployment, Node, Replica } from '../domain/types.js';
import { reconcileFailure } from './reconcile-failure.js';
import type { Outcome, WorkItem } from './work-queue.js';

export interface ReconcileResult {
  /** Look again after this long (timed work such as a back-off), or null. */
  readonly requeueAfterMs: number | null;
  /** Whether anything was written. */
  readonly changed: boolean;
  /** Whether replicas of this deployment are still waiting for a node. */
  readonly unscheduled: boolean;
}

export type ReconcileOutcome = Outcome & { readonly result?: ReconcileResult };

/** Reconciles a batch of deployments; each one's outcome, by id. */
export type Reconcile = (items: readonly WorkItem[]) => Promise<Map<string, ReconcileOutcome>>;

interface Decided {
  readonly id: string;
  readonly deployment: Deployment;
  readonly replicas: readonly Replica[];
  readonly plan: Plan;
}

/**
 * One transaction per batch of deployments (one under no backlog): lock them in id order, load
 * their replicas in one query, plan each (pure), and when some plan places replicas, plan them
 * under the placement lock on a fresh read of the nodes, each plan seeing the placements of the
 * ones before it and of the batches still writing theirs; write every plan with one statement per
 * kind of change; commit. Level-triggered: the trigger is only logged, never used to decide.
 *
 * Its transactions leave waking the event readers to `eventsWritten`, called after a commit that wrote.
 *
 * When a batch of several fails for a reason of its own (a stale read, an overcommit refused), each
 * deployment is reconciled again alone, so one troubled deployment never holds back the others.
 */
export function createReconciler(ctx: Context, plannerConfig: PlannerConfig, eventsWritten: () => void): Reconcile {
  // Placement decisions are serialised within the process (kube-scheduler places one pod at a
  // time too), and only the decisions: a batch reads the fleet, plans and records its placements as
  // assumed under the lock, then writes and commits after it, while the next batch plans on a read
  // that adds the placements not yet committed (NodeCache). Across processes (a leader stepping
  // down while its last batch commits), the allocation trigger refuses an overcommit (ST001) and a
  // placement on a node that cannot take it (ST003); the batch is then planned again.
  const cache = new NodeCache();
  const placing = new PQueue({ concurrency: 1 });
  const planOnFleet = (tx: Parameters<NodeCache['read']>[0], planAll: (fleet: Fleet) => Decided[]) =>
    placing.add(async () => {
      const fleet = await cache.read(tx);
      ctx.metrics.nodeReads.inc({ kind: cache.lastRead.full ? 'full' : 'changed' });
      ctx.metrics.nodeRowsRead.inc(cache.lastRead.rows);
      const decided = planAll(fleet);
      cache.assume(fleet.xid, decided.map((d) => d.plan));
      return { decided, xid: fleet.xid };
    });
  const runBatch = async (items: readonly WorkItem[]): Promise<Map<string, ReconcileOutcome>> => {
    const started = performance.now();
    const ids = [...new Set(items.map((i) => i.key))].sort();
    let decided: Decided[];
    let assumedBy: string | null = null;
    let readFleet = false;
    try {
      decided = await ctx.database.db.transaction().execute(async (tx) => {
        const loaded = await lockDeployments(tx, ids);
        const present = ids.filter((id) => loaded.has(id));
        if (present.length === 0) return [];
        const replicasOf = await loadReplicas(tx, present);
        const now = ctx.clock.now();
        const planOne = (id: string, nodes: readonly Node[]): Plan =>
          planDeployment({ deployment: loaded.get(id)!, replicas: replicasOf.get(id) ?? [], nodes, now, config: plannerConfig });
        const planAll = ({ nodes, index }: { nodes: readonly Node[]; index?: ReadonlyMap<string, number> }): Decided[] => {
          const view = new NodeView(nodes, index);
          return present.map((id) => {
            const plan = planOne(id, view.nodes);
            view.take(plan);
            return { id, deployment: loaded.get(id)!, replicas: replicasOf.get(id) ?? [], plan };
          });
        };
        const planPlacing = async (): Promise<Decided[]> => {
          readFleet = true;
          const { decided: plans, xid } = await planOnFleet(tx, planAll);
          assumedBy = xid;
          return plans;
        };
        // Drafts without nodes tell, with no I/O, whether this batch will want to place: then it
        // plans under the placement lock on the fleet kept in memory; otherwise (a status change, a
        // scale-down, a stop) on the draining nodes only, which are all it can need.
        const placingWanted = present.some((id) => wantsPlacement(planOne(id, []), replicasOf.get(id) ?? []));
        let plans = placingWanted ? await planPlacing() : planAll({ nodes: await loadNodes(tx, 'draining') });
        // Rare: replicas moved off a draining node need replacements.
        if (!placingWanted && plans.some((d) => d.plan.create.length > 0 || d.plan.bind.length > 0)) plans = await planPlacing();
        const writes = plans.filter((d) => !isEmptyPlan(d.plan));
        if (writes.length > 0) await applyPlans(tx, writes.map((d) => ({ deploymentId: d.id, plan: d.plan, replicas: d.replicas })));
        return plans;
      });
    } catch (err) {
      // Rolled back, or its commit's outcome unknown (the database went away): never count its
      // placements again, and read every node next time (NodeCache.abandon).
      if (readFleet) cache.abandon(assumedBy);
      const durationMs = performance.now() - started;
      ctx.metrics.reconciles.inc({ outcome: 'error' }, ids.length);
      ctx.metrics.reconcileDuration.observe({ outcome: 'error' }, durationMs / 1000);
      throw err;
    }
    const durationMs = performance.now() - started;
    if (decided.some((d) => !isEmptyPlan(d.plan))) eventsWritten();
    const reconcileId = randomUUID().slice(0, 8);
    const triggerOf = new Map(items.map((i) => [i.key, i.trigger]));
    const out = new Map<string, ReconcileOutcome>();
    const byId = new Map(decided.map((d) => [d.id, d]));
    let changedCount = 0;
    for (const id of ids) {
      const d = byId.get(id);
      // Fields, not a child logger per deployment: a backlog logs thousands of these lines.
      const where = { deployment_id: id, reconcile_id: reconcileId };
      if (!d) {
        ctx.logger.debug({ ...where, trigger: triggerOf.get(id) }, 'deployment gone');
        out.set(id, { ok: true, result: { requeueAfterMs: null, changed: false, unscheduled: false } });
        continue;
      }
      const changed = !isEmptyPlan(d.plan);
      if (changed) changedCount++;
      if (changed || ctx.logger.isLevelEnabled('debug')) {
        const summary = { ...where, name: d.deployment.name, trigger: triggerOf.get(id), ...describePlan(d.plan), duration_ms: round(durationMs), ...(ids.length > 1 && { batch: ids.length }) };
        if (changed) ctx.logger.info(summary, 'reconciled');
        else ctx.logger.debug(summary, 'nothing to do');
      }
      out.set(id, { ok: true, result: { requeueAfterMs: d.plan.requeueAfterMs, changed, unscheduled: stillUnscheduled(d.replicas, d.plan) } });
    }
    if (changedCount > 0) ctx.metrics.reconciles.inc({ outcome: 'changed' }, changedCount);
    if (ids.length > changedCount) ctx.metrics.reconciles.inc({ outcome: 'unchanged' }, ids.length - changedCount);
    ctx.metrics.reconcileDuration.observe({ outcome: changedCount > 0 ? 'changed' : 'unchanged' }, durationMs / 1000);
    ctx.metrics.reconcileBatchSize.observe(ids.length);
    return out;
  };

  return async (items) => {
    try {
      return await runBatch(items);
    } catch (err) {
      // Alone, or the database itself in trouble: every key fails and retries with its back-off.
      if (items.length <= 1 || reconcileFailure(err) === 'transient') throw err;
      ctx.logger.debug({ err: err instanceof Error ? err.message : String(err), batch: items.length }, 'batch failed; reconciling its deployments one by one');
      const out = new Map<string, ReconcileOutcome>();
      for (const item of items) {
        try {
          const one = await runBatch([item]);
          for (const [k, v] of one) out.set(k, v);
        } catch (e) {
          out.set(item.key, { ok: false, err: e });
        }
      }
      return out;
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
  // A rollout step: the old and new template's replica counts it started from, and what it did.
  if (plan.step !== null) {
    out.rollout_revision = plan.step.revision;
    out.old_replicas = plan.step.oldReplicas;
    out.new_replicas = plan.step.newReplicas;
    // Old replicas brought back with the last completed template (created now, not held by a back-off).
    const restored = plan.create.filter((c) => c.revision !== plan.step!.revision).length;
    if (restored > 0) out.restored = restored;
  }
  if (plan.rollbackTo !== null) out.rolled_back_to = plan.rollbackTo;
  if (plan.deployment.observedGeneration !== undefined) out.generation = plan.deployment.observedGeneration;
  const reason = plan.deployment.statusReason ?? plan.createReason;
  if (reason) out.reason = reason;
  if (plan.requeueAfterMs !== null) out.requeue_after_ms = plan.requeueAfterMs;
  return out;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;
