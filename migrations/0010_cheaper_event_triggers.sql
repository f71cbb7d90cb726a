-- The event triggers of 0009 write the same events for less (bench: `npm run bench -- --only events`):
--   * node status events come from a row trigger that fires only when a node's status or name
--     changes (`UPDATE OF status, name … WHEN`). The statement trigger it replaces ran, with its
--     transition tables, on every allocation change and every heartbeat, and wrote nothing for them.
--   * a new deployment's event is written from the inserted row: it can have no replica yet, so
--     every count is 0, and nothing needs counting.
--   * the updated and available counts compare each replica's revision with the revisions that
--     share the desired template (usually one), read once per deployment, instead of joining every
--     replica to its revision.
-- The events themselves are unchanged.

-- migrate:up
CREATE OR REPLACE FUNCTION steady_events_deployments(ids UUID[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO steady_events (kind, deployment_id, status, target_replicas, running_replicas, failed_replicas,
                               revision, rollout_state, reason, updated_replicas, available_replicas)
    SELECT 'deployment', d.id, d.status::text, d.target_replicas, c.running, c.failed,
           d.revision, CASE WHEN d.paused THEN 'paused' ELSE d.rollout_state END, d.rollout_reason, c.updated, c.available
    FROM deployments d
    CROSS JOIN LATERAL (
        SELECT ARRAY(SELECT same.revision FROM deployment_revisions cur
                     JOIN deployment_revisions same ON same.deployment_id = cur.deployment_id
                                                   AND same.template_revision = cur.template_revision
                     WHERE cur.deployment_id = d.id AND cur.revision = d.revision) AS revisions
    ) desired
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE r.status = 'running')::int AS running,
               count(*) FILTER (WHERE r.status = 'failed' AND NOT r.replaced)::int AS failed,
               count(*) FILTER (WHERE r.status <> 'failed' AND r.revision = ANY(desired.revisions))::int AS updated,
               count(*) FILTER (WHERE r.status = 'running' AND r.revision = ANY(desired.revisions)
                 AND r.started_at <= now() - make_interval(secs => coalesce((d.strategy->>'min_ready_seconds')::float8, 0)))::int AS available
        FROM deployment_replicas r
        WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running', 'failed')
    ) c
    WHERE d.id = ANY(ids)
    ORDER BY d.id
$$;

CREATE OR REPLACE FUNCTION steady_events_deployments_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO steady_events (kind, deployment_id, status, target_replicas, running_replicas, failed_replicas,
                               revision, rollout_state, reason, updated_replicas, available_replicas)
    SELECT 'deployment', id, status::text, target_replicas, 0, 0,
           revision, CASE WHEN paused THEN 'paused' ELSE rollout_state END, rollout_reason, 0, 0
    FROM new_rows ORDER BY id;
    IF FOUND THEN
        PERFORM pg_notify('steady_events', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_events_node_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO steady_events (kind, subject_id, node_id, subject_name, status)
    VALUES ('node', NEW.id, NEW.id, NEW.name, NEW.status::text);
    PERFORM pg_notify('steady_events', '');
    RETURN NULL;
END
$$;

DROP TRIGGER nodes_events_update ON nodes;
CREATE TRIGGER nodes_events_update AFTER UPDATE OF status, name ON nodes
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION steady_events_node_changed();

-- migrate:down
DROP TRIGGER nodes_events_update ON nodes;
CREATE TRIGGER nodes_events_update AFTER UPDATE ON nodes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_events_nodes_changed();
DROP FUNCTION steady_events_node_changed();

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
