-- One deployment event per deployment per controller transaction, not one per statement.
-- A reconcile that places replicas and moves its deployment to `scheduled` wrote two: one from the
-- replica INSERT (counting the deployment's replicas) and one from the deployment UPDATE (counting
-- them again). No reader could ever see the first, as it commits with the second. The controller now
-- sets `steady.deployment_events = deferred` for its transaction: the replica triggers still write
-- every replica event, but only note the deployments whose counts changed (in the transaction-local
-- setting `steady.deployment_events_due`); the next UPDATE of deployments in that transaction (the
-- controller's patch, after its last replica statement) writes one event for each deployment noted
-- or changed, and clears the note. A transaction with no patch calls `steady_events_flush_deferred`
-- itself. Everything else (the API, agents, sweeps) writes as before. Clients see the same events,
-- less the first of each such pair (bench: `npm run bench -- --only events`).

-- migrate:up
CREATE FUNCTION steady_deployment_events_deferred() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('steady.deployment_events', true), '') = 'deferred'
$$;

CREATE FUNCTION steady_deployment_events_noted() RETURNS UUID[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('steady.deployment_events_due', true), '')::uuid[], '{}')
$$;

CREATE FUNCTION steady_deployment_events_note(ids UUID[]) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('steady.deployment_events_due', (steady_deployment_events_noted() || ids)::text, true)
$$;

