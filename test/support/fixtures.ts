import { sql, type Kysely } from 'kysely';
import type { Tables } from '../../src/db/tables.js';

type Db = Kysely<Tables>;

export interface DeploymentFixture {
  readonly userId?: string;
  readonly name?: string;
  readonly target?: number;
  readonly cpu?: number;
  readonly memoryMb?: number;
  readonly gpu?: number;
  readonly storageGb?: number;
  /** Leave waking the event readers to someone else (migration 0015), as the controller does. */
  readonly silentEvents?: boolean;
}

let counter = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

export async function insertUser(db: Db, subject = unique('user')): Promise<string> {
  const row = await db.insertInto('users').values({ subject }).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

/** What the API's deploy does, written directly: the deployment, its resources and revision 1, the first history row. */
export async function insertDeployment(db: Db, f: DeploymentFixture = {}): Promise<string> {
  const userId = f.userId ?? (await insertUser(db));
  return db.transaction().execute(async (tx) => {
    if (f.silentEvents) await sql`SELECT set_config('steady.events_wake', 'after_commit', true)`.execute(tx);
    const d = await tx
      .insertInto('deployments')
      .values({ name: f.name ?? unique('app'), user_id: userId, container_image: 'nginx:1.27', target_replicas: f.target ?? 1 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const resources = { cpu_cores: f.cpu ?? 1, memory_mb: f.memoryMb ?? 512, gpu_units: f.gpu ?? 0, storage_gb: f.storageGb ?? 1 };
    await tx.insertInto('deployment_resources').values({ deployment_id: d.id, ...resources }).execute();
    await tx
      .insertInto('deployment_revisions')
      .values({ deployment_id: d.id, revision: 1, template_revision: 1, container_image: 'nginx:1.27', ...resources })
      .execute();
    await tx.insertInto('deployment_status_history').values({ deployment_id: d.id, old_status: 'none', new_status: 'pending', reason: 'Deployment created' }).execute();
    return d.id;
  });
}

export async function insertNode(
  db: Db,
  n: { name?: string; cpu?: number; memoryMb?: number; gpu?: number; storageGb?: number; status?: 'ready' | 'cordoned' | 'draining' } = {},
): Promise<string> {
  const row = await db
    .insertInto('nodes')
    .values({
      name: n.name ?? unique('node'),
      cpu_cores: n.cpu ?? 4,
      memory_mb: n.memoryMb ?? 8192,
      gpu_units: n.gpu ?? 0,
      storage_gb: n.storageGb ?? 100,
      status: n.status ?? 'ready',
      last_heartbeat_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** The user's side: change the spec the way the API does (target, status, soft delete). */
export async function setTarget(db: Db, id: string, target: number): Promise<void> {
  await sql`UPDATE deployments SET target_replicas = ${target}, generation = generation + 1, updated_at = now() WHERE id = ${id}`.execute(db);
}

/** A user's status change, as the API makes it: under the row lock, with its history row. */
export async function setDeploymentStatus(db: Db, id: string, status: 'stopped' | 'pending' | 'deleted'): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const { rows } = await sql<{ status: string }>`SELECT status FROM deployments WHERE id = ${id} FOR UPDATE`.execute(tx);
    const old = rows[0]?.status;
    if (!old || old === status || old === 'deleted') return;
    if (status === 'pending' && !['stopped', 'failed'].includes(old)) return;
    await sql`UPDATE deployments SET status = ${status}::deploymentstatus, generation = generation + 1, restart_count = 0,
              backoff_until = NULL, deleted_at = CASE WHEN ${status} = 'deleted' THEN now() ELSE deleted_at END
              WHERE id = ${id}`.execute(tx);
    await sql`INSERT INTO deployment_status_history (deployment_id, old_status, new_status, reason, changed_at)
              VALUES (${id}, ${old}, ${status}, 'by the user', clock_timestamp())`.execute(tx);
  });
}

export const softDelete = (db: Db, id: string): Promise<void> => setDeploymentStatus(db, id, 'deleted');

/** The agents' side, for every node at once: start what is placed, finish what is stopping. */
export async function agentsTick(db: Db): Promise<void> {
  await retryDeadlock(() =>
    sql`UPDATE deployment_replicas SET status = 'running', started_at = now(), updated_at = now()
        WHERE status IN ('pending', 'starting') AND node_id IS NOT NULL`.execute(db),
  );
  await retryDeadlock(() =>
    sql`UPDATE deployment_replicas SET status = 'stopped', stopped_at = now(), updated_at = now()
        WHERE status = 'stopping'`.execute(db),
  );
}

/** A bulk update across many nodes may deadlock with a reconcile; like any client, try again. */
async function retryDeadlock(fn: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fn();
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || attempt >= 10) throw err;
    }
  }
}

