import { sql, type Kysely } from 'kysely';
import type { Tables } from '../tables.js';

type Db = Kysely<Tables>;

/**
 * The event log (migration 0005) as readers see it.
 *
 * Ids come from a sequence, which is not commit-ordered: a transaction may draw id 10, another id 11
 * and commit first. A reader that went past 11 would never see 10. So readers only read up to a
 * *horizon* known to be final, found in three steps (`openHorizon`, then `horizonState` until ripe):
 *   1. h = the sequence's last_value: every id ≤ h has been handed out (CACHE 1);
 *   2. x = a fresh xid of the reader's own, assigned after step 1. Every transaction holding an id
 *      ≤ h drew it after taking its xid (the column default asks for the xid first), so before step 1,
 *      so its xid is older than x;
 *   3. once a snapshot's xmin is past x, every transaction older than x has committed or aborted, and
 *      the rows with ids ≤ h are all there is and ever will be: readers may go up to h's block end
 *      (`blockEnd`, below), and never repeat or skip an id. Until then, they wait (a transaction left
 *      open delays the stream, never breaks it).
 * Writers pay nothing for this: no lock, no second write.
 */

export type EventKind = 'deployment' | 'history' | 'replica' | 'node';

/** One event of the log, with what it is shown with (owner, names, the history row). */
export interface EventRecord {
  readonly id: bigint;
  readonly kind: EventKind;
  /** Null for node events. */
  readonly deploymentId: string | null;
  /** The deployment's owner: who may see the event (node events: admins only). */
  readonly userId: string | null;
  readonly deploymentName: string | null;
  readonly replicaId: string | null;
  readonly status: string | null;
  readonly nodeId: string | null;
  readonly nodeName: string | null;
  readonly reason: string | null;
  readonly targetReplicas: number | null;
  readonly runningReplicas: number | null;
  readonly failedReplicas: number | null;
  /** Deployment events: the desired revision; replica events: the replica's. */
  readonly revision: number | null;
  /** Deployment events: the rollout as the status object shows it (its reason is `reason`). */
  readonly rolloutState: string | null;
  readonly updatedReplicas: number | null;
  readonly availableReplicas: number | null;
  readonly history: { readonly oldStatus: string; readonly newStatus: string; readonly reason: string | null; readonly changedAt: Date } | null;
}

/**
 * Each row of the log owns a block of ids (migration 0011): a row of replica events holds up to this
 * many replicas, the k-th (from 0) being event `id + k`; any other row is one event, `id`.
 */
export const EVENT_BLOCK = 65_536n;

/**
 * The last id of row `rowId`'s block: having read every row up to `rowId` is having read every event
 * up to this id, and no later row has an id below it.
 */
export const blockEnd = (rowId: bigint): bigint => (rowId <= 0n ? 0n : rowId + EVENT_BLOCK - 1n);

export interface Horizon {
  /** Every id up to this one has been handed out. */
  readonly upTo: bigint;
  /** The reader's xid, assigned after `upTo` was read. */
  readonly xid: string;
}

/** The id of the last row handed out so far (0 before the first); its events end at `blockEnd` of it. */
export async function lastIssuedEventId(db: Db): Promise<bigint> {
  const { rows } = await sql<{ id: string }>`
    SELECT (CASE WHEN is_called THEN last_value ELSE last_value - 1 END)::text AS id FROM steady_events_id_seq`.execute(db);
  return BigInt(rows[0]?.id ?? '0');
}

/** Steps 1 and 2: two statements, in this order (see above). */
export async function openHorizon(db: Db, upTo?: bigint): Promise<Horizon> {
  const h = upTo ?? (await lastIssuedEventId(db));
  const { rows } = await sql<{ xid: string }>`SELECT pg_current_xact_id()::text AS xid`.execute(db);
  return { upTo: h, xid: rows[0]!.xid };
}

export interface HorizonState {
  /** Every transaction that could hold an id ≤ the horizon has finished. */
  readonly ripe: boolean;
}

/** Step 3. */
export async function horizonState(db: Db, horizon: Horizon): Promise<HorizonState> {
  const { rows } = await sql<{ ripe: boolean }>`
    SELECT pg_snapshot_xmin(pg_current_snapshot()) > ${horizon.xid}::xid8 AS ripe`.execute(db);
  return { ripe: rows[0]!.ripe };
}

export interface EventFilter {
  readonly userId?: string;
  readonly deploymentId?: string;
  /** With `userId`: node events too (admins). */
  readonly nodes?: boolean;
}

export interface EventPage {
  readonly events: EventRecord[];
  /** Retention's mark as an event id (events up to it are gone), read in the same snapshot as the events. */
  readonly deletedThrough: bigint;
}

/**
 * Events with after < id ≤ upTo, oldest first, at most `limit`. `upTo` must be at most the block end
 * of a ripe horizon (or a position reached by reading up to one). Events of deployments deleted for
 * good (hard delete) are gone with them.
 */