-- Writes the deployment events noted so far in this transaction, and those of `more`, once each.
CREATE FUNCTION steady_events_flush_deferred(more UUID[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ids UUID[] := steady_deployment_events_noted() || coalesce(more, '{}');
BEGIN
    PERFORM set_config('steady.deployment_events_due', '', true);
    IF cardinality(ids) > 0 THEN
        PERFORM steady_events_deployments(ids);
        PERFORM pg_notify('steady_events', '');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION steady_events_deployments_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed UUID[];
BEGIN
    SELECT array_agg(n.id) INTO changed FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status OR n.target_replicas <> o.target_replicas OR n.revision <> o.revision
       OR n.paused <> o.paused OR n.rollout_state <> o.rollout_state OR n.rollout_reason IS DISTINCT FROM o.rollout_reason
       OR n.rollout_best_available <> o.rollout_best_available;
    IF steady_deployment_events_deferred() THEN
        PERFORM steady_events_flush_deferred(changed);
    ELSIF changed IS NOT NULL THEN
        PERFORM steady_events_deployments(changed);
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_events_replicas_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted UUID[];
BEGIN
    INSERT INTO steady_events (kind, deployment_id, replica_ids, replica_statuses, replica_node_ids, replica_reasons, replica_revisions)
    SELECT 'replica', deployment_id, array_agg(id ORDER BY pos), array_agg(status::text ORDER BY pos), array_agg(node_id ORDER BY pos),
           array_agg(reason ORDER BY pos), array_agg(revision ORDER BY pos)
    FROM (
        SELECT *, (row_number() OVER (PARTITION BY deployment_id ORDER BY pos) - 1) / 65536 AS block
        FROM (SELECT *, row_number() OVER () AS pos FROM new_rows) n
    ) r
    GROUP BY deployment_id, block
    ORDER BY min(pos);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(DISTINCT deployment_id) INTO counted FROM new_rows
    WHERE status IN ('pending', 'starting', 'running') OR (status = 'failed' AND NOT replaced);
    IF counted IS NOT NULL THEN
        IF steady_deployment_events_deferred() THEN
            PERFORM steady_deployment_events_note(counted);
        ELSE
            PERFORM steady_events_deployments(counted);
        END IF;
    END IF;
    PERFORM pg_notify('steady_events', '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_events_replicas_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted UUID[];
    wrote BOOLEAN;
BEGIN
    INSERT INTO steady_events (kind, deployment_id, replica_ids, replica_statuses, replica_node_ids, replica_reasons, replica_revisions)
    SELECT 'replica', deployment_id, array_agg(id ORDER BY pos), array_agg(status::text ORDER BY pos), array_agg(node_id ORDER BY pos),
           array_agg(reason ORDER BY pos), array_agg(revision ORDER BY pos)
    FROM (
        SELECT *, (row_number() OVER (PARTITION BY deployment_id ORDER BY pos) - 1) / 65536 AS block
        FROM (
            SELECT n.*, row_number() OVER () AS pos
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status <> o.status OR n.node_id IS DISTINCT FROM o.node_id OR n.reason IS DISTINCT FROM o.reason
               OR n.revision <> o.revision
        ) n
    ) r
    GROUP BY deployment_id, block
    ORDER BY min(pos);
    wrote := FOUND;
    SELECT array_agg(deployment_id) INTO counted FROM (
        SELECT n.deployment_id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status OR n.replaced <> o.replaced OR n.revision <> o.revision
        GROUP BY n.deployment_id
        HAVING sum((n.status = 'running')::int - (o.status = 'running')::int) <> 0
            OR sum((n.status = 'failed' AND NOT n.replaced)::int - (o.status = 'failed' AND NOT o.replaced)::int) <> 0
            OR sum((n.status IN ('pending', 'starting', 'running'))::int - (o.status IN ('pending', 'starting', 'running'))::int) <> 0
            OR bool_or(n.revision <> o.revision)
    ) changed;
    IF counted IS NOT NULL AND steady_deployment_events_deferred() THEN
        PERFORM steady_deployment_events_note(counted);
    ELSIF counted IS NOT NULL THEN
        PERFORM steady_events_deployments(counted);
        wrote := true;
    END IF;
    IF wrote THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;


-- migrate:down
CREATE OR REPLACE FUNCTION steady_events_deployments_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed UUID[];
BEGIN
    SELECT array_agg(n.id) INTO changed FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status OR n.target_replicas <> o.target_replicas OR n.revision <> o.revision
       OR n.paused <> o.paused OR n.rollout_state <> o.rollout_state OR n.rollout_reason IS DISTINCT FROM o.rollout_reason
       OR n.rollout_best_available <> o.rollout_best_available;
    IF changed IS NOT NULL THEN
        PERFORM steady_events_deployments(changed);
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_events_replicas_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted UUID[];
BEGIN
    INSERT INTO steady_events (kind, deployment_id, replica_ids, replica_statuses, replica_node_ids, replica_reasons, replica_revisions)
    SELECT 'replica', deployment_id, array_agg(id ORDER BY pos), array_agg(status::text ORDER BY pos), array_agg(node_id ORDER BY pos),
           array_agg(reason ORDER BY pos), array_agg(revision ORDER BY pos)
    FROM (
        SELECT *, (row_number() OVER (PARTITION BY deployment_id ORDER BY pos) - 1) / 65536 AS block
        FROM (SELECT *, row_number() OVER () AS pos FROM new_rows) n
    ) r
    GROUP BY deployment_id, block
    ORDER BY min(pos);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(DISTINCT deployment_id) INTO counted FROM new_rows
    WHERE status IN ('pending', 'starting', 'running') OR (status = 'failed' AND NOT replaced);
    IF counted IS NOT NULL THEN
        PERFORM steady_events_deployments(counted);
    END IF;
    PERFORM pg_notify('steady_events', '');
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_events_replicas_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted UUID[];
    wrote BOOLEAN;
BEGIN
    INSERT INTO steady_events (kind, deployment_id, replica_ids, replica_statuses, replica_node_ids, replica_reasons, replica_revisions)
    SELECT 'replica', deployment_id, array_agg(id ORDER BY pos), array_agg(status::text ORDER BY pos), array_agg(node_id ORDER BY pos),
           array_agg(reason ORDER BY pos), array_agg(revision ORDER BY pos)
    FROM (
        SELECT *, (row_number() OVER (PARTITION BY deployment_id ORDER BY pos) - 1) / 65536 AS block
        FROM (
            SELECT n.*, row_number() OVER () AS pos
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status <> o.status OR n.node_id IS DISTINCT FROM o.node_id OR n.reason IS DISTINCT FROM o.reason
               OR n.revision <> o.revision
        ) n
    ) r
    GROUP BY deployment_id, block
    ORDER BY min(pos);
    wrote := FOUND;
    SELECT array_agg(deployment_id) INTO counted FROM (
        SELECT n.deployment_id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status OR n.replaced <> o.replaced OR n.revision <> o.revision
        GROUP BY n.deployment_id
        HAVING sum((n.status = 'running')::int - (o.status = 'running')::int) <> 0
            OR sum((n.status = 'failed' AND NOT n.replaced)::int - (o.status = 'failed' AND NOT o.replaced)::int) <> 0
            OR sum((n.status IN ('pending', 'starting', 'running'))::int - (o.status IN ('pending', 'starting', 'running'))::int) <> 0
            OR bool_or(n.revision <> o.revision)
    ) changed;
    IF counted IS NOT NULL THEN
        PERFORM steady_events_deployments(counted);
        wrote := true;
    END IF;
    IF wrote THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;


DROP FUNCTION steady_events_flush_deferred(UUID[]);
DROP FUNCTION steady_deployment_events_note(UUID[]);
DROP FUNCTION steady_deployment_events_noted();
DROP FUNCTION steady_deployment_events_deferred();
