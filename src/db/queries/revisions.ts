import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Resources } from '../../domain/types.js';
import type { Tables } from '../tables.js';

/** What a deployment's replicas run: a change of any of it is a new revision. */
export interface Template {
  readonly containerImage: string;
  readonly resources: Resources;
  /** Overrides the image's command; null keeps the image's. */
  readonly command: readonly string[] | null;
  /** Environment variables, name → value; null for none. */
  readonly env: Readonly<Record<string, string>> | null;
}

export interface RevisionRecord {
  readonly revision: number;
  readonly templateRevision: number;
  readonly template: Template;
  readonly createdAt: Date;
  /** Replicas of this revision that are pending, starting or running. */
  readonly activeReplicas: number;
}

/** Revisions kept beyond those that still have replicas, the desired one and the stable one (Kubernetes' revisionHistoryLimit). */
export const REVISIONS_KEPT = 10;

/**
 * Inserts revision `revision` of a deployment with `template`. Its template_revision is that of any
 * existing revision with an equal template (so equal templates share one identity), else its own
 * number. Returns the template_revision. The caller holds the deployment's row lock.
 */
export async function insertRevision(
  db: Kysely<Tables>,
  deploymentId: string,
  revision: number,
  template: Template,
  createdBy: string | null,
): Promise<number> {
  const r = template.resources;
  const command = template.command === null ? null : [...template.command];
  const env = template.env === null ? null : JSON.stringify(template.env);
  const { rows } = await sql<{ template_revision: number }>`
    INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb,
                                      gpu_units, storage_gb, command, env, created_by)
    SELECT ${deploymentId}::uuid, ${revision}::int,
           coalesce((SELECT min(template_revision) FROM deployment_revisions o
                     WHERE o.deployment_id = ${deploymentId}::uuid AND ${sameTemplate(sql`o`, sql`v`)}), ${revision}::int),
           v.container_image, v.cpu_cores, v.memory_mb, v.gpu_units, v.storage_gb, v.command, v.env, ${createdBy}::uuid
    FROM (SELECT ${template.containerImage}::varchar AS container_image, ${r.cpuCores}::float8 AS cpu_cores,
                 ${r.memoryMb}::int AS memory_mb, ${r.gpuUnits}::int AS gpu_units, ${r.storageGb}::int AS storage_gb,
                 ${command}::text[] AS command, ${env}::jsonb AS env) v
    RETURNING template_revision`.execute(db);
  return rows[0]!.template_revision;
}

/** Two revision rows (or row-shaped values) run the same thing: every template field equal, nulls included. */
export const sameTemplate = (a: RawBuilder<unknown>, b: RawBuilder<unknown>): RawBuilder<unknown> =>
  sql`(${a}.container_image, ${a}.cpu_cores, ${a}.memory_mb, ${a}.gpu_units, ${a}.storage_gb, ${a}.command, ${a}.env)
      IS NOT DISTINCT FROM (${b}.container_image, ${b}.cpu_cores, ${b}.memory_mb, ${b}.gpu_units, ${b}.storage_gb, ${b}.command, ${b}.env)`;

/**
 * Makes `revision` (already inserted) the desired one: the deployment's image and resources mirror its
 * template (the seed's reads stay true), and a new rollout starts. CrashLoopBackOff state is the old
 * template's, so it starts afresh too. The caller holds the deployment's row lock.
 */
export async function adoptRevision(db: Kysely<Tables>, deploymentId: string, revision: number): Promise<void> {
  await sql`
    UPDATE deployments d SET revision = rev.revision, container_image = rev.container_image, generation = d.generation + 1,
           updated_at = now(), rollout_state = 'progressing', rollout_reason = NULL, rollout_progress_at = now(),
           rollout_best_available = 0, rollout_least_old = NULL, rollout_failures = 0, restart_count = 0, backoff_until = NULL
    FROM deployment_revisions rev
    WHERE d.id = ${deploymentId} AND rev.deployment_id = d.id AND rev.revision = ${revision}`.execute(db);
  await sql`
    UPDATE deployment_resources res SET cpu_cores = rev.cpu_cores, memory_mb = rev.memory_mb, gpu_units = rev.gpu_units,
           storage_gb = rev.storage_gb, updated_at = now()
    FROM deployment_revisions rev
    WHERE res.deployment_id = ${deploymentId} AND rev.deployment_id = res.deployment_id AND rev.revision = ${revision}`.execute(db);
  await pruneRevisions(db, deploymentId);
}

