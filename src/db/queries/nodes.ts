import { sql, type Kysely, type Transaction } from 'kysely';
import { NODE_CAPACITY_REDUCED, pickCapacityVictims, type HeldReplica } from '../../domain/capacity-eviction.js';
import type { NodeStatus, ReplicaStatus, Resources } from '../../domain/types.js';
import { REPLICA_STATUSES } from '../../domain/types.js';
import type { NodeRow, Tables } from '../tables.js';

export interface NodeRegistration {
  readonly name: string;
  readonly capacity: Resources;
  /** Omitted on re-registration: the labels the node has keep. */
  readonly labels: Readonly<Record<string, string>> | null;
}

/** A replica a re-registration took off its node because the node no longer has room for it. */
export interface EvictedReplica {
  readonly replicaId: string;
  readonly deploymentId: string;
  /** `failed` (an active replica, replaced elsewhere by the controller), or `stopped` (one that was stopping). */
  readonly status: 'failed' | 'stopped';
  readonly reason: string;
}

export interface Registered {
  readonly node: NodeRow;
  readonly evicted: readonly EvictedReplica[];
}

/**
 * Register or re-register a node by name, idempotently. A `not_ready` node is back (`ready`); an
 * operator's `cordoned`/`draining` is kept: re-registering must not undo a drain.
 *
 * A node re-registered with less than its replicas hold gives up the fewest replicas that make the
 * rest fit (as kubelet evicts when a node runs short): they fail with NodeCapacityReduced (a stopping
 * one is taken as stopped) and the controller replaces them elsewhere. All in one transaction under
 * the node's row lock, which every placement on the node also takes, so no placement slips in between.
 */
export async function registerNode(db: Kysely<Tables>, node: NodeRegistration): Promise<Registered> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(async (tx) => {
        const evicted = await evictBeyond(tx, node);
        return { node: await upsertNode(tx, node), evicted };
      });
    } catch (err) {
      // An agent's report on one of the node's replicas locks the replica, then the node: a deadlock
      // with this transaction is possible and harmless; try again.
      if ((err as { code?: unknown }).code !== '40P01' || attempt >= 3) throw err;
    }
  }
}

interface HeldRow {
  id: string;
  deployment_id: string;
  status: ReplicaStatus;
  created_at: Date;
  cpu_millicores: number;
  memory_mb: number;
  gpu_units: number;
  storage_gb: number;
}

async function evictBeyond(tx: Transaction<Tables>, node: NodeRegistration): Promise<EvictedReplica[]> {
  const { rows: locked } = await sql<{ id: string }>`SELECT id FROM nodes WHERE name = ${node.name} FOR UPDATE`.execute(tx);
  const nodeId = locked[0]?.id;
  if (!nodeId) return [];
  // Read after the lock: every placement on this node has committed or waits for it.
  const { rows } = await sql<HeldRow>`
    SELECT r.id, r.deployment_id, r.status, r.created_at, rev.cpu_millicores, rev.memory_mb, rev.gpu_units, rev.storage_gb
    FROM deployment_replicas r
    JOIN deployment_revisions rev ON rev.deployment_id = r.deployment_id AND rev.revision = r.revision
    WHERE r.node_id = ${nodeId} AND r.status IN ('pending', 'starting', 'running', 'stopping')`.execute(tx);
  const held: HeldReplica[] = rows.map((r) => ({
    id: r.id,
    status: r.status,
    createdAt: r.created_at,
    resources: { cpuCores: r.cpu_millicores / 1000, memoryMb: r.memory_mb, gpuUnits: r.gpu_units, storageGb: r.storage_gb },
  }));
  // Capacity as the allocation triggers count it: CPU in whole millicores, rounded down.
  const capacity = { ...node.capacity, cpuCores: Math.floor(Math.round(node.capacity.cpuCores * 1e6) / 1e3) / 1000 };
  const victims = pickCapacityVictims(capacity, held);
  if (victims.length === 0) return [];
  const { rows: evicted } = await sql<{ id: string; deployment_id: string; status: 'failed' | 'stopped'; reason: string }>`
    UPDATE deployment_replicas
    SET status = CASE WHEN status = 'stopping' THEN 'stopped'::replicastatus ELSE 'failed'::replicastatus END,
        reason = ${NODE_CAPACITY_REDUCED}, stopped_at = now(), updated_at = now()
    WHERE id = ANY(${victims.map((v) => v.id)}::uuid[]) AND status IN ('pending', 'starting', 'running', 'stopping')
    RETURNING id, deployment_id, status, reason`.execute(tx);
  return evicted
    .map((r) => ({ replicaId: r.id, deploymentId: r.deployment_id, status: r.status, reason: r.reason }))
    .sort((a, b) => (a.replicaId < b.replicaId ? -1 : 1));
}

