-- Replica events are written one row per deployment and statement instead of one row per replica:
-- the replicas a statement inserts or changes are kept in arrays on that row, and readers expand it
-- into one event per replica (src/db/queries/events.ts). A cold start writes one event row per
-- deployment it places instead of ten (bench: `npm run bench -- --only events`). The events a client
-- sees are unchanged, except that the replicas one statement wrote come grouped by deployment (each
-- group in the order the statement wrote them).
--
-- Ids: a row now owns a block of 65,536 ids. The sequence steps by 65,536, and the k-th replica of a
-- row (from 0) is event `id + k`; a row holds at most 65,536 replicas. A reader that has read every
-- row up to id h has read every event up to h + 65,535, and the next row's id is at least h + 65,536.
-- Rows written before this migration keep their ids (one event each); the first new row comes after
-- the last of them.
--
-- Down: expands the rows written meanwhile into one row per replica (the expanded rows get ids of
-- their own, so a client resuming across the downgrade gets `reset` or repeats, never a gap).

-- migrate:up
ALTER TABLE steady_events
    ADD COLUMN replica_ids UUID[] NULL,
    ADD COLUMN replica_statuses TEXT[] NULL,
    ADD COLUMN replica_node_ids UUID[] NULL,
    ADD COLUMN replica_reasons TEXT[] NULL,
    ADD COLUMN replica_revisions INTEGER[] NULL;

ALTER SEQUENCE steady_events_id_seq INCREMENT BY 65536;

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

-- migrate:down
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

ALTER SEQUENCE steady_events_id_seq INCREMENT BY 1;
-- Past the last block's end: every id handed out from here is above every id a reader has seen.
SELECT setval('steady_events_id_seq', last_value + 65535) FROM steady_events_id_seq WHERE is_called;

INSERT INTO steady_events (kind, deployment_id, subject_id, status, node_id, reason, revision, created_at)
SELECT 'replica', e.deployment_id, u.subject_id, u.status, u.node_id, u.reason, u.revision, e.created_at
FROM steady_events e
CROSS JOIN LATERAL unnest(e.replica_ids, e.replica_statuses, e.replica_node_ids, e.replica_reasons, e.replica_revisions)
    WITH ORDINALITY AS u(subject_id, status, node_id, reason, revision, ord)
WHERE e.replica_ids IS NOT NULL
ORDER BY e.id, u.ord;
DELETE FROM steady_events WHERE replica_ids IS NOT NULL;

ALTER TABLE steady_events
    DROP COLUMN replica_revisions,
    DROP COLUMN replica_reasons,
    DROP COLUMN replica_node_ids,
    DROP COLUMN replica_statuses,
    DROP COLUMN replica_ids;
