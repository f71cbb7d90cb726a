import { sql, type Transaction } from 'kysely';
import { strategyJson } from '../../domain/strategy.js';
import type { Tables } from '../tables.js';
import type { DeploymentSpec } from './deployment-commands.js';
import { isoUtc, statusRecordOf, type DeploymentStatusRecord, type HeadRow } from './deployment-status.js';

export interface CreateRequest {
  readonly userId: string;
  readonly spec: DeploymentSpec;
}

/**
 * New deployments with their resources, their revision 1 and their creation history, in the caller's
 * transaction, in two statements whatever their number: the deployments, then the rest of them. Each
 * comes back as its status object, built from the rows as written (exactly what a status read in
 * this transaction would return, without that read), in the order of `requests`; null where the
 * user already has a live deployment of that name (the partial unique index (user_id, name) WHERE
 * deleted_at IS NULL decides, races with other transactions included, and ON CONFLICT leaves the
 * transaction usable).
 *
 * The caller passes distinct (user, name) pairs, in the order the index entries are to be taken
 * (create-deployments.ts sorts them: a fixed lock order between concurrent batches).
 *
 * The deployments go first, in a statement of their own, so that their triggers (events, NOTIFY) fire
 * before the history's, as for a create on its own; resources and revisions have no insert triggers.
 */
export async function insertDeployments(tx: Transaction<Tables>, requests: readonly CreateRequest[]): Promise<(DeploymentStatusRecord | null)[]> {
  if (requests.length === 0) return [];
  const deployments = requests.map(({ userId, spec }, n) => ({
    n,
    user_id: userId,
    name: spec.name,
    container_image: spec.template.containerImage,
    target_replicas: spec.targetReplicas,
    strategy: strategyJson(spec.strategy),
  }));
  const { rows: inserted } = await sql<InsertedRow>`
    INSERT INTO deployments (name, user_id, container_image, target_replicas, strategy)
    SELECT v.name, v.user_id, v.container_image, v.target_replicas, v.strategy
    FROM json_to_recordset(${JSON.stringify(deployments)}::json)
         AS v(n int, user_id uuid, name varchar, container_image varchar, target_replicas int, strategy jsonb)
    ORDER BY v.n
    ON CONFLICT (user_id, name) WHERE deleted_at IS NULL DO NOTHING
    RETURNING id, user_id, name, status, target_replicas, created_at, updated_at, container_image, revision, generation, observed_generation, status_reason,
              paused, rollout_state, rollout_reason, strategy`.execute(tx);
  const rowOf = new Map(inserted.map((r) => [keyOf(r.user_id, r.name), r]));
  const rows = requests.map((r) => rowOf.get(keyOf(r.userId, r.spec.name)) ?? null);

  const created = requests.flatMap(({ userId, spec }, i) => {
    const row = rows[i];
    if (!row) return [];
    const r = spec.template.resources;
    return [
      {
        n: i,
        id: row.id,
        user_id: userId,
        container_image: spec.template.containerImage,
        cpu_cores: r.cpuCores,
        memory_mb: r.memoryMb,
        gpu_units: r.gpuUnits,
        storage_gb: r.storageGb,
        command: spec.template.command,
        env: spec.template.env,
      },
    ];
  });
  if (created.length === 0) return rows.map(() => null);
  // A new deployment has no other revision: its template_revision is its own number (insertRevision's rule).
  // History's changed_at is clock_timestamp() per row, in request order (history.ts says why).
  const { rows: written } = await sql<WrittenRow>`
    WITH v AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(created)}::json)
           AS v(n int, id uuid, user_id uuid, container_image varchar, cpu_cores float8, memory_mb int, gpu_units int,
                storage_gb int, command text[], env jsonb)
    ), resources AS (
      INSERT INTO deployment_resources (deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb)
      SELECT id, cpu_cores, memory_mb, gpu_units, storage_gb FROM v ORDER BY n
      RETURNING deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb
    ), revisions AS (
      INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb,
                                        gpu_units, storage_gb, command, env, created_by)
      SELECT id, 1, 1, container_image, cpu_cores, memory_mb, gpu_units, storage_gb, command, env, user_id FROM v ORDER BY n
      RETURNING deployment_id, command, env
    ), history AS (
      INSERT INTO deployment_status_history (deployment_id, old_status, new_status, reason, changed_by, changed_at)
      SELECT id, 'none', 'pending', 'Deployment created', user_id, clock_timestamp() FROM v ORDER BY n
      RETURNING deployment_id, old_status, new_status, reason, changed_at
    )
    SELECT h.deployment_id AS id, res.cpu_cores, res.memory_mb, res.gpu_units, res.storage_gb, rev.command, rev.env,
           json_build_array(json_build_object('old_status', h.old_status, 'new_status', h.new_status,
                                              'changed_at', ${isoUtc('h.changed_at')}, 'reason', h.reason)) AS history
    FROM history h JOIN resources res USING (deployment_id) JOIN revisions rev USING (deployment_id)`.execute(tx);
  const writtenOf = new Map(written.map((w) => [w.id, w]));
  // Nothing else can have changed a deployment this transaction has not yet committed: no replicas, nothing rolled out.
  return rows.map((row) => {
    const w = row && writtenOf.get(row.id);
    if (!row || !w) return null;
    return statusRecordOf({ ...row, ...w, updated: 0, available: 0, considered: 0, running: 0, failed: 0, replicas: [] });
  });
}

type InsertedRow = Omit<HeadRow, WrittenColumns | CountColumns | 'replicas'> & { user_id: string };
type WrittenColumns = 'cpu_cores' | 'memory_mb' | 'gpu_units' | 'storage_gb' | 'command' | 'env' | 'history';
type CountColumns = 'updated' | 'available' | 'considered' | 'running' | 'failed';
type WrittenRow = Pick<HeadRow, 'id' | WrittenColumns>;

/** Users' ids compare as the database prints them (lower case). */
const keyOf = (userId: string, name: string): string => `${userId.toLowerCase()}\u0000${name}`;
