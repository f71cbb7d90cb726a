import { sql, type Kysely } from 'kysely';
import { DEFAULT_STRATEGY, mergeStrategy, type StrategyJson } from '../../domain/strategy.js';
import type { DeploymentStatus, ReplicaStatus, Resources, RolloutState, Strategy } from '../../domain/types.js';
import type { Tables } from '../tables.js';
import { readyAtSql, replicaCountsLateral, type ReplicaCounts } from './replica-counts.js';
import type { Template } from './revisions.js';

export interface HistoryEntry {
  readonly oldStatus: string;
  readonly newStatus: string;
  /** UTC ISO-8601 with milliseconds, as the API writes it (formatted by PostgreSQL: isoUtc). */
  readonly changedAt: string;
  readonly reason: string | null;
}

export interface ReplicaSummary {
  readonly id: string;
  readonly nodeId: string | null;
  /** The node's name, for people reading the status (ids are for programs). */
  readonly nodeName: string | null;
  readonly status: ReplicaStatus;
  readonly containerId: string | null;
  /** UTC ISO-8601 with milliseconds, as the API writes them (isoUtc). */
  readonly startedAt: string | null;
  readonly stoppedAt: string | null;
  readonly revision: number;
  readonly reason: string | null;
}

export interface RolloutRecord {
  /** `paused` while the deployment is paused, whatever the stored state. */
  readonly state: RolloutState | 'paused';
  readonly revision: number;
  /** Active replicas running the desired template (of any revision with that template). */
  readonly updatedReplicas: number;
  /** Of those, running for at least min_ready_seconds. */
  readonly availableReplicas: number;
  readonly reason: string | null;
}

