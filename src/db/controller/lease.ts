import { sql, type Kysely } from 'kysely';
import type { Tables } from '../tables.js';

export interface Lease {
  readonly term: number;
}

/**
 * Takes the lease if nobody holds it or it has expired (the database's clock decides), starting a new
 * term. Returns null while another holder's lease is valid.
 */
export async function acquireLease(db: Kysely<Tables>, name: string, holder: string, leaseMs: number): Promise<Lease | null> {
  const { rows } = await sql<{ term: string }>`
    INSERT INTO steady_leader (name, leader_id, term, expires_at)
    VALUES (${name}, ${holder}, 1, now() + make_interval(secs => ${leaseMs / 1000}))
    ON CONFLICT (name) DO UPDATE
      SET leader_id = excluded.leader_id, term = steady_leader.term + 1, elected_at = now(), renewed_at = now(),
          expires_at = excluded.expires_at
      WHERE steady_leader.expires_at <= now()
    RETURNING term`.execute(db);
  return rows[0] ? { term: Number(rows[0].term) } : null;
}

/** Extends our lease; false when it is no longer ours (expired and taken, or released). */
export async function renewLease(db: Kysely<Tables>, name: string, holder: string, lease: Lease, leaseMs: number): Promise<boolean> {
  const result = await sql`
    UPDATE steady_leader SET renewed_at = now(), expires_at = now() + make_interval(secs => ${leaseMs / 1000})
    WHERE name = ${name} AND leader_id = ${holder} AND term = ${lease.term} AND expires_at > now()`.execute(db);
  return Number(result.numAffectedRows ?? 0) === 1;
}

/** Gives the lease up so a standby can take over at its next retry instead of waiting for expiry. */
export async function releaseLease(db: Kysely<Tables>, name: string, holder: string, lease: Lease): Promise<void> {
  await sql`
    UPDATE steady_leader SET expires_at = now()
    WHERE name = ${name} AND leader_id = ${holder} AND term = ${lease.term}`.execute(db);
}
