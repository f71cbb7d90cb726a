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
    // One statement: the transaction's settings, then the deployment's lock and the replica's, in
    // that order (FOR UPDATE OF locks in the order named). Reports are the most numerous writes:
    // each round trip is time the deployment's row stays locked.
    const current = await sql<ReplicaRow & { quiet: string; wake: string }>`
      SELECT r.*, set_config('steady.quiet', 'on', true) AS quiet, set_config('steady.events_wake', 'after_commit', true) AS wake
      FROM deployment_replicas r
      JOIN nodes n ON n.id = r.node_id
      JOIN deployments d ON d.id = r.deployment_id
      WHERE r.id = ${report.replicaId} AND n.name = ${report.nodeName}
      FOR UPDATE OF d, r
    `.execute(tx);
    const found = current.rows[0];
    if (!found) throw new NotFoundError('replica');
    const { quiet: _quiet, wake: _wake, ...replica } = found;

    const check = checkReplicaReport(replica.status, report.status);
    if (check.kind === 'unchanged') return { replica, changed: false };
    if (check.kind === 'illegal') throw new ConflictError(check.reason);

    const terminal = report.status === 'stopped' || report.status === 'failed';
    const running = report.status === 'running';
    // CrashLoopBackOff needs to know whether the deployment ever ran; the report is where we learn it.
    const updated = await sql<ReplicaRow>`
      WITH ran AS (
        UPDATE deployments SET ever_running = true WHERE id = ${replica.deployment_id} AND NOT ever_running AND ${running}
      )
      UPDATE deployment_replicas SET
        status = ${report.status}::replicastatus,
        container_id = coalesce(${report.containerId}, container_id),
        started_at = CASE WHEN ${running} THEN now() ELSE started_at END,
        stopped_at = CASE WHEN ${terminal} THEN now() ELSE stopped_at END,
        reason = ${report.reason},
        updated_at = now()
      WHERE id = ${report.replicaId}
      RETURNING *
    `.execute(tx);
    return { replica: updated.rows[0]!, changed: true };
  });
  if (result.changed) wake.deployments([result.replica.deployment_id]);
  return result;
}
