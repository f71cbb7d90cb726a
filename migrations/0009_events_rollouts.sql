-- The event stream learns about rollouts and nodes (DESIGN.md section 8), additively:
--   deployment  events also carry the desired revision and the rollout as the status object shows it
--               (state, with `paused` for a paused deployment; reason; updated and available
--               replicas of the desired template), and are also written when any of those changes:
--               the revision, paused, the rollout's state, reason or best availability, or the
--               number of active replicas (which moves the updated count)
--   replica     events also carry the replica's revision
--   node        a node registered, changed status (ready, not_ready, cordoned, draining) or was
--               deleted (status `deleted`); shown to admins only. No deployment: deployment_id is
--               NULL for them. Heartbeats and allocation changes write nothing (replica events
--               already say that something moved).
-- Counts are copied as of the change, like 0005's, so a resumed stream shows what happened.
--
-- Down: throws node events away and drops the new columns (the events written meanwhile stay,
-- without them).

-- migrate:up
-- Used only by plpgsql bodies (parsed on first call), never in this transaction.
ALTER TYPE steady_event_kind ADD VALUE 'node';

ALTER TABLE steady_events
    ALTER COLUMN deployment_id DROP NOT NULL,
    ADD COLUMN revision INTEGER NULL,
    ADD COLUMN rollout_state TEXT NULL,
    ADD COLUMN updated_replicas INTEGER NULL,
    ADD COLUMN available_replicas INTEGER NULL,
    -- a node's name, kept for the events of a node deleted since
    ADD COLUMN subject_name TEXT NULL;

-- Deployment events for these deployments, with their replica counts and rollout as of now (the
-- counts as src/db/queries/deployment-status.ts computes them for the status object).
CREATE OR REPLACE FUNCTION steady_events_deployments(ids UUID[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO steady_events (kind, deployment_id, status, target_replicas, running_replicas, failed_replicas,
                               revision, rollout_state, reason, updated_replicas, available_replicas)
    SELECT 'deployment', d.id, d.status::text, d.target_replicas, c.running, c.failed,
           d.revision, CASE WHEN d.paused THEN 'paused' ELSE d.rollout_state END, d.rollout_reason, c.updated, c.available
    FROM deployments d
    LEFT JOIN deployment_revisions cur ON cur.deployment_id = d.id AND cur.revision = d.revision
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE r.status = 'running')::int AS running,
               count(*) FILTER (WHERE r.status = 'failed' AND NOT r.replaced)::int AS failed,
               count(*) FILTER (WHERE r.status <> 'failed' AND rv.template_revision = cur.template_revision)::int AS updated,
               count(*) FILTER (WHERE r.status = 'running' AND rv.template_revision = cur.template_revision
                 AND r.started_at <= now() - make_interval(secs => coalesce((d.strategy->>'min_ready_seconds')::float8, 0)))::int AS available
        FROM deployment_replicas r
        LEFT JOIN deployment_revisions rv ON rv.deployment_id = r.deployment_id AND rv.revision = r.revision
        WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running', 'failed')
    ) c
    WHERE d.id = ANY(ids)
    ORDER BY d.id
$$;

CREATE OR REPLACE FUNCTION steady_events_replicas_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted UUID[];
BEGIN
    INSERT INTO steady_events (kind, deployment_id, subject_id, status, node_id, reason, revision)
    SELECT 'replica', deployment_id, id, status::text, node_id, reason, revision FROM new_rows;
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
    INSERT INTO steady_events (kind, deployment_id, subject_id, status, node_id, reason, revision)
    SELECT 'replica', n.deployment_id, n.id, n.status::text, n.node_id, n.reason, n.revision
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status OR n.node_id IS DISTINCT FROM o.node_id OR n.reason IS DISTINCT FROM o.reason
       OR n.revision <> o.revision;
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