export async function heartbeat(db: Db, nodeIds: readonly string[]): Promise<void> {
  if (nodeIds.length === 0) return;
  await sql`UPDATE nodes SET last_heartbeat_at = now(), status = CASE WHEN status = 'not_ready' THEN 'ready' ELSE status END
            WHERE id = ANY(${[...nodeIds]}::uuid[])`.execute(db);
}

export interface ReplicaCounts {
  readonly active: number;
  readonly placed: number;
  readonly running: number;
  readonly stopping: number;
  readonly byNode: Record<string, number>;
}

export async function replicaCounts(db: Db, deploymentId: string): Promise<ReplicaCounts> {
  const rows = await db.selectFrom('deployment_replicas').select(['status', 'node_id']).where('deployment_id', '=', deploymentId).execute();
  const active = rows.filter((r) => ['pending', 'starting', 'running'].includes(r.status));
  const byNode: Record<string, number> = {};
  for (const r of active) if (r.node_id) byNode[r.node_id] = (byNode[r.node_id] ?? 0) + 1;
  return {
    active: active.length,
    placed: active.filter((r) => r.node_id !== null).length,
    running: active.filter((r) => r.status === 'running').length,
    stopping: rows.filter((r) => r.status === 'stopping').length,
    byNode,
  };
}

export async function deploymentStatus(db: Db, id: string): Promise<{ status: string; status_reason: string | null }> {
  return db.selectFrom('deployments').select(['status', 'status_reason']).where('id', '=', id).executeTakeFirstOrThrow();
}

/** Each allocating replica's resources, by its own revision, CPU in millicores as allocation counts it. */
const PRICED_REPLICAS = sql`
  SELECT r.node_id, rev.cpu_millicores AS cpu, rev.memory_mb AS mem, rev.gpu_units AS gpu, rev.storage_gb AS sto
  FROM deployment_replicas r
  JOIN deployment_revisions rev ON rev.deployment_id = r.deployment_id AND rev.revision = r.revision
  WHERE r.status IN ('pending', 'starting', 'running', 'stopping') AND r.node_id IS NOT NULL`;

/** Nodes whose allocation exceeds capacity, recomputed from the replica rows (not from the trigger's columns). */
export async function overcommittedNodes(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT n.name FROM nodes n JOIN (${PRICED_REPLICAS}) p ON p.node_id = n.id
    GROUP BY n.id
    HAVING sum(p.cpu) > floor(max(n.cpu_cores)::numeric * 1000) OR sum(p.mem) > max(n.memory_mb)
        OR sum(p.gpu) > max(n.gpu_units) OR sum(p.sto) > max(n.storage_gb)`.execute(db);
  return rows.map((r) => r.name);
}

/** Nodes whose trigger-kept allocation columns disagree with the replica rows. */
export async function driftedAllocations(db: Db): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    SELECT n.name FROM nodes n
    LEFT JOIN LATERAL (
      SELECT coalesce(sum(p.cpu), 0) AS cpu, coalesce(sum(p.mem), 0) AS mem, coalesce(sum(p.gpu), 0) AS gpu, coalesce(sum(p.sto), 0) AS sto
      FROM (${PRICED_REPLICAS}) p WHERE p.node_id = n.id) a ON true
    WHERE n.allocated_cpu_millicores <> a.cpu OR n.allocated_memory_mb <> a.mem
       OR n.allocated_gpu_units <> a.gpu OR n.allocated_storage_gb <> a.sto
       OR n.allocated_cpu_cores <> a.cpu / 1000.0`.execute(db);
  return rows.map((r) => r.name);
}
