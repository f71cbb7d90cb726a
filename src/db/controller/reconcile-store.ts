import { sql, type Kysely, type Transaction } from 'kysely';
import type { DeploymentPatch, Plan } from '../../domain/planner.js';
import type { Deployment, Node, Replica, ReplicaStatus } from '../../domain/types.js';
import { insertHistory } from '../queries/history.js';
import type { Tables } from '../tables.js';

type Tx = Transaction<Tables>;

/** A guarded write touched fewer rows than planned: someone changed them meanwhile. Retry the reconcile. */
export class StaleReadError extends Error {
  constructor(what: string) {
    super(`stale read: ${what} changed during the reconcile`);
    this.name = 'StaleReadError';
  }
}

export interface LoadedDeployment {
  readonly deployment: Deployment;
  readonly generation: number;
}

/**
 * Locks the deployment row for the rest of the transaction and reads it with its resources.
 * Silences the NOTIFY triggers for this transaction: the controller's own writes must not wake it.
 */
export async function lockDeployment(tx: Tx, id: string): Promise<LoadedDeployment | null> {
  await sql`SELECT set_config('steady.quiet', 'on', true)`.execute(tx);
  const row = await tx
    .selectFrom('deployments as d')
    .innerJoin('deployment_resources as r', 'r.deployment_id', 'd.id')
    .select([
      'd.id',
      'd.name',
      'd.status',
      'd.status_reason',
      'd.target_replicas',
      'd.deleted_at',
      'd.generation',
      'd.restart_count',
      'd.backoff_until',
      'd.ever_running',
      'r.cpu_cores',
      'r.memory_mb',
      'r.gpu_units',
      'r.storage_gb',
    ])
    .where('d.id', '=', id)
    .forUpdate('d')
    .executeTakeFirst();
  if (!row) return null;
  return {
    generation: row.generation,
    deployment: {
      id: row.id,
      name: row.name,
      status: row.status,
      statusReason: row.status_reason,
      targetReplicas: row.target_replicas,
      deleted: row.deleted_at !== null,
      resources: { cpuCores: row.cpu_cores, memoryMb: row.memory_mb, gpuUnits: row.gpu_units, storageGb: row.storage_gb },
      restartCount: row.restart_count,
      backoffUntil: row.backoff_until,
      everRunning: row.ever_running,
    },
  };
}

/** The replicas a decision needs: every non-terminal one, and failed ones not yet replaced. */
export async function loadReplicas(tx: Tx, deploymentId: string): Promise<Replica[]> {
  const rows = await tx
    .selectFrom('deployment_replicas')
    .select(['id', 'node_id', 'status', 'created_at', 'reason', 'replaced'])
    .where('deployment_id', '=', deploymentId)
    .where((eb) =>
      eb.or([
        eb('status', 'in', ['pending', 'starting', 'running', 'stopping']),
        eb.and([eb('status', '=', 'failed'), eb('replaced', '=', false)]),
      ]),
    )
    .execute();
  return rows.map((r) => ({
    id: r.id,
    nodeId: r.node_id,
    status: r.status,
    createdAt: r.created_at,
    reason: r.reason,
    replaced: r.replaced,
  }));
}

/** Every node with its capacity and allocation, as of now. */
export async function loadNodes(db: Kysely<Tables> | Tx): Promise<Node[]> {
  const { rows } = await sql<NodeRow>`
    SELECT id, name, status, cpu_cores, memory_mb, gpu_units, storage_gb, allocated_cpu_cores::float8 AS a_cpu,
           allocated_memory_mb::float8 AS a_mem, allocated_gpu_units::float8 AS a_gpu, allocated_storage_gb::float8 AS a_sto
    FROM nodes ORDER BY id`.execute(db);
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    status: r.status,
    capacity: { cpuCores: r.cpu_cores, memoryMb: r.memory_mb, gpuUnits: r.gpu_units, storageGb: r.storage_gb },
    allocated: { cpuCores: r.a_cpu, memoryMb: r.a_mem, gpuUnits: r.a_gpu, storageGb: r.a_sto },
  }));
}

interface NodeRow {
  id: string;
  name: string;
  status: Node['status'];
  cpu_cores: number;
  memory_mb: number;
  gpu_units: number;
  storage_gb: number;
  a_cpu: number;
  a_mem: number;
  a_gpu: number;
  a_sto: number;
}

