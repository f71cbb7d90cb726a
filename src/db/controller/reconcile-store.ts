import { sql, type Kysely, type Transaction } from 'kysely';
import type { DeploymentPatch, Plan } from '../../domain/planner.js';
import { DEFAULT_STRATEGY, mergeStrategy, type StrategyJson } from '../../domain/strategy.js';
import type { Deployment, Node, Replica, ReplicaStatus, Resources, Rollout, RolloutState } from '../../domain/types.js';
import { insertHistory } from '../queries/history.js';
import { rollBack } from '../queries/revisions.js';
import type { Tables } from '../tables.js';

type Tx = Transaction<Tables>;

/** A guarded write touched fewer rows than planned: someone changed them meanwhile. Retry the reconcile. */
export class StaleReadError extends Error {
  constructor(what: string) {
    super(`stale read: ${what} changed during the reconcile`);
    this.name = 'StaleReadError';
  }
}

/**
 * Locks the deployment rows for the rest of the transaction, in id order (so that two batches never
 * wait on each other in a cycle), and reads them with their resources. Silences the NOTIFY triggers
 * for this transaction (the controller's own writes must not wake it), defers its deployment events
 * to one per deployment, written by `applyPlans` (migration 0012), and leaves waking the event
 * readers to after the commit (migration 0015, AfterCommitWake). Ids not found are absent.
 */
export async function lockDeployments(tx: Tx, ids: readonly string[]): Promise<Map<string, Deployment>> {
  // The settings ride with the lock (one round trip less per reconcile): a CTE runs once, and when
  // no deployment is found nothing is written, so settings not made then do not matter.
  // Resources come from the desired revision, priced as allocation counts them (CPU in millicores).
  const { rows } = await sql<DeploymentRow>`
    WITH settings AS MATERIALIZED (
      SELECT set_config('steady.quiet', 'on', true), set_config('steady.deployment_events', 'deferred', true),
             set_config('steady.events_wake', 'after_commit', true)
    )
    SELECT d.id, d.name, d.status, d.status_reason, d.target_replicas, d.deleted_at,
           d.restart_count, d.backoff_until, d.ever_running, d.generation, d.observed_generation, d.revision, d.strategy, d.paused,
           d.rollout_state, d.rollout_reason, d.rollout_progress_at, d.rollout_best_available, d.rollout_least_old,
           d.rollout_failures, d.stable_revision, rev.template_revision, stable.template_revision AS stable_template_revision,
           rev.cpu_millicores, rev.memory_mb, rev.gpu_units, rev.storage_gb
    FROM settings, deployments d
    JOIN deployment_revisions rev ON rev.deployment_id = d.id AND rev.revision = d.revision
    LEFT JOIN deployment_revisions stable ON stable.deployment_id = d.id AND stable.revision = d.stable_revision
    WHERE d.id = ANY(${[...ids]}::uuid[])
    ORDER BY d.id
    FOR UPDATE OF d`.execute(tx);
  return new Map(rows.map((row) => [row.id, deploymentOf(row)]));
}

const deploymentOf = (row: DeploymentRow): Deployment => ({
  id: row.id,
  name: row.name,
  status: row.status,
  statusReason: row.status_reason,
  targetReplicas: row.target_replicas,
  deleted: row.deleted_at !== null,
  resources: pricedResources(row),
  revision: row.revision,
  templateRevision: row.template_revision,
  strategy: mergeStrategy(DEFAULT_STRATEGY, row.strategy),
  paused: row.paused,
  rollout: {
    state: row.rollout_state,
    reason: row.rollout_reason,
    progressAt: row.rollout_progress_at,
    bestAvailable: row.rollout_best_available,
    leastOld: row.rollout_least_old,
    failures: row.rollout_failures,
  },
  stableRevision: row.stable_revision,
  stableTemplateRevision: row.stable_template_revision,
  restartCount: row.restart_count,
  backoffUntil: row.backoff_until,
  everRunning: row.ever_running,
  generation: row.generation,
  observedGeneration: row.observed_generation,
});

interface PricedRow {
  cpu_millicores: number | null;
  memory_mb: number | null;
  gpu_units: number | null;
  storage_gb: number | null;
}

const pricedResources = (row: PricedRow): Resources => ({
  cpuCores: (row.cpu_millicores ?? 0) / 1000,
  memoryMb: row.memory_mb ?? 0,
  gpuUnits: row.gpu_units ?? 0,
  storageGb: row.storage_gb ?? 0,
});

