-- What the control loop needs beyond the seed, all additive:
--   deployments.generation       bumped by the API on every spec change (target, stop/start, delete)
--   deployments.status_reason    why the deployment is in its status now (e.g. Unschedulable: ...)
--   deployments.restart_count,
--   deployments.backoff_until,
--   deployments.ever_running     CrashLoopBackOff state, per deployment
--   deployment_replicas.updated_at, .reason, .replaced
--                                when and why a replica last changed; whether a failed one has been
--                                counted and replaced
--   steady_leader                the leader-election lease (one row per lease name, with a term)
--   partial indexes for the controller's hot queries, and the NOTIFY triggers.
--
-- NOTIFY hazards: NOTIFY takes a database-wide lock at commit, so the triggers notify once per
-- statement (transition tables), never per row, and stay silent for the controller's own writes
-- (it sets `steady.quiet = on` for its transaction). Node heartbeats do not notify at all; only a
-- node's arrival or a change of its status or capacity does.

-- migrate:up
ALTER TABLE deployments
    ADD COLUMN generation INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN status_reason VARCHAR(500) NULL,
    ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN backoff_until TIMESTAMPTZ NULL,
    ADD COLUMN ever_running BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE deployment_replicas
    ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN reason VARCHAR(500) NULL,
    ADD COLUMN replaced BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE steady_leader (
    name TEXT PRIMARY KEY,
    leader_id TEXT NOT NULL,
    term BIGINT NOT NULL,
    elected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    renewed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

-- Resources held per node: every replica that is not terminal.
CREATE INDEX idx_replicas_node_allocating ON deployment_replicas (node_id, deployment_id)
    WHERE status IN ('pending', 'starting', 'running', 'stopping');
-- Replicas waiting for a node.
CREATE INDEX idx_replicas_unscheduled ON deployment_replicas (deployment_id)
    WHERE node_id IS NULL AND status = 'pending';
-- Failed replicas not yet replaced.
CREATE INDEX idx_replicas_failed_unreplaced ON deployment_replicas (deployment_id)
    WHERE status = 'failed' AND NOT replaced;
-- Retention: terminal rows by age.
CREATE INDEX idx_replicas_terminal_age ON deployment_replicas (updated_at)
    WHERE status IN ('stopped', 'failed');
-- Deployments that are not settled by definition.
CREATE INDEX idx_deployments_unsettled ON deployments (status)
    WHERE status IN ('pending', 'scheduled');
-- The list endpoint: a user's live deployments, newest first, keyset-paginated.
CREATE INDEX idx_deployments_user_created ON deployments (user_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

CREATE FUNCTION steady_quiet() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('steady.quiet', true), '') = 'on'
$$;

-- One notification per statement; payload is a comma-separated list of deployment ids, or `*` when
-- the list would not fit in a notification (8000 bytes): the listener then resyncs everything.
CREATE FUNCTION steady_notify_ids(ids TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ids IS NULL OR ids = '' THEN
        RETURN;
    END IF;
    IF length(ids) > 7900 THEN
        ids := '*';
    END IF;
    PERFORM pg_notify('steady_deployment', ids);
END
$$;

CREATE FUNCTION steady_notify_deployments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT steady_quiet() THEN
        PERFORM steady_notify_ids((SELECT string_agg(DISTINCT id::text, ',') FROM new_rows));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_notify_replicas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT steady_quiet() THEN
        PERFORM steady_notify_ids((SELECT string_agg(DISTINCT deployment_id::text, ',') FROM new_rows));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_notify_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('steady_node', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER deployments_notify_insert AFTER INSERT ON deployments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_notify_deployments();
CREATE TRIGGER deployments_notify_update AFTER UPDATE ON deployments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_notify_deployments();
CREATE TRIGGER replicas_notify_insert AFTER INSERT ON deployment_replicas
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_notify_replicas();
CREATE TRIGGER replicas_notify_update AFTER UPDATE ON deployment_replicas
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_notify_replicas();
CREATE TRIGGER nodes_notify_insert AFTER INSERT ON nodes
    FOR EACH ROW EXECUTE FUNCTION steady_notify_nodes();
CREATE TRIGGER nodes_notify_update AFTER UPDATE ON nodes
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status
        OR OLD.cpu_cores IS DISTINCT FROM NEW.cpu_cores
        OR OLD.memory_mb IS DISTINCT FROM NEW.memory_mb
        OR OLD.gpu_units IS DISTINCT FROM NEW.gpu_units
        OR OLD.storage_gb IS DISTINCT FROM NEW.storage_gb
    ) EXECUTE FUNCTION steady_notify_nodes();

-- migrate:down
DROP TRIGGER nodes_notify_update ON nodes;
DROP TRIGGER nodes_notify_insert ON nodes;
DROP TRIGGER replicas_notify_update ON deployment_replicas;
DROP TRIGGER replicas_notify_insert ON deployment_replicas;
DROP TRIGGER deployments_notify_update ON deployments;
DROP TRIGGER deployments_notify_insert ON deployments;
DROP FUNCTION steady_notify_nodes();
DROP FUNCTION steady_notify_replicas();
DROP FUNCTION steady_notify_deployments();
DROP FUNCTION steady_notify_ids(TEXT);
DROP FUNCTION steady_quiet();
DROP INDEX idx_deployments_user_created;
DROP INDEX idx_deployments_unsettled;
DROP INDEX idx_replicas_terminal_age;
DROP INDEX idx_replicas_failed_unreplaced;
DROP INDEX idx_replicas_unscheduled;
DROP INDEX idx_replicas_node_allocating;
DROP TABLE steady_leader;
ALTER TABLE deployment_replicas DROP COLUMN replaced, DROP COLUMN reason, DROP COLUMN updated_at;
ALTER TABLE deployments DROP COLUMN ever_running, DROP COLUMN backoff_until, DROP COLUMN restart_count,
    DROP COLUMN status_reason, DROP COLUMN generation;
