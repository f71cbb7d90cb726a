import { sql, type Kysely, type Transaction } from 'kysely';
import { ConflictError, NotFoundError } from '../../domain/errors.js';
import { strategyJson, type StrategyJson } from '../../domain/strategy.js';
import type { DeploymentStatus, RolloutState, Strategy } from '../../domain/types.js';
import type { Tables } from '../tables.js';
import { insertHistory } from './history.js';
import { insertRevision, type Template } from './revisions.js';

/**
 * The user's commands on a deployment. Each is one transaction that first locks the deployment row
 * (`FOR UPDATE`), so it serialises with the controller's reconcile of the same deployment, which
 * takes the same lock. The NOTIFY triggers on `deployments` wake the controller after commit.
 */

export interface DeploymentSpec {
  readonly name: string;
  readonly targetReplicas: number;
  readonly template: Template;
  readonly strategy: Strategy;
}

/** Whether a command changed anything; `false` for the idempotent no-ops (same target, already stopped…). */
export interface CommandResult {
  readonly changed: boolean;
}

const UNIQUE_VIOLATION = '23505';

export async function createDeployment(db: Kysely<Tables>, userId: string, spec: DeploymentSpec): Promise<string> {
  let id: string | null;
  try {
    id = await db.transaction().execute((tx) => insertDeployment(tx, userId, spec));
  } catch (err) {
    if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) throw nameTaken(spec);
    throw err;
  }
  if (id === null) throw nameTaken(spec);
  return id;
}

export const nameTaken = (spec: DeploymentSpec): ConflictError => new ConflictError(`a deployment named ${JSON.stringify(spec.name)} already exists`);

/**
 * A new deployment with its resources, its revision 1 and its creation history, in the caller's transaction (one
 * create, or a batch of them: create-deployments.ts). Null when the user already has a live
 * deployment of that name: the partial unique index (user_id, name) WHERE deleted_at IS NULL decides,
 * races between two creates included (no read-then-insert window), and ON CONFLICT leaves the
 * transaction usable for the other creates of a batch.
 */
export async function insertDeployment(tx: Transaction<Tables>, userId: string, spec: DeploymentSpec): Promise<string | null> {
  const row = await tx
    .insertInto('deployments')
    .values({
      name: spec.name,
      user_id: userId,
      container_image: spec.template.containerImage,
      target_replicas: spec.targetReplicas,
      strategy: JSON.stringify(strategyJson(spec.strategy)),
    })
    .onConflict((oc) => oc.columns(['user_id', 'name']).where('deleted_at', 'is', null).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!row) return null;
  const r = spec.template.resources;
  await tx
    .insertInto('deployment_resources')
    .values({ deployment_id: row.id, cpu_cores: r.cpuCores, memory_mb: r.memoryMb, gpu_units: r.gpuUnits, storage_gb: r.storageGb })
    .execute();
  await insertRevision(tx, row.id, 1, spec.template, userId);
  await insertHistory(tx, [{ deploymentId: row.id, oldStatus: 'none', newStatus: 'pending', changedBy: userId, reason: 'Deployment created' }]);
  return row.id;
}

export async function scaleDeployment(db: Kysely<Tables>, userId: string, id: string, target: number): Promise<CommandResult> {
  return withLockedDeployment(db, userId, id, async (tx, current) => {
    if (current.target_replicas === target) return { changed: false };
    await tx
      .updateTable('deployments')
      .set({ target_replicas: target, generation: sql`generation + 1`, updated_at: sql`now()` })
      .where('id', '=', id)
      .execute();
    await insertHistory(tx, [
      { deploymentId: id, oldStatus: `replicas:${current.target_replicas}`, newStatus: `replicas:${target}`, changedBy: userId, reason: 'User-initiated scaling' },
    ]);
    return { changed: true };
  });
}

export async function stopDeployment(db: Kysely<Tables>, userId: string, id: string): Promise<CommandResult> {
  return withLockedDeployment(db, userId, id, async (tx, current) => {
    if (current.status === 'stopped') return { changed: false };
    await changeStatus(tx, userId, id, current.status, 'stopped', 'Stopped by user');
    return { changed: true };
  });
}

/** From `stopped` or `failed` back to `pending`, with CrashLoopBackOff state reset; a no-op when live. */
export async function startDeployment(db: Kysely<Tables>, userId: string, id: string): Promise<CommandResult> {
  return withLockedDeployment(db, userId, id, async (tx, current) => {
    if (current.status !== 'stopped' && current.status !== 'failed') return { changed: false };
    // The progress deadline counts from the start: the time spent stopped is not a rollout making no progress.
    await changeStatus(tx, userId, id, current.status, 'pending', 'Started by user', {
      restart_count: 0,
      backoff_until: null,
      rollout_progress_at: sql<Date>`now()`,
    });
    return { changed: true };
  });
}

/** Soft delete: the row stays (history, audit); the name is free again; the controller stops the replicas. */
export async function deleteDeployment(db: Kysely<Tables>, userId: string, id: string): Promise<void> {
  await withLockedDeployment(db, userId, id, async (tx, current) => {
    await changeStatus(tx, userId, id, current.status, 'deleted', 'Deleted by user', { deleted_at: sql<Date>`now()` });
  });
}

export interface LockedDeployment {
  readonly status: DeploymentStatus;
  readonly target_replicas: number;
  readonly revision: number;
  readonly strategy: StrategyJson;
  readonly paused: boolean;
  readonly rollout_state: RolloutState;
}

export async function withLockedDeployment<T>(
  db: Kysely<Tables>,
  userId: string,
  id: string,
  fn: (tx: Transaction<Tables>, current: LockedDeployment) => Promise<T>,
): Promise<T> {
  return db.transaction().execute(async (tx) => {
    // Another user's deployment and a soft-deleted one are "not found", exactly like an unknown id.
    const current = await tx
      .selectFrom('deployments')
      .select(['status', 'target_replicas', 'revision', 'strategy', 'paused', 'rollout_state'])
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .where('deleted_at', 'is', null)
      .forUpdate()
      .executeTakeFirst();
    if (!current) throw new NotFoundError('deployment');
    return fn(tx, current);
  });
}

async function changeStatus(
  tx: Transaction<Tables>,
  userId: string,
  id: string,
  from: DeploymentStatus,
  to: DeploymentStatus,
  reason: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await tx
    .updateTable('deployments')
    .set({ ...extra, status: to, status_reason: reason, generation: sql`generation + 1`, updated_at: sql`now()` })
    .where('id', '=', id)
    .execute();
  await insertHistory(tx, [{ deploymentId: id, oldStatus: from, newStatus: to, changedBy: userId, reason }]);
}
