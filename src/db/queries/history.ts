import { sql, type Kysely } from 'kysely';
import type { Tables } from '../tables.js';

export interface HistoryRow {
  readonly deploymentId: string;
  readonly oldStatus: string;
  readonly newStatus: string;
  readonly reason: string | null;
  /** The user who asked for the change; null for the controller. */
  readonly changedBy: string | null;
}

/**
 * History rows in one statement, whatever their number (arrays through unnest: one statement text,
 * prepared once). Callers pass their transaction, holding the deployments' row locks, so the rows
 * commit with the change. `changed_at` is the moment of the write under that lock (clock_timestamp,
 * per row, in the order given), not the transaction's start (now()): history then sorts in the order
 * the changes really happened, even when a transaction that began earlier got the lock later.
 */
export async function insertHistory(db: Kysely<Tables>, rows: readonly HistoryRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    INSERT INTO deployment_status_history (deployment_id, old_status, new_status, reason, changed_by, changed_at)
    SELECT deployment_id, old_status, new_status, reason, changed_by, clock_timestamp()
    FROM unnest(${rows.map((r) => r.deploymentId)}::uuid[], ${rows.map((r) => r.oldStatus)}::text[],
                ${rows.map((r) => r.newStatus)}::text[], ${rows.map((r) => r.reason?.slice(0, 500) ?? null)}::text[],
                ${rows.map((r) => r.changedBy)}::uuid[])
         WITH ORDINALITY AS v(deployment_id, old_status, new_status, reason, changed_by, n)
    ORDER BY n`.execute(db);
}
