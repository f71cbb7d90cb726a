import type { Kysely } from 'kysely';
import type { NewHistory, Tables } from '../tables.js';

/** History rows in one statement. Callers pass their transaction so the row commits with the change. */
export async function insertHistory(db: Kysely<Tables>, rows: readonly NewHistory[]): Promise<void> {
  if (rows.length === 0) return;
  await db.insertInto('deployment_status_history').values([...rows]).execute();
}