/** The node's row, inserted or updated by name (see registerNode). */
async function upsertNode(db: Kysely<Tables> | Transaction<Tables>, node: NodeRegistration): Promise<NodeRow> {
  const labels = JSON.stringify(node.labels ?? {});
  return db
    .insertInto('nodes')
    .values({
      name: node.name,
      cpu_cores: node.capacity.cpuCores,
      memory_mb: node.capacity.memoryMb,
      gpu_units: node.capacity.gpuUnits,
      storage_gb: node.capacity.storageGb,
      labels,
      status: 'ready',
      last_heartbeat_at: sql<Date>`now()`,
    })
    .onConflict((oc) =>
      oc.column('name').doUpdateSet({
        cpu_cores: (eb) => eb.ref('excluded.cpu_cores'),
        memory_mb: (eb) => eb.ref('excluded.memory_mb'),
        gpu_units: (eb) => eb.ref('excluded.gpu_units'),
        storage_gb: (eb) => eb.ref('excluded.storage_gb'),
        labels: node.labels === null ? sql`nodes.labels` : sql`excluded.labels`,
        status: sql`CASE WHEN nodes.status = 'not_ready' THEN 'ready'::nodestatus ELSE nodes.status END`,
        last_heartbeat_at: sql`now()`,
        updated_at: sql`now()`,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function setNodeStatus(db: Kysely<Tables>, id: string, status: NodeStatus): Promise<NodeRow | null> {
  const row = await db
    .updateTable('nodes')
    .set({ status, updated_at: sql`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row ?? null;
}

export type NodeDeletion = { readonly outcome: 'deleted' | 'not_found' } | { readonly outcome: 'busy'; readonly replicas: number };

/**
 * Deletes a node that holds no replica (pending, starting, running or stopping on it): an operator
 * drains it first. The node's row lock comes first and the check reads after it, so a placement
 * racing with the delete either committed before (and is counted) or waits on the lock and then
 * fails its foreign key check (the controller retries it elsewhere). Terminal replicas that ran on
 * the node keep their history with no node (ON DELETE SET NULL).
 */
export async function deleteNode(db: Kysely<Tables>, id: string): Promise<NodeDeletion> {
  return db.transaction().execute(async (tx) => {
    const { rows: locked } = await sql`SELECT id FROM nodes WHERE id = ${id} FOR UPDATE`.execute(tx);
    if (locked.length === 0) return { outcome: 'not_found' };
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM deployment_replicas
      WHERE node_id = ${id} AND status IN ('pending', 'starting', 'running', 'stopping')`.execute(tx);
    const replicas = rows[0]?.n ?? 0;
    if (replicas > 0) return { outcome: 'busy', replicas };
    await sql`DELETE FROM nodes WHERE id = ${id}`.execute(tx);
    return { outcome: 'deleted' };
  });
}

export interface NodeOverview {
  readonly node: NodeRow;
  /** Resources held by the node's pending, starting, running and stopping replicas. */
  readonly allocated: Resources;
  readonly replicaCounts: Readonly<Record<ReplicaStatus, number>>;
}

interface OverviewRow extends NodeRow {
  alloc_cpu: number;
  alloc_memory: number;
  alloc_gpu: number;
  alloc_storage: number;
  counts: Record<string, number> | null;
}

/**
 * Every node with its allocation and replica counts by status, in one query. The allocation is the
 * one the database keeps on the node row (migrations 0003 and 0005: triggers sum the resources of
 * every pending, starting, running and stopping replica, each priced by its own revision, and refuse
 * overcommitment). CPU is summed in whole millicores.
 */
export async function listNodeOverviews(db: Kysely<Tables>): Promise<NodeOverview[]> {
  const result = await sql<OverviewRow>`
    SELECT n.*,
           n.allocated_cpu_millicores::float8 / 1000 AS alloc_cpu, n.allocated_memory_mb::float8 AS alloc_memory,
           n.allocated_gpu_units::float8 AS alloc_gpu, n.allocated_storage_gb::float8 AS alloc_storage,
           c.counts
    FROM nodes n
    LEFT JOIN LATERAL (
      SELECT json_object_agg(s.status, s.n) AS counts
      FROM (SELECT status, count(*)::int AS n FROM deployment_replicas WHERE node_id = n.id GROUP BY status) s
    ) c ON true
    ORDER BY n.name
  `.execute(db);
  return result.rows.map(({ alloc_cpu, alloc_memory, alloc_gpu, alloc_storage, counts, ...node }) => ({
    node,
    allocated: {
      cpuCores: Math.round(alloc_cpu * 1000) / 1000,
      memoryMb: alloc_memory,
      gpuUnits: alloc_gpu,
      storageGb: alloc_storage,
    },
    replicaCounts: Object.fromEntries(REPLICA_STATUSES.map((s) => [s, counts?.[s] ?? 0])) as Record<ReplicaStatus, number>,
  }));
}

/** A replica the node holds, with its own revision's template (never the deployment's current one). */
export interface Assignment {
  readonly replicaId: string;
  readonly deploymentId: string;
  readonly status: ReplicaStatus;
  readonly revision: number;
  readonly containerImage: string;
  readonly resources: Resources;
  readonly command: readonly string[] | null;
  readonly env: Readonly<Record<string, string>> | null;
}

interface HeartbeatRow {
  replica_id: string | null;
  deployment_id: string | null;
  status: ReplicaStatus | null;
  revision: number | null;
  command: string[] | null;
  env: Record<string, string> | null;
  container_image: string | null;
  cpu_cores: number | null;
  memory_mb: number | null;
  gpu_units: number | null;
  storage_gb: number | null;
}

/**
 * Record a heartbeat of the node `id` named `name` and return its replicas that are not terminal, in
 * one statement. Null when no such node (or it is another node's id). A heartbeat brings a
 * `not_ready` node back; it never touches `updated_at` (not a spec change) and only notifies the
 * controller when the status changes (the nodes trigger's WHEN clause).
 */
export async function recordHeartbeat(db: Kysely<Tables>, id: string, name: string): Promise<Assignment[] | null> {
  const result = await sql<HeartbeatRow>`
    WITH touched AS (
      UPDATE nodes
      SET last_heartbeat_at = now(),
          status = CASE WHEN status = 'not_ready' THEN 'ready'::nodestatus ELSE status END
      WHERE id = ${id} AND name = ${name}
      RETURNING id
    )
    SELECT r.id AS replica_id, r.deployment_id, r.status, r.revision, rev.container_image,
           rev.cpu_cores, rev.memory_mb, rev.gpu_units, rev.storage_gb, rev.command, rev.env
    FROM touched t
    LEFT JOIN deployment_replicas r
      ON r.node_id = t.id AND r.status IN ('pending', 'starting', 'running', 'stopping')
    LEFT JOIN deployment_revisions rev ON rev.deployment_id = r.deployment_id AND rev.revision = r.revision
    ORDER BY r.created_at, r.id
  `.execute(db);
  if (result.rows.length === 0) return null;
  return result.rows.flatMap((r) =>
    r.replica_id === null || r.deployment_id === null || r.status === null
      ? []
      : [
          {
            replicaId: r.replica_id,
            deploymentId: r.deployment_id,
            status: r.status,
            revision: r.revision ?? 0,
            containerImage: r.container_image ?? '',
            resources: {
              cpuCores: r.cpu_cores ?? 0,
              memoryMb: r.memory_mb ?? 0,
              gpuUnits: r.gpu_units ?? 0,
              storageGb: r.storage_gb ?? 0,
            },
            command: r.command,
            env: r.env,
          },
        ],
  );
}