/**
 * Kubernetes' undo: a new revision (the current one + 1) with the template of `fromRevision`, made the
 * desired one. Never a rewrite of history. Returns the new revision's number.
 */
export async function rollBack(db: Kysely<Tables>, deploymentId: string, fromRevision: number, createdBy: string | null): Promise<number> {
  const { rows } = await sql<{ revision: number }>`
    INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb,
                                      gpu_units, storage_gb, command, env, created_by)
    SELECT src.deployment_id, d.revision + 1, src.template_revision, src.container_image, src.cpu_cores, src.memory_mb,
           src.gpu_units, src.storage_gb, src.command, src.env, ${createdBy}::uuid
    FROM deployment_revisions src JOIN deployments d ON d.id = src.deployment_id
    WHERE src.deployment_id = ${deploymentId} AND src.revision = ${fromRevision}
    RETURNING revision`.execute(db);
  const revision = rows[0]?.revision;
  if (revision === undefined) throw new Error(`revision ${fromRevision} of deployment ${deploymentId} is gone`);
  await adoptRevision(db, deploymentId, revision);
  return revision;
}

/** Keeps the last REVISIONS_KEPT revisions, the desired and the stable one, and any that still has replicas holding a node. */
async function pruneRevisions(db: Kysely<Tables>, deploymentId: string): Promise<void> {
  await sql`
    DELETE FROM deployment_revisions rev
    USING deployments d
    WHERE d.id = ${deploymentId} AND rev.deployment_id = d.id
      AND rev.revision <> d.revision AND rev.revision IS DISTINCT FROM d.stable_revision
      AND rev.revision < (SELECT min(revision) FROM (
            SELECT revision FROM deployment_revisions WHERE deployment_id = d.id ORDER BY revision DESC LIMIT ${REVISIONS_KEPT}) newest)
      AND NOT EXISTS (SELECT 1 FROM deployment_replicas r
                      WHERE r.deployment_id = d.id AND r.revision = rev.revision AND r.status IN ('pending', 'starting', 'running', 'stopping'))`.execute(db);
}

/** Every revision of a deployment, newest first, with its active replica count. */
export async function listRevisions(db: Kysely<Tables>, deploymentId: string): Promise<RevisionRecord[]> {
  const { rows } = await sql<{
    revision: number;
    template_revision: number;
    container_image: string;
    cpu_cores: number;
    memory_mb: number;
    gpu_units: number;
    storage_gb: number;
    command: string[] | null;
    env: Record<string, string> | null;
    created_at: Date;
    active: number;
  }>`
    SELECT rev.revision, rev.template_revision, rev.container_image, rev.cpu_cores, rev.memory_mb, rev.gpu_units, rev.storage_gb,
           rev.command, rev.env, rev.created_at,
           (SELECT count(*)::int FROM deployment_replicas r
            WHERE r.deployment_id = rev.deployment_id AND r.revision = rev.revision AND r.status IN ('pending', 'starting', 'running')) AS active
    FROM deployment_revisions rev
    WHERE rev.deployment_id = ${deploymentId}
    ORDER BY rev.revision DESC`.execute(db);
  return rows.map((r) => ({
    revision: r.revision,
    templateRevision: r.template_revision,
    template: {
      containerImage: r.container_image,
      resources: { cpuCores: r.cpu_cores, memoryMb: r.memory_mb, gpuUnits: r.gpu_units, storageGb: r.storage_gb },
      command: r.command,
      env: r.env,
    },
    createdAt: r.created_at,
    activeReplicas: r.active,
  }));
}
