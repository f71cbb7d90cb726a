import { sql, type Transaction } from 'kysely';
import { strategyJson } from '../../domain/strategy.js';
import type { Tables } from '../tables.js';
import type { DeploymentSpec } from './deployment-commands.js';

export interface CreateRequest {
  readonly userId: string;
  readonly spec: DeploymentSpec;
}

/**
 * New deployments with their resources, their revision 1 and their creation history, in the caller's
 * transaction, in two statements whatever their number: the deployments, then the rest of them. The
 * ids come back in the order of `requests`; null where the user already has a live deployment of
 * that name (the partial unique index (user_id, name) WHERE deleted_at IS NULL decides, races with
 * other transactions included, and ON CONFLICT leaves the transaction usable).
 *
 * The caller passes distinct (user, name) pairs, in the order the index entries are to be taken
 * (create-deployments.ts sorts them: a fixed lock order between concurrent batches).
 *
 * The deployments go first, in a statement of their own, so that their triggers (events, NOTIFY) fire
 * before the history's, as for a create on its own; resources and revisions have no insert triggers.
 */
export async function insertDeployments(tx: Transaction<Tables>, requests: readonly CreateRequest[]): Promise<(string | null)[]> {
  if (requests.length === 0) return [];
  const deployments = requests.map(({ userId, spec }, n) => ({
    n,
    user_id: userId,
    name: spec.name,
    container_image: spec.template.containerImage,
    target_replicas: spec.targetReplicas,
    strategy: strategyJson(spec.strategy),
  }));
  const { rows: inserted } = await sql<{ id: string; user_id: string; name: string }>`
    INSERT INTO deployments (name, user_id, container_image, target_replicas, strategy)
    SELECT v.name, v.user_id, v.container_image, v.target_replicas, v.strategy
    FROM json_to_recordset(${JSON.stringify(deployments)}::json)
         AS v(n int, user_id uuid, name varchar, container_image varchar, target_replicas int, strategy jsonb)
    ORDER BY v.n
    ON CONFLICT (user_id, name) WHERE deleted_at IS NULL DO NOTHING
    RETURNING id, user_id, name`.execute(tx);
  const idOf = new Map(inserted.map((r) => [keyOf(r.user_id, r.name), r.id]));
  const ids = requests.map((r) => idOf.get(keyOf(r.userId, r.spec.name)) ?? null);

  const created = requests.flatMap(({ userId, spec }, i) => {
    const id = ids[i];
    if (id === null || id === undefined) return [];
    const r = spec.template.resources;
    return [
      {
        n: i,
        id,
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
  if (created.length === 0) return ids;
  // A new deployment has no other revision: its template_revision is its own number (insertRevision's rule).
  // History's changed_at is clock_timestamp() per row, in request order (history.ts says why).
  await sql`
    WITH v AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(created)}::json)
           AS v(n int, id uuid, user_id uuid, container_image varchar, cpu_cores float8, memory_mb int, gpu_units int,
                storage_gb int, command text[], env jsonb)
    ), resources AS (
      INSERT INTO deployment_resources (deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb)
      SELECT id, cpu_cores, memory_mb, gpu_units, storage_gb FROM v ORDER BY n
    ), revisions AS (
      INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb,
                                        gpu_units, storage_gb, command, env, created_by)
      SELECT id, 1, 1, container_image, cpu_cores, memory_mb, gpu_units, storage_gb, command, env, user_id FROM v ORDER BY n
    )
    INSERT INTO deployment_status_history (deployment_id, old_status, new_status, reason, changed_by, changed_at)
    SELECT id, 'none', 'pending', 'Deployment created', user_id, clock_timestamp() FROM v ORDER BY n`.execute(tx);
  return ids;
}

/** Users' ids compare as the database prints them (lower case). */
const keyOf = (userId: string, name: string): string => `${userId.toLowerCase()}\u0000${name}`;
