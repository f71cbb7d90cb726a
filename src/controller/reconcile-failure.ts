import { isTransientDbError } from '../db/database.js';
import { StaleReadError } from '../db/controller/reconcile-store.js';

/**
 * Why a reconcile failed, which is how it is retried (one policy, read by the reconciler and the
 * controller; the work queue times every retry with the key's back-off):
 * - `transient`: the database is unreachable, restarting or out of connections, or the transaction
 *   lost a serialization failure or a deadlock (isTransientDbError). The same work succeeds when tried
 *   again, so a batch is not split; each key retries with its back-off.
 * - `conflict`: rows a deployment's plan was made from changed under it (a stale read; an overcommit
 *   or an unschedulable node the allocation trigger refused). A batch is retried one deployment at a
 *   time, so the others go on.
 * Both are expected under concurrency: only a run of them is worth a warning.
 * - `fault`: anything else, a bad row or a bug. A batch is retried one deployment at a time so the
 *   others go on, and each failure is a warning.
 */
export type ReconcileFailure = 'transient' | 'conflict' | 'fault';

// ST001 overcommit and ST003 an unschedulable node, refused by the allocation trigger.
const CONFLICT_CODES: ReadonlySet<string> = new Set(['ST001', 'ST003']);

export function reconcileFailure(err: unknown): ReconcileFailure {
  if (isTransientDbError(err)) return 'transient';
  if (err instanceof StaleReadError || CONFLICT_CODES.has(String((err as { code?: unknown } | null)?.code))) return 'conflict';
  return 'fault';
}

/** Failures in a row, for one deployment, before an expected failure is logged as a warning. */
export const QUIET_FAILURES = 5;
