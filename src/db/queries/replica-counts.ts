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
 * A LATERAL subquery over one deployment's replicas (`d` is the deployments alias), yielding
 * `considered`, `running` and `failed`.
 *
 * Health looks at every replica except `stopping`/`stopped` ones (those are history of a scale-down
 * or a stop, not health) and except `failed` replicas the controller has already replaced
 * (`replaced`): such a row lingers until retention deletes it (24 h by default), and counting it
 * would keep a deployment that recovered from one crash `degraded` for a day. A failed replica not
 * yet replaced (in CrashLoopBackOff, or with no room to replace it) still counts.
 */
export function replicaCountsLateral(): RawBuilder<unknown> {
  return sql`LEFT JOIN LATERAL (
    SELECT
      count(*) FILTER (WHERE r.status NOT IN ('stopping', 'stopped') AND NOT (r.status = 'failed' AND r.replaced))::int AS considered,
      count(*) FILTER (WHERE r.status = 'running')::int AS running,
      count(*) FILTER (WHERE r.status = 'failed' AND NOT r.replaced)::int AS failed
    FROM deployment_replicas r
    WHERE r.deployment_id = d.id
  ) c ON true`;
}

/**
 * A LATERAL subquery over one deployment's replicas (`d` is the deployments alias), yielding the
 * rollout's counts as the status object shows them: `updated`, the active replicas running the
 * desired template (of whatever revision carries it), and `available`, those of them running for at
 * least the strategy's min_ready_seconds.
 */
export function rolloutCountsLateral(): RawBuilder<unknown> {
  return sql`LEFT JOIN LATERAL (
    SELECT count(*)::int AS updated,
           count(*) FILTER (WHERE r.status = 'running'
             AND r.started_at <= now() - make_interval(secs => coalesce((d.strategy->>'min_ready_seconds')::float8, 0)))::int AS available
    FROM deployment_replicas r
    JOIN deployment_revisions rv ON rv.deployment_id = r.deployment_id AND rv.revision = r.revision
    WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running')
      AND rv.template_revision = (SELECT cur.template_revision FROM deployment_revisions cur WHERE cur.deployment_id = d.id AND cur.revision = d.revision)
  ) ro ON true`;
}