interface DeploymentRow extends PricedRow {
  id: string;
  name: string;
  status: Deployment['status'];
  status_reason: string | null;
  target_replicas: number;
  deleted_at: Date | null;
  restart_count: number;
  backoff_until: Date | null;
  ever_running: boolean;
  generation: number;
  observed_generation: number;
  revision: number;
  strategy: StrategyJson;
  paused: boolean;
  rollout_state: RolloutState;
  rollout_reason: string | null;
  rollout_progress_at: Date | null;
  rollout_best_available: number;
  rollout_least_old: number | null;
  rollout_failures: number;
  stable_revision: number | null;
  template_revision: number;
  stable_template_revision: number | null;
}

/**
 * The replicas decisions need, by deployment: every non-terminal one, and failed ones not yet
 * replaced, each with its own revision's template identity and resources.
 */
export async function loadReplicas(tx: Tx, deploymentIds: readonly string[]): Promise<Map<string, Replica[]>> {
  const { rows } = await sql<ReplicaRow>`
    SELECT r.id, r.deployment_id, r.node_id, r.status, r.created_at, r.started_at, r.reason, r.replaced, r.revision,
           rev.template_revision, rev.cpu_millicores, rev.memory_mb, rev.gpu_units, rev.storage_gb
    FROM deployment_replicas r
    LEFT JOIN deployment_revisions rev ON rev.deployment_id = r.deployment_id AND rev.revision = r.revision
    WHERE r.deployment_id = ANY(${[...deploymentIds]}::uuid[])
      AND (r.status IN ('pending', 'starting', 'running', 'stopping') OR (r.status = 'failed' AND NOT r.replaced))`.execute(tx);
  const byDeployment = new Map<string, Replica[]>(deploymentIds.map((id) => [id, []]));
  for (const r of rows) {
    byDeployment.get(r.deployment_id)?.push({
      id: r.id,
      nodeId: r.node_id,
      status: r.status,
      createdAt: r.created_at,
      startedAt: r.started_at,
      reason: r.reason,
      replaced: r.replaced,
      revision: r.revision,
      // A revision gone by retention has no replica that holds anything (retention keeps those).
      templateRevision: r.template_revision ?? -r.revision,
      resources: pricedResources(r),
    });
  }
  return byDeployment;
}

interface ReplicaRow extends PricedRow {
  id: string;
  deployment_id: string;
  node_id: string | null;
  status: ReplicaStatus;
  created_at: Date;
  started_at: Date | null;
  reason: string | null;
  replaced: boolean;
  revision: number;
  template_revision: number | null;
}

/** The node columns placement reads, CPU in whole millicores as the allocation triggers count it. */
export const NODE_COLUMNS = sql`n.id, n.name, n.status, floor(n.cpu_cores::numeric * 1000)::float8 AS cpu_millicores, n.memory_mb, n.gpu_units,
  n.storage_gb, n.allocated_cpu_millicores::float8 AS a_cpu, n.allocated_memory_mb::float8 AS a_mem,
  n.allocated_gpu_units::float8 AS a_gpu, n.allocated_storage_gb::float8 AS a_sto`;

/** Every node (or only the draining ones) with its capacity and allocation, as of now. */
export async function loadNodes(db: Kysely<Tables> | Tx, which: 'all' | 'draining' = 'all'): Promise<Node[]> {
  const { rows } = await sql<NodeRow>`
    SELECT ${NODE_COLUMNS} FROM nodes n ${which === 'draining' ? sql`WHERE n.status = 'draining'` : sql``} ORDER BY n.id`.execute(db);
  return rows.map(nodeOf);
}

export const nodeOf = (r: NodeRow): Node => ({
  id: r.id,
  name: r.name,
  status: r.status,
  // Capacity rounded down to whole millicores, as the allocation triggers compare it.
  capacity: { cpuCores: r.cpu_millicores / 1000, memoryMb: r.memory_mb, gpuUnits: r.gpu_units, storageGb: r.storage_gb },
  allocated: { cpuCores: r.a_cpu / 1000, memoryMb: r.a_mem, gpuUnits: r.a_gpu, storageGb: r.a_sto },
});

export interface NodeRow {
  id: string;
  name: string;
  status: Node['status'];
  cpu_millicores: number;
  memory_mb: number;
  gpu_units: number;
  storage_gb: number;
  a_cpu: number;
  a_mem: number;
  a_gpu: number;
  a_sto: number;
}

