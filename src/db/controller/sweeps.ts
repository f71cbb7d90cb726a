import { sql, type Kysely } from 'kysely';
import type { Tables } from '../tables.js';

type Db = Kysely<Tables>;

/**
 * Deployments that may need a decision: not settled by their own status, live with a count that is
 * not the target, or stopped/deleted/failed with replicas still active, with failures not yet
 * replaced, with replicas on a draining node, or with a rollout in progress (not paused). Anything a
 * notification can start, this finds too (a notification lost in a failover or a reconnect costs one resync period, never a stalled drain).
 * Converged deployments cost an index probe each, never a write.
 */
export async function deploymentsNeedingWork(db: Db): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT d.id FROM deployments d WHERE d.status IN ('pending', 'scheduled')
    UNION
    SELECT d.id FROM deployments d
    WHERE d.status = 'running'
      AND d.target_replicas <> (SELECT count(*) FROM deployment_replicas r
                                WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running'))
    UNION
    SELECT d.id FROM deployments d
    WHERE d.status IN ('stopped', 'deleted', 'failed')
      AND EXISTS (SELECT 1 FROM deployment_replicas r
                  WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running'))
    UNION
    SELECT DISTINCT r.deployment_id FROM deployment_replicas r WHERE r.status = 'failed' AND NOT r.replaced
    UNION
    SELECT d.id FROM deployments d WHERE d.backoff_until IS NOT NULL AND d.status NOT IN ('stopped', 'deleted', 'failed')
    UNION
    SELECT r.deployment_id FROM nodes n JOIN deployment_replicas r ON r.node_id = n.id
    WHERE n.status = 'draining' AND r.status IN ('pending', 'starting', 'running')
    UNION
    SELECT d.id FROM deployments d
    WHERE d.rollout_state = 'progressing' AND NOT d.paused AND d.status NOT IN ('stopped', 'deleted', 'failed')`.execute(db);
  return rows.map((r) => r.id);
}

/** Deployments with replicas waiting for a node: worth a look whenever capacity appears. */
export async function deploymentsWithUnscheduled(db: Db): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT DISTINCT deployment_id AS id FROM deployment_replicas WHERE node_id IS NULL AND status = 'pending'`.execute(db);
  return rows.map((r) => r.id);
}

/** Deployments with replicas on a node (draining, or back from the dead). */
export async function deploymentsOnNode(db: Db, nodeId: string): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT DISTINCT deployment_id AS id FROM deployment_replicas
    WHERE node_id = ${nodeId} AND status IN ('pending', 'starting', 'running', 'stopping')`.execute(db);
  return rows.map((r) => r.id);
}

export interface NodeChange {
  readonly id: string;
  readonly name: string;
}

/** Ready nodes silent for longer than the grace period become not_ready (the database's clock decides). */
export async function markSilentNodesNotReady(db: Db, graceMs: number): Promise<NodeChange[]> {
  const { rows } = await sql<NodeChange>`
    UPDATE nodes SET status = 'not_ready', updated_at = now()
    WHERE status = 'ready' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < now() - make_interval(secs => ${graceMs / 1000}))
    RETURNING id, name`.execute(db);
  return rows;
}

export interface EvictedReplica {
  readonly deployment_id: string;
  readonly node_name: string;
}

/**
 * Replicas on nodes silent for the grace period plus the eviction timeout: active ones become
 * `failed` (NodeLost) and are replaced elsewhere; `stopping` ones are taken as stopped. One statement;
 * the NOTIFY trigger wakes each affected deployment.
 */
export async function evictReplicasOfLostNodes(db: Db, graceMs: number, evictionMs: number): Promise<EvictedReplica[]> {
  const lostSince = sql`now() - make_interval(secs => ${(graceMs + evictionMs) / 1000})`;
  // Nodes first: almost always none, and then the replicas are not looked at (an UPDATE joining them
  // to nodes can scan every active replica, hundreds of milliseconds on a large cluster, every pass).
  const { rows: lost } = await sql<{ id: string }>`
    SELECT id FROM nodes WHERE status <> 'ready' AND (last_heartbeat_at IS NULL OR last_heartbeat_at < ${lostSince})`.execute(db);
  if (lost.length === 0) return [];
  // The node conditions again: a node that came back in between keeps its replicas.
  const { rows } = await sql<EvictedReplica>`
    UPDATE deployment_replicas r
    SET status = CASE WHEN r.status = 'stopping' THEN 'stopped'::replicastatus ELSE 'failed'::replicastatus END,
        reason = 'NodeLost', stopped_at = now(), updated_at = now()
    FROM nodes n
    WHERE r.node_id = n.id
      AND r.node_id = ANY(${lost.map((n) => n.id)}::uuid[])
      AND r.status IN ('pending', 'starting', 'running', 'stopping')
      AND n.status <> 'ready'
      AND (n.last_heartbeat_at IS NULL OR n.last_heartbeat_at < ${lostSince})
    RETURNING r.deployment_id, n.name AS node_name`.execute(db);
  return rows;
}

/** Deletes up to `batch` terminal replica rows older than the retention window; returns how many. */
export async function deleteExpiredReplicas(db: Db, retentionMs: number, batch: number): Promise<number> {
  const result = await sql`
    DELETE FROM deployment_replicas WHERE id IN (
      SELECT id FROM deployment_replicas
      WHERE status IN ('stopped', 'failed') AND updated_at < now() - make_interval(secs => ${retentionMs / 1000})
      LIMIT ${batch})`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export async function countReplicasByStatus(db: Db): Promise<{ status: string; count: number }[]> {
  const { rows } = await sql<{ status: string; count: number }>`
    SELECT status::text AS status, count(*)::int AS count FROM deployment_replicas GROUP BY status`.execute(db);
  return rows;
}
