import { sql, type Kysely } from 'kysely';
import type { DeploymentStatus, RolloutState } from '../../domain/types.js';
import type { Tables } from '../tables.js';
import { replicaCountsLateral, type ReplicaCounts } from './replica-counts.js';

export interface DeploymentListItem {
  readonly id: string;
  readonly name: string;
  readonly status: DeploymentStatus;
  readonly containerImage: string;
  readonly targetReplicas: number;
  readonly counts: ReplicaCounts;
  readonly createdAt: Date;
  readonly revision: number;
  /** As the status object shows it (`paused` while paused). */
  readonly rollout: {
    readonly state: RolloutState | 'paused';
    readonly updatedReplicas: number;
    readonly availableReplicas: number;
    readonly reason: string | null;
  };
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

export interface PageKey {
  readonly userId: string;
  readonly limit: number;
  readonly after: ListPosition | null;
}

export const pageKeyOf = (k: PageKey): string => `${k.userId}/${k.limit}/${k.after ? `${k.after.createdAtMicros}/${k.after.id}` : ''}`;

interface Row {
  n: string;
  id: string;
  name: string;
  status: DeploymentStatus;
  container_image: string;
  target_replicas: number;
  created_at: Date;
  created_us: string;
  considered: number;
  running: number;
  failed: number;
  revision: number;
  paused: boolean;
  rollout_state: RolloutState;
  rollout_reason: string | null;
  updated: number;
  available: number;
}

/** A list item's columns, over `deployments d` and the replica counts `c`. */
const ITEM_COLUMNS = sql`d.id, d.name, d.status, d.container_image, d.target_replicas, d.created_at,
  (extract(epoch FROM d.created_at) * 1000000)::bigint::text AS created_us, c.considered, c.running, c.failed,
  d.revision, d.paused, d.rollout_state, d.rollout_reason, c.updated, c.available`;

// No cursor = a position after every row (keyset with a sentinel, so each page is the same index range scan).
const END = { micros: '9223372036854775807', id: 'ffffffff-ffff-ffff-ffff-ffffffffffff' };

/**
 * Pages of users' live deployments, newest first, with replica counts: one statement for any number
 * of pages, each an index range scan of idx_deployments_user_created (user_id, created_at DESC,
 * id DESC) WHERE deleted_at IS NULL, from its keyset position. Keyed by `pageKeyOf`.
 */
export async function listDeploymentPages(db: Kysely<Tables>, keys: readonly PageKey[]): Promise<Map<string, DeploymentPage>> {
  if (keys.length === 0) return new Map();
  const { rows } = await sql<Row>`
    SELECT k.n::text AS n, x.*
    FROM unnest(${keys.map((k) => k.userId)}::uuid[], ${keys.map((k) => k.limit + 1)}::int[],
                ${keys.map((k) => k.after?.createdAtMicros.toString() ?? END.micros)}::bigint[],
                ${keys.map((k) => k.after?.id ?? END.id)}::uuid[]) WITH ORDINALITY AS k(user_id, lim, after_us, after_id, n)
    CROSS JOIN LATERAL (
      SELECT ${ITEM_COLUMNS}
      FROM deployments d
      ${replicaCountsLateral()}
      WHERE d.user_id = k.user_id AND d.deleted_at IS NULL
        AND (d.created_at, d.id) < (CASE WHEN k.after_us = ${END.micros}::bigint THEN timestamptz 'infinity'
                                         ELSE timestamptz 'epoch' + k.after_us * interval '1 microsecond' END, k.after_id)
      ORDER BY d.created_at DESC, d.id DESC
      LIMIT k.lim
    ) x
    ORDER BY k.n, x.created_at DESC, x.id DESC
  `.execute(db);
  const byKey = new Map<string, Row[]>();
  for (const row of rows) {
    const list = byKey.get(row.n);
    if (list) list.push(row);
    else byKey.set(row.n, [row]);
  }
  return new Map(keys.map((key, i) => [pageKeyOf(key), pageOf(byKey.get(String(i + 1)) ?? [], key.limit)]));
}

/**
 * The user's live deployment named `name`, as a one-item page (or an empty one): names are unique
 * among a user's live deployments, so this is one probe of idx_deployments_user_name_unique.
 */
export async function listDeploymentsNamed(db: Kysely<Tables>, userId: string, name: string): Promise<DeploymentPage> {
  const { rows } = await sql<Row>`
    SELECT '1' AS n, ${ITEM_COLUMNS}
    FROM deployments d
    ${replicaCountsLateral()}
    WHERE d.user_id = ${userId} AND d.name = ${name} AND d.deleted_at IS NULL
  `.execute(db);
  return pageOf(rows, 1);
}

function pageOf(found: readonly Row[], limit: number): DeploymentPage {
  const rows = found.slice(0, limit);
  const last = rows.at(-1);
  return {
    items: rows.map((r) => ({
      id: r.id,
      name: r.name,
      status: r.status,
      containerImage: r.container_image,
      targetReplicas: r.target_replicas,
      counts: { considered: r.considered, running: r.running, failed: r.failed },
      createdAt: r.created_at,
      revision: r.revision,
      rollout: {
        state: r.paused ? 'paused' : r.rollout_state,
        updatedReplicas: r.updated,
        availableReplicas: r.available,
        reason: r.rollout_reason,
      },
    })),
    next: found.length > limit && last ? { createdAtMicros: BigInt(last.created_us), id: last.id } : null,
  };
}
