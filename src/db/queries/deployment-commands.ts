import { sql, type Kysely, type Transaction } from 'kysely';
import { NotFoundError } from '../../domain/errors.js';
import type { StrategyJson } from '../../domain/strategy.js';
import type { DeploymentStatus, RolloutState, Strategy } from '../../domain/types.js';
import type { Tables } from '../tables.js';
import { insertHistory } from './history.js';
import type { Template } from './revisions.js';

/**
 * The user's commands on a deployment. Each is one transaction that first locks the deployment row
 * (`FOR UPDATE`), so it serialises with the controller's reconcile of the same deployment, which
 * takes the same lock. The NOTIFY triggers on `deployments` wake the controller after commit.
 * Creates are in create-deployments.ts.
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

/**
 * One statement, so one round trip and no explicit transaction: lock the row (as every command
 * does), change the target when it differs, and record the change in the history. In a data-modifying
 * CTE the UPDATE re-reads the row the lock waited for, as a second statement would.
 */
export async function scaleDeployment(db: Kysely<Tables>, userId: string, id: string, target: number): Promise<CommandResult> {
  const { rows } = await sql<{ found: boolean; changed: boolean }>`
    WITH current AS (
      SELECT id, target_replicas FROM deployments
      WHERE id = ${id} AND user_id = ${userId} AND deleted_at IS NULL
      FOR UPDATE
    ), scaled AS (
      UPDATE deployments d SET target_replicas = ${target}, generation = d.generation + 1, updated_at = now()
      FROM current c WHERE d.id = c.id AND c.target_replicas <> ${target}
      RETURNING d.id, c.target_replicas AS old
    ), recorded AS (
      INSERT INTO deployment_status_history (deployment_id, old_status, new_status, reason, changed_by, changed_at)
      SELECT id, 'replicas:' || old, 'replicas:' || ${target}::int, 'User-initiated scaling', ${userId}::uuid, clock_timestamp() FROM scaled
    )
    SELECT EXISTS (SELECT 1 FROM current) AS found, EXISTS (SELECT 1 FROM scaled) AS changed`.execute(db);
  if (!rows[0]?.found) throw new NotFoundError('deployment');
  return { changed: rows[0].changed };
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