export interface DeploymentStatusRecord {
  readonly id: string;
  readonly name: string;
  readonly status: DeploymentStatus;
  readonly containerImage: string;
  readonly targetReplicas: number;
  readonly resources: Resources;
  readonly template: Template;
  readonly strategy: Strategy;
  readonly revision: number;
  /** Bumped by every change of the spec; observedGeneration is the one the controller has acted on. */
  readonly generation: number;
  readonly observedGeneration: number;
  readonly reason: string | null;
  readonly rollout: RolloutRecord;
  readonly counts: ReplicaCounts;
  /** Every non-terminal replica, then the 10 most recently finished ones. */
  readonly replicas: readonly ReplicaSummary[];
  /** The last 10 history rows, newest first. */
  readonly history: readonly HistoryEntry[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export const RECENT_TERMINAL_REPLICAS = 10;
export const RECENT_HISTORY = 10;

/** A deployment's row as the status object reads it (loadDeploymentStatuses; a new one: insert-deployments.ts). */
export interface HeadRow {
  id: string;
  name: string;
  container_image: string;
  status: DeploymentStatus;
  target_replicas: number;
  created_at: Date;
  updated_at: Date;
  cpu_cores: number | null;
  memory_mb: number | null;
  gpu_units: number | null;
  storage_gb: number | null;
  revision: number;
  generation: number;
  observed_generation: number;
  status_reason: string | null;
  paused: boolean;
  rollout_state: RolloutState;
  rollout_reason: string | null;
  strategy: StrategyJson;
  command: string[] | null;
  env: Record<string, string> | null;
  updated: number;
  available: number;
  considered: number;
  running: number;
  failed: number;
  history: { old_status: string; new_status: string; changed_at: string; reason: string | null }[];
  replicas: ReplicaJson[];
}

interface ReplicaJson {
  id: string;
  node_id: string | null;
  node_name: string | null;
  status: ReplicaStatus;
  container_id: string | null;
  started_at: string | null;
  stopped_at: string | null;
  revision: number;
  reason: string | null;
}

/**
 * A timestamp column as the API writes timestamps (what Date.prototype.toISOString gives: UTC,
 * milliseconds, `Z`), for the JSON the status statement builds: formatted once, by PostgreSQL.
 */
export const isoUtc = (column: string) => sql.raw(`to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`);

export interface StatusKey {
  readonly userId: string;
  readonly id: string;
}

export const statusKeyOf = (key: StatusKey): string => `${key.userId}/${key.id}`;

/** A status object with the version of the rows it was read from (see `statusVersionLateral`). */
export interface VersionedStatus {
  readonly record: DeploymentStatusRecord;
  readonly version: string;
}

/**
 * The deployments asked for, by primary key whatever the statistics (joined on (id, user_id), the
 * generic plan of the prepared statement read every deployment of the user once per call, planned
 * while the statistics said the user had one), with their resources; only the user's own, not
 * soft-deleted (`liveDeploymentsWhere`).
 */
const deploymentsByKey = (keys: readonly StatusKey[]) => sql`
  FROM unnest(${keys.map((k) => k.id)}::uuid[], ${keys.map((k) => k.userId)}::uuid[]) AS k(id, user_id)
  CROSS JOIN LATERAL (SELECT *, xmin AS row_xmin, ctid AS row_ctid FROM deployments WHERE id = k.id LIMIT 1) d
  LEFT JOIN deployment_resources res ON res.deployment_id = d.id`;
const liveDeploymentsWhere = sql`WHERE d.user_id = k.user_id AND d.deleted_at IS NULL`;

/**
 * The version of everything a deployment's status object is read from, as one string: equal
 * versions, equal status objects. Each row version PostgreSQL keeps has its own (xmin, ctid) — an
 * UPDATE writes a new one, a DELETE removes it — so the version is made of the deployment's and its
 * resources' (xmin, ctid), a count and a sum of hashes of every replica's and every revision's (the
 * counts read them all), and the last 10 history rows' (the list shows those). Node names, read
 * through the replicas' node_id, never change (a deleted node sets its replicas' node_id to NULL).
 * One input is time: `available` counts replicas running for min_ready_seconds, so the version
 * holds the next instant a running replica reaches it, and changes once that instant is past.
 */
const statusVersionLateral = () => sql`
  LEFT JOIN LATERAL (
    SELECT concat_ws('/', d.row_xmin, d.row_ctid, res.xmin, res.ctid, rp.n, rp.h, rp.ready_next, rv.n, rv.h, hs.h) AS version
    FROM (
      SELECT count(*) AS n, sum(hashtextextended(r.xmin::text || r.ctid::text, 0)) AS h,
             min(${readyAtSql}) FILTER (WHERE r.status = 'running' AND ${readyAtSql} > statement_timestamp()) AS ready_next
      FROM deployment_replicas r WHERE r.deployment_id = d.id
    ) rp,
    (SELECT count(*) AS n, sum(hashtextextended(x.xmin::text || x.ctid::text, 0)) AS h FROM deployment_revisions x WHERE x.deployment_id = d.id) rv,
    (SELECT string_agg(y.xmin::text || y.ctid::text, ',') AS h
     FROM (SELECT xmin, ctid FROM deployment_status_history WHERE deployment_id = d.id ORDER BY changed_at DESC, id DESC LIMIT ${RECENT_HISTORY}) y) hs
  ) v ON true`;

/**
 * The current version of users' live deployments (see `statusVersionLateral`), in one statement for
 * any number of them: what a status read from a cache checks before answering. Keyed by
 * `statusKeyOf`; a key is missing when the id is unknown, another user's, or soft-deleted.
 */
export async function loadStatusVersions(db: Kysely<Tables>, keys: readonly StatusKey[]): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map();
  const { rows } = await sql<{ id: string; user_id: string; version: string }>`
    SELECT d.id, d.user_id, v.version
    ${deploymentsByKey(keys)}
    ${statusVersionLateral()}
    ${liveDeploymentsWhere}
  `.execute(db);
  return new Map(rows.map((row) => [statusKeyOf({ userId: row.user_id, id: row.id }), row.version]));
}

/**
 * Users' live deployments with everything the status object shows, and its version, in one
 * statement for any number of them: each deployment with its resources, replica counts, the bounded
 * replica list and the last history rows (both aggregated as JSON). Keyed by `statusKeyOf`; a key is
 * missing when the id is unknown, another user's, or soft-deleted (the caller cannot tell those
 * apart, by design).
 */
export async function loadDeploymentStatuses(db: Kysely<Tables>, keys: readonly StatusKey[]): Promise<Map<string, VersionedStatus>> {
  if (keys.length === 0) return new Map();
  const { rows } = await sql<HeadRow & { user_id: string; version: string }>`
    SELECT d.id, d.user_id, d.name, d.status, d.target_replicas, d.created_at, d.updated_at, d.container_image,
           res.cpu_cores, res.memory_mb, res.gpu_units, res.storage_gb, d.revision, d.generation, d.observed_generation, d.status_reason, d.paused,
           d.rollout_state, d.rollout_reason, d.strategy, cur.command, cur.env, c.updated, c.available,
           c.considered, c.running, c.failed, h.history, rl.replicas, v.version
    ${deploymentsByKey(keys)}
    LEFT JOIN deployment_revisions cur ON cur.deployment_id = d.id AND cur.revision = d.revision
    ${replicaCountsLateral()}
    ${statusVersionLateral()}
    LEFT JOIN LATERAL (
      SELECT coalesce(json_agg(json_build_object(
               'old_status', x.old_status,
               'new_status', x.new_status,
               'changed_at', ${isoUtc('x.changed_at')},
               'reason', x.reason
             ) ORDER BY x.changed_at DESC, x.id DESC), '[]'::json) AS history
      FROM (
        SELECT * FROM deployment_status_history
        WHERE deployment_id = d.id
        ORDER BY changed_at DESC, id DESC
        LIMIT ${RECENT_HISTORY}
      ) x
    ) h ON true
    LEFT JOIN LATERAL (
      SELECT coalesce(json_agg(json_build_object(
               'id', r.id, 'node_id', r.node_id, 'node_name', n.name, 'status', r.status, 'container_id', r.container_id,
               'started_at', ${isoUtc('r.started_at')}, 'stopped_at', ${isoUtc('r.stopped_at')},
               'revision', r.revision, 'reason', r.reason
             ) ORDER BY r.grp, CASE WHEN r.grp = 0 THEN r.at END ASC, CASE WHEN r.grp = 1 THEN r.at END DESC, r.id), '[]'::json) AS replicas
      FROM (
        -- NOT IN rather than the four active states: the partial index on exactly those, (node_id,
        -- deployment_id), would be read whole for one deployment.
        (SELECT id, node_id, status, container_id, started_at, stopped_at, revision, reason, created_at AS at, 0 AS grp
         FROM deployment_replicas
         WHERE deployment_id = d.id AND status NOT IN ('stopped', 'failed'))
        UNION ALL
        (SELECT id, node_id, status, container_id, started_at, stopped_at, revision, reason, updated_at AS at, 1 AS grp
         FROM deployment_replicas
         WHERE deployment_id = d.id AND status IN ('stopped', 'failed')
         ORDER BY updated_at DESC, id DESC
         LIMIT ${RECENT_TERMINAL_REPLICAS})
      ) r
      LEFT JOIN nodes n ON n.id = r.node_id
    ) rl ON true
    ${liveDeploymentsWhere}
  `.execute(db);
  return new Map(rows.map((row) => [statusKeyOf({ userId: row.user_id, id: row.id }), { record: statusRecordOf(row), version: row.version }]));
}

export function statusRecordOf(row: HeadRow): DeploymentStatusRecord {
  const resources: Resources = {
    cpuCores: row.cpu_cores ?? 0,
    memoryMb: row.memory_mb ?? 0,
    gpuUnits: row.gpu_units ?? 0,
    storageGb: row.storage_gb ?? 0,
  };
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    containerImage: row.container_image,
    targetReplicas: row.target_replicas,
    resources,
    template: { containerImage: row.container_image, resources, command: row.command, env: row.env },
    strategy: mergeStrategy(DEFAULT_STRATEGY, row.strategy),
    revision: row.revision,
    generation: row.generation,
    observedGeneration: row.observed_generation,
    reason: row.status_reason,
    rollout: {
      state: row.paused ? 'paused' : row.rollout_state,
      revision: row.revision,
      updatedReplicas: row.updated,
      availableReplicas: row.available,
      reason: row.rollout_reason,
    },
    counts: { considered: row.considered, running: row.running, failed: row.failed },
    replicas: row.replicas.map((r) => ({
      id: r.id,
      nodeId: r.node_id,
      nodeName: r.node_name,
      status: r.status,
      containerId: r.container_id,
      startedAt: r.started_at,
      stoppedAt: r.stopped_at,
      revision: r.revision,
      reason: r.reason,
    })),
    history: row.history.map((h) => ({
      oldStatus: h.old_status,
      newStatus: h.new_status,
      changedAt: h.changed_at,
      reason: h.reason,
    })),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
