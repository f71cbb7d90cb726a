import { sql, type Kysely } from 'kysely';
import type { DeploymentStatus } from '../../domain/types.js';
import type { Tables } from '../tables.js';
import { replicaCountsLateral, type ReplicaCounts } from './replica-counts.js';

export interface DeploymentListItem {
  readonly id: string;
  readonly name: string;
  readonly status: DeploymentStatus;
  readonly targetReplicas: number;
  readonly counts: ReplicaCounts;
  readonly createdAt: Date;
}

/**
 * A keyset position: the last row's `created_at` in whole microseconds since the epoch (exact: a JS
 * Date holds only milliseconds, and PostgreSQL keeps microseconds, so a Date would skip or repeat
 * rows created within one millisecond) and its id.
 */
export interface ListPosition {
  readonly createdAtMicros: bigint;
  readonly id: string;
}

export interface DeploymentPage {
  readonly items: readonly DeploymentListItem[];
  /** Where the next page starts, or null when this page is the last. */
  readonly next: ListPosition | null;
}

interface Row {
  id: string;
  name: string;
  status: DeploymentStatus;
  target_replicas: number;
  created_at: Date;
  created_us: string;
  considered: number;
  running: number;
  failed: number;
}

/**
 * A user's live deployments, newest first, with replica counts, in one query over the index
 * idx_deployments_user_created (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL.
 */
export async function listDeployments(
  db: Kysely<Tables>,
  userId: string,
  options: { readonly limit: number; readonly after: ListPosition | null },
): Promise<DeploymentPage> {
  const after = options.after;
  const result = await sql<Row>`
    SELECT d.id, d.name, d.status, d.target_replicas, d.created_at,
           (extract(epoch FROM d.created_at) * 1000000)::bigint::text AS created_us,
           c.considered, c.running, c.failed
    FROM deployments d
    ${replicaCountsLateral()}
    WHERE d.user_id = ${userId} AND d.deleted_at IS NULL
      ${
        after
          ? sql`AND (d.created_at, d.id) < (timestamptz 'epoch' + ${after.createdAtMicros.toString()}::bigint * interval '1 microsecond', ${after.id}::uuid)`
          : sql``
      }
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT ${options.limit + 1}
  `.execute(db);
  const rows = result.rows.slice(0, options.limit);
  const last = rows.at(-1);
  return {
    items: rows.map((r) => ({
      id: r.id,
      name: r.name,
      status: r.status,
      targetReplicas: r.target_replicas,
      counts: { considered: r.considered, running: r.running, failed: r.failed },
      createdAt: r.created_at,
    })),
    next: result.rows.length > options.limit && last ? { createdAtMicros: BigInt(last.created_us), id: last.id } : null,
  };
}