// One key for the whole database: every controller process serialises its placement decisions on it.
const SCHEDULING_LOCK_KEY = 7_461_822_356;

/**
 * Serialises placement decisions across every controller until the transaction ends. Allocation
 * only grows by placements, so a node read after taking this lock has at least the free capacity
 * seen. The allocation trigger still refuses an overcommit (ST001) should anything bypass this.
 */
export async function takeSchedulingLock(tx: Tx): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${SCHEDULING_LOCK_KEY})`.execute(tx);
}

/** Writes a plan with one statement per kind of change. */
export async function applyPlanRows(tx: Tx, deploymentId: string, plan: Plan, replicas: readonly Replica[]): Promise<string[]> {
  const statusOf = new Map<string, ReplicaStatus>(replicas.map((r) => [r.id, r.status]));
  let createdIds: string[] = [];
  if (plan.create.length > 0) {
    const nodeIds = plan.create.map((c) => c.nodeId);
    const reasons = plan.create.map((c) => (c.nodeId === null ? plan.createReason : null));
    const { rows } = await sql<{ id: string }>`
      INSERT INTO deployment_replicas (deployment_id, node_id, status, reason)
      SELECT ${deploymentId}, node_id, 'pending', reason
      FROM unnest(${nodeIds}::uuid[], ${reasons}::text[]) AS v(node_id, reason)
      RETURNING id`.execute(tx);
    createdIds = rows.map((r) => r.id);
  }
  if (plan.bind.length > 0) {
    const result = await sql`
      UPDATE deployment_replicas r SET node_id = v.node_id, reason = NULL, updated_at = now()
      FROM unnest(${plan.bind.map((b) => b.replicaId)}::uuid[], ${plan.bind.map((b) => b.nodeId)}::uuid[]) AS v(id, node_id)
      WHERE r.id = v.id AND r.node_id IS NULL AND r.status = 'pending'`.execute(tx);
    expectRows(result.numAffectedRows, plan.bind.length, 'unscheduled replicas');
  }
  if (plan.stop.length > 0) {
    // Statuses travel as text[]: PGlite knows the array types of enums only from its start, so a
    // database migrated in the same session would get `{a,b}` serialised as the string "a,b".
    const result = await sql`
      UPDATE deployment_replicas r
      SET status = v.to_status::replicastatus, reason = v.reason, updated_at = now(),
          stopped_at = CASE WHEN v.to_status = 'stopped' THEN now() ELSE r.stopped_at END
      FROM unnest(${plan.stop.map((s) => s.replicaId)}::uuid[], ${plan.stop.map((s) => s.to)}::text[],
                  ${plan.stop.map((s) => s.reason)}::text[], ${plan.stop.map((s) => statusOf.get(s.replicaId) ?? 'pending')}::text[])
           AS v(id, to_status, reason, expected)
      WHERE r.id = v.id AND r.status = v.expected::replicastatus`.execute(tx);
    expectRows(result.numAffectedRows, plan.stop.length, 'replicas to stop');
  }
  if (plan.markReplaced.length > 0) {
    await tx.updateTable('deployment_replicas').set({ replaced: true }).where('id', 'in', [...plan.markReplaced]).execute();
  }
  await patchDeployment(tx, deploymentId, plan.deployment);
  await insertHistory(
    tx,
    plan.history.map((h) => ({
      deployment_id: deploymentId,
      old_status: h.oldStatus,
      new_status: h.newStatus,
      reason: h.reason.slice(0, 500),
      changed_by: null,
    })),
  );
  return createdIds;
}

async function patchDeployment(tx: Tx, id: string, patch: DeploymentPatch): Promise<void> {
  const set: Record<string, unknown> = {};
  if (patch.status !== undefined) set.status = patch.status;
  if (patch.statusReason !== undefined) set.status_reason = patch.statusReason?.slice(0, 500) ?? null;
  if (patch.restartCount !== undefined) set.restart_count = patch.restartCount;
  if (patch.backoffUntil !== undefined) set.backoff_until = patch.backoffUntil;
  if (patch.everRunning !== undefined) set.ever_running = patch.everRunning;
  if (Object.keys(set).length === 0) return;
  if (patch.status !== undefined) set.updated_at = sql`now()`;
  await tx.updateTable('deployments').set(set).where('id', '=', id).execute();
}

function expectRows(actual: bigint | undefined, expected: number, what: string): void {
  if (Number(actual ?? 0) !== expected) throw new StaleReadError(what);
}