export interface PlannedWrite {
  readonly deploymentId: string;
  readonly plan: Plan;
  /** The replicas the plan was made from (their statuses guard the stops). */
  readonly replicas: readonly Replica[];
}

/**
 * Writes the plans of many deployments with one statement per kind of change, whatever their
 * number: the statement texts never vary, so each is prepared once per connection. Guarded writes
 * (binds, stops) must touch exactly the rows planned, or the whole transaction is stale.
 */
export async function applyPlans(tx: Tx, writes: readonly PlannedWrite[]): Promise<void> {
  const creates = writes.flatMap(({ deploymentId, plan }) =>
    plan.create.map((c) => ({ deploymentId, nodeId: c.nodeId, revision: c.revision, reason: c.nodeId === null ? plan.createReason : null })),
  );
  if (creates.length > 0) {
    await sql`
      INSERT INTO deployment_replicas (deployment_id, node_id, status, reason, revision)
      SELECT deployment_id, node_id, 'pending', reason, revision
      FROM unnest(${creates.map((c) => c.deploymentId)}::uuid[], ${creates.map((c) => c.nodeId)}::uuid[], ${creates.map((c) => c.reason)}::text[],
                  ${creates.map((c) => c.revision)}::int[])
           AS v(deployment_id, node_id, reason, revision)`.execute(tx);
  }
  const binds = writes.flatMap(({ plan }) => plan.bind);
  if (binds.length > 0) {
    const result = await sql`
      UPDATE deployment_replicas r SET node_id = v.node_id, reason = NULL, updated_at = now()
      FROM unnest(${binds.map((b) => b.replicaId)}::uuid[], ${binds.map((b) => b.nodeId)}::uuid[]) AS v(id, node_id)
      WHERE r.id = v.id AND r.node_id IS NULL AND r.status = 'pending'`.execute(tx);
    expectRows(result.numAffectedRows, binds.length, 'unscheduled replicas');
  }
  const stops = writes.flatMap(({ plan, replicas }) => {
    const statusOf = new Map<string, ReplicaStatus>(replicas.map((r) => [r.id, r.status]));
    return plan.stop.map((s) => ({ ...s, expected: statusOf.get(s.replicaId) ?? 'pending' }));
  });
  if (stops.length > 0) {
    // Statuses travel as text[]: PGlite knows the array types of enums only from its start, so a
    // database migrated in the same session would get `{a,b}` serialised as the string "a,b".
    const result = await sql`
      UPDATE deployment_replicas r
      SET status = v.to_status::replicastatus, reason = v.reason, updated_at = now(),
          stopped_at = CASE WHEN v.to_status = 'stopped' THEN now() ELSE r.stopped_at END
      FROM unnest(${stops.map((s) => s.replicaId)}::uuid[], ${stops.map((s) => s.to)}::text[],
                  ${stops.map((s) => s.reason)}::text[], ${stops.map((s) => s.expected)}::text[])
           AS v(id, to_status, reason, expected)
      WHERE r.id = v.id AND r.status = v.expected::replicastatus`.execute(tx);
    expectRows(result.numAffectedRows, stops.length, 'replicas to stop');
  }
  const replaced = writes.flatMap(({ plan }) => plan.markReplaced);
  if (replaced.length > 0) {
    await sql`UPDATE deployment_replicas SET replaced = true WHERE id = ANY(${replaced}::uuid[])`.execute(tx);
  }
  // The deployment events of this transaction, once per deployment with its final counts: written
  // by the trigger of the patch, or here when there is none.
  const patched = await patchDeployments(
    tx,
    writes.map((w) => ({ id: w.deploymentId, patch: w.plan.deployment })),
  );
  if (!patched && creates.length + stops.length + replaced.length > 0) await sql`SELECT steady_events_flush_deferred(NULL)`.execute(tx);
  // Rare (a failed rollout): one deployment at a time, after the patch that records the failure.
  for (const { deploymentId, plan } of writes) {
    if (plan.rollbackTo !== null) await rollBack(tx, deploymentId, plan.rollbackTo, null);
  }
  await insertHistory(
    tx,
    writes.flatMap(({ deploymentId, plan }) => plan.history.map((h) => ({ deploymentId, ...h, changedBy: null }))),
  );
}

/**
 * Every changed field of every deployment in one UPDATE; a field a patch leaves out keeps its value.
 * False when there was nothing to change (and no UPDATE ran).
 */
