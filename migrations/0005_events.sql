-- The event stream's log (GET /api/events, DESIGN.md section 8): one row per change an operator can
-- watch, written by triggers in the transaction that makes the change, so any API process serves any
-- client and nothing is lost in a restart. Three kinds:
--   deployment  its status, target, running or failed-unreplaced count changed (the counts decide
--               health; they are copied as of the change, so a resumed stream shows what happened)
--   history     a status-history row was written (the row itself is joined when read: it never changes)
--   replica     a replica appeared, or its status, node or reason changed
-- Each trigger runs once per statement (transition tables) and sends one NOTIFY on `steady_events`
-- with an empty payload: PostgreSQL folds identical notifications of a transaction into one, so a
-- transaction notifies once however many statements it runs (NOTIFY takes a database-wide lock at
-- commit; see DESIGN.md section 2).
--
-- Ids come from a sequence, drawn after the row change that the event reports (so later changes of one
-- replica or deployment always get larger ids), but a sequence is not commit-ordered: readers never
-- read past a horizon until every transaction that could still hold a smaller id has finished
-- (src/db/queries/events.ts). That reasoning needs two things from here:
--   * CACHE 1 on the sequence: last_value is then the highest id handed out by anyone;
--   * the writing transaction holds its xid before it draws an id (the default asks for it first).
-- Retention (the controller) deletes old rows in small batches and records the highest id it
-- deleted in steady_events_retention, so a reader asked to resume before it answers `reset`.

-- migrate:up
CREATE TYPE steady_event_kind AS ENUM ('deployment', 'history', 'replica');

CREATE SEQUENCE steady_events_id_seq AS BIGINT CACHE 1;

CREATE TABLE steady_events (
    id BIGINT PRIMARY KEY
        DEFAULT (CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('steady_events_id_seq') END),
    kind steady_event_kind NOT NULL,
    deployment_id UUID NOT NULL,
    -- the replica (replica events) or the history row (history events)
    subject_id UUID NULL,
    -- the replica's or the deployment's status
    status TEXT NULL,
    node_id UUID NULL,
    reason TEXT NULL,
    target_replicas INTEGER NULL,
    running_replicas INTEGER NULL,
    failed_replicas INTEGER NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER SEQUENCE steady_events_id_seq OWNED BY steady_events.id;

CREATE TABLE steady_events_retention (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    deleted_through BIGINT NOT NULL DEFAULT 0
);
INSERT INTO steady_events_retention DEFAULT VALUES;

-- Deployment events for these deployments, with their replica counts as of now.
CREATE FUNCTION steady_events_deployments(ids UUID[]) RETURNS void LANGUAGE sql AS $$
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

CREATE FUNCTION steady_events_replicas_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION steady_events_replicas_updated() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION steady_events_deployments_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO steady_events (kind, deployment_id, status, target_replicas, running_replicas, failed_replicas)
    SELECT 'deployment', id, status::text, target_replicas, 0, 0 FROM new_rows;
    IF FOUND THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_events_deployments_updated() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION steady_events_history_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO steady_events (kind, deployment_id, subject_id)
    SELECT 'history', deployment_id, id FROM new_rows;
    IF FOUND THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER replicas_events_insert AFTER INSERT ON deployment_replicas
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_replicas_inserted();
CREATE TRIGGER replicas_events_update AFTER UPDATE ON deployment_replicas
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_replicas_updated();
CREATE TRIGGER deployments_events_insert AFTER INSERT ON deployments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_deployments_inserted();
CREATE TRIGGER deployments_events_update AFTER UPDATE ON deployments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_deployments_updated();
CREATE TRIGGER history_events_insert AFTER INSERT ON deployment_status_history
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_history_inserted();

-- migrate:down
-- Throws the event log away (clients resuming from one of its ids will get `reset` after an up).
DROP TRIGGER history_events_insert ON deployment_status_history;
DROP TRIGGER deployments_events_update ON deployments;
DROP TRIGGER deployments_events_insert ON deployments;
DROP TRIGGER replicas_events_update ON deployment_replicas;
DROP TRIGGER replicas_events_insert ON deployment_replicas;
DROP FUNCTION steady_events_history_inserted();
DROP FUNCTION steady_events_deployments_updated();
DROP FUNCTION steady_events_deployments_inserted();
DROP FUNCTION steady_events_replicas_updated();
DROP FUNCTION steady_events_replicas_inserted();
DROP FUNCTION steady_events_deployments(UUID[]);
DROP TABLE steady_events_retention;
DROP TABLE steady_events;
DROP TYPE steady_event_kind;