CREATE OR REPLACE FUNCTION steady_events_deployments_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids UUID[];
BEGIN
    SELECT array_agg(id) INTO ids FROM new_rows;
    IF ids IS NOT NULL THEN
        PERFORM steady_events_deployments(ids);
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
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
    IF changed IS NOT NULL THEN
        PERFORM steady_events_deployments(changed);
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_events_nodes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO steady_events (kind, subject_id, node_id, subject_name, status)
        SELECT 'node', id, id, name, status::text FROM new_rows ORDER BY id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO steady_events (kind, subject_id, node_id, subject_name, status)
        SELECT 'node', n.id, n.id, n.name, n.status::text
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status OR n.name <> o.name ORDER BY n.id;
    ELSE
        INSERT INTO steady_events (kind, subject_id, node_id, subject_name, status)
        SELECT 'node', id, id, name, 'deleted' FROM old_rows ORDER BY id;
    END IF;
    IF FOUND THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER nodes_events_insert AFTER INSERT ON nodes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_nodes_changed();
CREATE TRIGGER nodes_events_update AFTER UPDATE ON nodes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_nodes_changed();
CREATE TRIGGER nodes_events_delete AFTER DELETE ON nodes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_nodes_changed();

-- migrate:down
-- Throws node events away; the other events keep what 0005 knew of them.
DROP TRIGGER nodes_events_delete ON nodes;
DROP TRIGGER nodes_events_update ON nodes;
DROP TRIGGER nodes_events_insert ON nodes;
DROP FUNCTION steady_events_nodes_changed();
DELETE FROM steady_events WHERE deployment_id IS NULL;

CREATE OR REPLACE FUNCTION steady_events_deployments(ids UUID[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO steady_events (kind, deployment_id, status, target_replicas, running_replicas, failed_replicas)
    SELECT 'deployment', d.id, d.status::text, d.target_replicas, c.running, c.failed
    FROM deployments d
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE r.status = 'running')::int AS running,
               count(*) FILTER (WHERE r.status = 'failed' AND NOT r.replaced)::int AS failed
        FROM deployment_replicas r
        WHERE r.deployment_id = d.id AND r.status IN ('running', 'failed')
    ) c
    WHERE d.id = ANY(ids)
    ORDER BY d.id
$$;

CREATE OR REPLACE FUNCTION steady_events_replicas_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted UUID[];
BEGIN
    INSERT INTO steady_events (kind, deployment_id, subject_id, status, node_id, reason)
    SELECT 'replica', deployment_id, id, status::text, node_id, reason FROM new_rows;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(DISTINCT deployment_id) INTO counted FROM new_rows
    WHERE status = 'running' OR (status = 'failed' AND NOT replaced);
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
    INSERT INTO steady_events (kind, deployment_id, subject_id, status, node_id, reason)
    SELECT 'replica', n.deployment_id, n.id, n.status::text, n.node_id, n.reason
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status OR n.node_id IS DISTINCT FROM o.node_id OR n.reason IS DISTINCT FROM o.reason;
    wrote := FOUND;
    SELECT array_agg(deployment_id) INTO counted FROM (
        SELECT n.deployment_id FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status <> o.status OR n.replaced <> o.replaced
        GROUP BY n.deployment_id
        HAVING sum((n.status = 'running')::int - (o.status = 'running')::int) <> 0
            OR sum((n.status = 'failed' AND NOT n.replaced)::int - (o.status = 'failed' AND NOT o.replaced)::int) <> 0
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

CREATE OR REPLACE FUNCTION steady_events_deployments_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO steady_events (kind, deployment_id, status, target_replicas, running_replicas, failed_replicas)
    SELECT 'deployment', id, status::text, target_replicas, 0, 0 FROM new_rows;
    IF FOUND THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_events_deployments_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed UUID[];
BEGIN
    SELECT array_agg(n.id) INTO changed FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE n.status <> o.status OR n.target_replicas <> o.target_replicas;
    IF changed IS NOT NULL THEN
        PERFORM steady_events_deployments(changed);
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

ALTER TABLE steady_events
    DROP COLUMN subject_name,
    DROP COLUMN available_replicas,
    DROP COLUMN updated_replicas,
    DROP COLUMN rollout_state,
    DROP COLUMN revision,
    ALTER COLUMN deployment_id SET NOT NULL;
-- An enum value cannot be removed: the type is made again without it.
ALTER TABLE steady_events ALTER COLUMN kind TYPE TEXT;
DROP TYPE steady_event_kind;
CREATE TYPE steady_event_kind AS ENUM ('deployment', 'history', 'replica');
ALTER TABLE steady_events ALTER COLUMN kind TYPE steady_event_kind USING kind::steady_event_kind;
