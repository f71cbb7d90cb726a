import { sql, type RawBuilder } from 'kysely';

/** Per-deployment replica counts, the inputs of the health rule and of the list's counters. */
export interface ReplicaCounts {
  /** Replicas health looks at (see `healthCountsOf`). */
  readonly considered: number;
  readonly running: number;
  /** Failed replicas not yet replaced by the controller. */
  readonly failed: number;
}

/**
 * When replica `r` of deployment `d`, running since `started_at`, has run for the strategy's
 * min_ready_seconds: from then on it counts as available.
 */
export const readyAtSql = sql`(r.started_at + make_interval(secs => coalesce((d.strategy->>'min_ready_seconds')::float8, 0)))`;

/**
 * One LATERAL pass over a deployment's replicas (`d` is the deployments alias), yielding the counts
 * health and the rollout need: `considered`, `running`, `failed`, and the rollout's `updated` and
 * `available`.
 *
 * Health looks at every replica except `stopping`/`stopped` ones (those are history of a scale-down
 * or a stop, not health) and except `failed` replicas the controller has already replaced
 * (`replaced`): such a row lingers until retention deletes it (24 h by default), and counting it
 * would keep a deployment that recovered from one crash `degraded` for a day. A failed replica not
 * yet replaced (in CrashLoopBackOff, or with no room to replace it) still counts.
 *
 * `updated` counts the active replicas running the desired template, of whatever revision carries
 * it (the revisions with the desired revision's template_revision, read once per deployment), and
 * `available` those of them running for at least the strategy's min_ready_seconds.
 */
export function replicaCountsLateral(): RawBuilder<unknown> {
  return sql`LEFT JOIN LATERAL (
    SELECT
      count(*) FILTER (WHERE r.status NOT IN ('stopping', 'stopped') AND NOT (r.status = 'failed' AND r.replaced))::int AS considered,
      count(*) FILTER (WHERE r.status = 'running')::int AS running,
      count(*) FILTER (WHERE r.status = 'failed' AND NOT r.replaced)::int AS failed,
      count(*) FILTER (WHERE r.status IN ('pending', 'starting', 'running') AND r.revision = ANY(tpl.revisions))::int AS updated,
      count(*) FILTER (WHERE r.status = 'running' AND r.revision = ANY(tpl.revisions)
        AND ${readyAtSql} <= statement_timestamp())::int AS available
    FROM (
      SELECT coalesce(array_agg(rv.revision), '{}') AS revisions
      FROM deployment_revisions rv
      WHERE rv.deployment_id = d.id
        AND rv.template_revision = (SELECT t.template_revision FROM deployment_revisions t WHERE t.deployment_id = d.id AND t.revision = d.revision)
    ) tpl
    LEFT JOIN deployment_replicas r ON r.deployment_id = d.id
  ) c ON true`;
}