async function patchDeployments(tx: Tx, patches: readonly { id: string; patch: DeploymentPatch }[]): Promise<boolean> {
  const changed = patches.filter(({ patch }) => Object.keys(patch).length > 0);
  if (changed.length === 0) return false;
  const has = (key: keyof DeploymentPatch) => changed.map(({ patch }) => patch[key] !== undefined);
  const rolls = changed.map(({ patch }) => patch.rollout ?? {});
  const hasRollout = (key: keyof Rollout) => rolls.map((r) => r[key] !== undefined);
  await sql`
    UPDATE deployments d SET
      status = CASE WHEN v.set_status THEN v.status::deploymentstatus ELSE d.status END,
      status_reason = CASE WHEN v.set_reason THEN v.status_reason ELSE d.status_reason END,
      restart_count = CASE WHEN v.set_restarts THEN v.restart_count ELSE d.restart_count END,
      backoff_until = CASE WHEN v.set_backoff THEN v.backoff_until ELSE d.backoff_until END,
      ever_running = CASE WHEN v.set_ever THEN v.ever_running ELSE d.ever_running END,
      stable_revision = CASE WHEN v.set_stable THEN v.stable_revision ELSE d.stable_revision END,
      observed_generation = coalesce(v.observed_generation, d.observed_generation),
      rollout_state = CASE WHEN v.set_rstate THEN v.rollout_state ELSE d.rollout_state END,
      rollout_reason = CASE WHEN v.set_rreason THEN v.rollout_reason ELSE d.rollout_reason END,
      rollout_progress_at = CASE WHEN v.set_rat THEN v.rollout_progress_at ELSE d.rollout_progress_at END,
      rollout_best_available = CASE WHEN v.set_rbest THEN v.rollout_best_available ELSE d.rollout_best_available END,
      rollout_least_old = CASE WHEN v.set_rleast THEN v.rollout_least_old ELSE d.rollout_least_old END,
      rollout_failures = CASE WHEN v.set_rfail THEN v.rollout_failures ELSE d.rollout_failures END,
      updated_at = CASE WHEN v.set_status THEN now() ELSE d.updated_at END
    FROM unnest(
      ${changed.map((c) => c.id)}::uuid[],
      ${has('status')}::bool[], ${changed.map(({ patch }) => patch.status ?? null)}::text[],
      ${has('statusReason')}::bool[], ${changed.map(({ patch }) => patch.statusReason?.slice(0, 500) ?? null)}::text[],
      ${has('restartCount')}::bool[], ${changed.map(({ patch }) => patch.restartCount ?? null)}::int[],
      ${has('backoffUntil')}::bool[], ${changed.map(({ patch }) => patch.backoffUntil?.toISOString() ?? null)}::timestamptz[],
      ${has('everRunning')}::bool[], ${changed.map(({ patch }) => patch.everRunning ?? null)}::bool[],
      ${has('stableRevision')}::bool[], ${changed.map(({ patch }) => patch.stableRevision ?? null)}::int[],
      ${changed.map(({ patch }) => patch.observedGeneration ?? null)}::int[],
      ${hasRollout('state')}::bool[], ${rolls.map((r) => r.state ?? null)}::text[],
      ${hasRollout('reason')}::bool[], ${rolls.map((r) => r.reason?.slice(0, 500) ?? null)}::text[],
      ${hasRollout('progressAt')}::bool[], ${rolls.map((r) => r.progressAt?.toISOString() ?? null)}::timestamptz[],
      ${hasRollout('bestAvailable')}::bool[], ${rolls.map((r) => r.bestAvailable ?? null)}::int[],
      ${hasRollout('leastOld')}::bool[], ${rolls.map((r) => r.leastOld ?? null)}::int[],
      ${hasRollout('failures')}::bool[], ${rolls.map((r) => r.failures ?? null)}::int[]
    ) AS v(id, set_status, status, set_reason, status_reason, set_restarts, restart_count, set_backoff, backoff_until,
           set_ever, ever_running, set_stable, stable_revision, observed_generation, set_rstate, rollout_state, set_rreason, rollout_reason,
           set_rat, rollout_progress_at, set_rbest, rollout_best_available, set_rleast, rollout_least_old, set_rfail, rollout_failures)
    WHERE d.id = v.id`.execute(tx);
  return true;
}

function expectRows(actual: bigint | undefined, expected: number, what: string): void {
  if (Number(actual ?? 0) !== expected) throw new StaleReadError(what);
}
