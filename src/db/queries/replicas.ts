import { sql, type Kysely } from 'kysely';
import { ConflictError, NotFoundError } from '../../domain/errors.js';
import type { ReplicaStatus } from '../../domain/types.js';
import { checkReplicaReport } from '../../domain/validation.js';
import type { AfterCommitWake } from '../after-commit-wake.js';
import type { ReplicaRow, Tables } from '../tables.js';

export interface ReplicaReport {
  readonly replicaId: string;
  /** The reporting node's name (its token's subject): only its own replicas may be reported. */
  readonly nodeName: string;
  readonly status: ReplicaStatus;
  readonly containerId: string | null;
  readonly reason: string | null;
}

export interface ReportResult {
  readonly replica: ReplicaRow;
  readonly changed: boolean;
}

/**
 * Apply a node agent's report on one of its replicas. Locks the deployment row first, then the
 * replica: the controller's reconcile takes the same locks in the same order, so the two serialise
 * instead of deadlocking, and neither acts on a replica status the other is changing.
 * Unknown replica, or one on another node → NotFoundError; an illegal transition → ConflictError.
 *
 * Every node reports, so these commits are the most numerous of all: they wake the controller and
 * the event readers through `wake`, after the commit, not with a NOTIFY that would make each of them
 * commit alone (migration 0015).
 */
export async function reportReplicaStatus(db: Kysely<Tables>, report: ReplicaReport, wake: AfterCommitWake): Promise<ReportResult> {
  const result = await db.transaction().execute(async (tx) => {
    await sql`SELECT set_config('steady.quiet', 'on', true), set_config('steady.events_wake', 'after_commit', true)`.execute(tx);
    const owner = await sql<{ id: string }>`
      SELECT d.id FROM deployments d
      WHERE d.id = (
        SELECT r.deployment_id FROM deployment_replicas r JOIN nodes n ON n.id = r.node_id
        WHERE r.id = ${report.replicaId} AND n.name = ${report.nodeName}
      )
      FOR UPDATE
    `.execute(tx);
    const deploymentId = owner.rows[0]?.id;
    if (!deploymentId) throw new NotFoundError('replica');

    const current = await sql<ReplicaRow>`
      SELECT r.* FROM deployment_replicas r JOIN nodes n ON n.id = r.node_id
      WHERE r.id = ${report.replicaId} AND n.name = ${report.nodeName}
      FOR UPDATE OF r
    `.execute(tx);
    const replica = current.rows[0];
    if (!replica) throw new NotFoundError('replica');

    const check = checkReplicaReport(replica.status, report.status);
    if (check.kind === 'unchanged') return { replica, changed: false };
    if (check.kind === 'illegal') throw new ConflictError(check.reason);

    const terminal = report.status === 'stopped' || report.status === 'failed';
    const updated = await tx
      .updateTable('deployment_replicas')
      .set({
        status: report.status,
        container_id: report.containerId ?? sql<string | null>`container_id`,
        started_at: report.status === 'running' ? sql<Date>`now()` : sql<Date | null>`started_at`,
        stopped_at: terminal ? sql<Date>`now()` : sql<Date | null>`stopped_at`,
        reason: report.reason,
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', report.replicaId)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (report.status === 'running') {
      // CrashLoopBackOff needs to know whether the deployment ever ran; the report is where we learn it.
      await tx
        .updateTable('deployments')
        .set({ ever_running: true })
        .where('id', '=', deploymentId)
        .where('ever_running', '=', false)
        .execute();
    }
    return { replica: updated, changed: true };
  });
  if (result.changed) wake.deployments([result.replica.deployment_id]);
  return result;
}
