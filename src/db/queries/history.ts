import { sql, type Kysely } from 'kysely';
import type { NewHistory, Tables } from '../tables.js';

/**
 * History rows in one statement. Callers pass their transaction, holding the deployment's row lock,
 * so the row commits with the change. `changed_at` is the moment of the write under that lock
 * (clock_timestamp), not the transaction's start (now()): history then sorts in the order the
 * changes really happened, even when a transaction that began earlier got the lock later.
 */
export async function insertHistory(db: Kysely<Tables>, rows: readonly NewHistory[]): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('deployment_status_history')
    .values(rows.map((row) => ({ changed_at: sql<Date>`clock_timestamp()`, ...row })))
    .execute();
}
