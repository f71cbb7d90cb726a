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