export async function readEvents(db: Db, after: bigint, upTo: bigint, filter: EventFilter, limit: number): Promise<EventPage> {
  // Rows first, at most `limit` of them in id order: each yields at least one event in the range (the
  // row holding `after` is read only when some of its replicas are past it), so `limit` rows are
  // enough for a page. Then the rows expand into their events. The events are joined laterally to
  // retention's one row: the mark and the page share one snapshot.
  const { rows } = await sql<EventRow>`
    SELECT r.deleted_through::text AS deleted_through, ev.*
    FROM steady_events_retention r
    LEFT JOIN LATERAL (
      SELECT (e.id + x.ord)::text AS id, e.kind::text AS kind, e.deployment_id, e.user_id, e.deployment_name, x.subject_id,
             x.status, x.node_id, coalesce(n.name, e.subject_name) AS node_name, x.reason, e.target_replicas, e.running_replicas,
             e.failed_replicas, x.revision, e.rollout_state, e.updated_replicas, e.available_replicas,
             h.old_status, h.new_status, h.reason AS history_reason, h.changed_at
      FROM (
        SELECT e.*, d.user_id, d.name AS deployment_name
        FROM steady_events e
        LEFT JOIN deployments d ON d.id = e.deployment_id
        WHERE e.id <= ${upTo.toString()}::bigint
          AND (e.id > ${after.toString()}::bigint
               OR (e.id > ${(after - EVENT_BLOCK + 1n).toString()}::bigint AND e.replica_ids IS NOT NULL
                   AND e.id + cardinality(e.replica_ids) - 1 > ${after.toString()}::bigint))
          -- Events of deployments deleted for good are gone with them.
          AND (d.id IS NOT NULL OR e.deployment_id IS NULL)
          ${filter.userId === undefined ? sql`` : filter.nodes ? sql`AND (d.user_id = ${filter.userId} OR e.deployment_id IS NULL)` : sql`AND d.user_id = ${filter.userId}`}
          ${filter.deploymentId === undefined ? sql`` : sql`AND e.deployment_id = ${filter.deploymentId}`}
        ORDER BY e.id
        LIMIT ${limit}
      ) e
      CROSS JOIN LATERAL (
        SELECT 0::bigint AS ord, e.subject_id, e.status, e.node_id, e.reason, e.revision WHERE e.replica_ids IS NULL
        UNION ALL
        SELECT u.ord - 1, u.subject_id, u.status, u.node_id, u.reason, u.revision
        FROM unnest(e.replica_ids, e.replica_statuses, e.replica_node_ids, e.replica_reasons, e.replica_revisions)
          WITH ORDINALITY AS u(subject_id, status, node_id, reason, revision, ord)
      ) x
      LEFT JOIN nodes n ON n.id = x.node_id
      LEFT JOIN deployment_status_history h ON e.kind = 'history' AND h.id = e.subject_id
      WHERE e.id + x.ord > ${after.toString()}::bigint AND e.id + x.ord <= ${upTo.toString()}::bigint
      ORDER BY e.id + x.ord
      LIMIT ${limit}
    ) ev ON true
    ORDER BY ev.id::bigint`.execute(db);
  const deletedThrough = blockEnd(BigInt(rows[0]?.deleted_through ?? '0'));
  return { events: rows.filter((r) => r.id !== null).map(toRecord), deletedThrough };
}

interface EventRow {
  id: string | null;
  kind: EventKind;
  deployment_id: string | null;
  user_id: string | null;
  deployment_name: string | null;
  subject_id: string | null;
  status: string | null;
  node_id: string | null;
  node_name: string | null;
  reason: string | null;
  target_replicas: number | null;
  running_replicas: number | null;
  failed_replicas: number | null;
  revision: number | null;
  rollout_state: string | null;
  updated_replicas: number | null;
  available_replicas: number | null;
  old_status: string | null;
  new_status: string | null;
  history_reason: string | null;
  changed_at: Date | string | null;
  deleted_through: string;
}

function toRecord(r: EventRow): EventRecord {
  return {
    id: BigInt(r.id!),
    kind: r.kind,
    deploymentId: r.deployment_id,
    userId: r.user_id,
    deploymentName: r.deployment_name,
    replicaId: r.kind === 'replica' ? r.subject_id : null,
    status: r.status,
    nodeId: r.node_id,
    nodeName: r.node_name,
    reason: r.reason,
    targetReplicas: r.target_replicas,
    runningReplicas: r.running_replicas,
    failedReplicas: r.failed_replicas,
    revision: r.revision,
    rolloutState: r.rollout_state,
    updatedReplicas: r.updated_replicas,
    availableReplicas: r.available_replicas,
    history:
      r.kind === 'history' && r.old_status !== null && r.new_status !== null && r.changed_at !== null
        ? { oldStatus: r.old_status, newStatus: r.new_status, reason: r.history_reason, changedAt: new Date(r.changed_at) }
        : null,
  };
}

/**
 * Deletes up to `batch` of the oldest events written before the retention window, and raises
 * retention's mark to the highest id deleted, in one statement (one transaction).
 */
export async function deleteExpiredEvents(db: Db, retentionMs: number, batch: number): Promise<number> {
  const { rows } = await sql<{ deleted: number }>`
    WITH oldest AS (
      SELECT id, created_at FROM steady_events ORDER BY id LIMIT ${batch}
    ), gone AS (
      DELETE FROM steady_events e USING oldest
      WHERE e.id = oldest.id AND oldest.created_at < now() - make_interval(secs => ${retentionMs / 1000})
      RETURNING e.id
    ), mark AS (
      UPDATE steady_events_retention SET deleted_through = greatest(deleted_through, (SELECT max(id) FROM gone))
      WHERE EXISTS (SELECT 1 FROM gone)
    )
    SELECT count(*)::int AS deleted FROM gone`.execute(db);
  return rows[0]?.deleted ?? 0;
}

