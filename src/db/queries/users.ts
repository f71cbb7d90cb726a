import type { Kysely } from 'kysely';
import type { Tables } from '../tables.js';

/**
 * The users row of a JWT subject, created on first use (the identity provider is the source of truth).
 * Two statements only the first time: an insert that does nothing on conflict (no row lock, no dead
 * tuple), then a read when the row already existed.
 */
export async function ensureUser(db: Kysely<Tables>, subject: string, username: string | null): Promise<string> {
  const inserted = await db
    .insertInto('users')
    .values({ subject, username })
    .onConflict((oc) => oc.column('subject').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted) return inserted.id;
  const existing = await db.selectFrom('users').select('id').where('subject', '=', subject).executeTakeFirstOrThrow();
  return existing.id;
}
