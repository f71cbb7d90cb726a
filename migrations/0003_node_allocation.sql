-- Resources held on each node, kept by the database itself and checked there.
--
-- nodes.allocated_* is the sum of the resources of every replica on the node that is not terminal
-- (pending, starting, running, stopping). Statement-level triggers on deployment_replicas keep it
-- exact whoever writes (the controller, the API on behalf of agents, retention, a node delete), and
-- refuse any statement that raises a node's allocation above its capacity: "no node is ever
-- overcommitted" holds even if two controllers decide placements from stale reads. The UPDATE of
-- the node row takes its row lock and sees the latest committed value, so concurrent placements on
-- one node serialise here. A node whose capacity is lowered below its allocation is allowed (that
-- is the world changing, not a scheduling decision); only increases are checked.
-- Errors raised: SQLSTATE ST001 (node_overcommitted), which the controller retries after re-reading.

-- migrate:up
ALTER TABLE nodes
    ADD COLUMN allocated_cpu_cores NUMERIC(12, 3) NOT NULL DEFAULT 0,
    ADD COLUMN allocated_memory_mb BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN allocated_gpu_units BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN allocated_storage_gb BIGINT NOT NULL DEFAULT 0;

-- Applies per-node deltas (rows of node_id, cpu, mem, gpu, storage) and checks increases.
CREATE FUNCTION steady_apply_allocation(deltas JSONB) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    over TEXT;
BEGIN
    IF deltas IS NULL OR jsonb_array_length(deltas) = 0 THEN
        RETURN;
    END IF;
    -- Lock the nodes in id order first: concurrent writers then queue instead of deadlocking.
    PERFORM 1 FROM nodes WHERE id IN (SELECT (e->>'node_id')::uuid FROM jsonb_array_elements(deltas) e)
        ORDER BY id FOR UPDATE;
    WITH d AS (
        SELECT (e->>'node_id')::uuid AS node_id, (e->>'cpu')::numeric AS cpu, (e->>'mem')::bigint AS mem,
               (e->>'gpu')::bigint AS gpu, (e->>'sto')::bigint AS sto
        FROM jsonb_array_elements(deltas) e
    ), updated AS (
        UPDATE nodes n SET
            allocated_cpu_cores = n.allocated_cpu_cores + d.cpu,
            allocated_memory_mb = n.allocated_memory_mb + d.mem,
            allocated_gpu_units = n.allocated_gpu_units + d.gpu,
            allocated_storage_gb = n.allocated_storage_gb + d.sto
        FROM d WHERE n.id = d.node_id
        RETURNING n.name, d.cpu, d.mem, d.gpu, d.sto, n.allocated_cpu_cores, n.allocated_memory_mb,
                  n.allocated_gpu_units, n.allocated_storage_gb, n.cpu_cores, n.memory_mb, n.gpu_units, n.storage_gb
    )
    SELECT string_agg(name, ', ') INTO over FROM updated
    WHERE (cpu > 0 AND allocated_cpu_cores > cpu_cores::numeric + 0.0005)
       OR (mem > 0 AND allocated_memory_mb > memory_mb)
       OR (gpu > 0 AND allocated_gpu_units > gpu_units)
       OR (sto > 0 AND allocated_storage_gb > storage_gb);
    IF over IS NOT NULL THEN
        RAISE EXCEPTION 'node_overcommitted: %', over USING ERRCODE = 'ST001';
    END IF;
END
$$;

CREATE FUNCTION steady_allocation_deltas(changes JSONB) RETURNS JSONB LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('node_id', node_id, 'cpu', cpu, 'mem', mem, 'gpu', gpu, 'sto', sto) ORDER BY node_id), '[]')
    FROM (
        SELECT (c->>'node_id')::uuid AS node_id,
               sum((c->>'sign')::int * res.cpu_cores::numeric) AS cpu,
               sum((c->>'sign')::int * res.memory_mb) AS mem,
               sum((c->>'sign')::int * res.gpu_units) AS gpu,
               sum((c->>'sign')::int * res.storage_gb) AS sto
        FROM jsonb_array_elements(changes) c
        JOIN deployment_resources res ON res.deployment_id = (c->>'deployment_id')::uuid
        GROUP BY 1
    ) per_node
    WHERE cpu <> 0 OR mem <> 0 OR gpu <> 0 OR sto <> 0
$$;

CREATE FUNCTION steady_allocating(status replicastatus) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT status IN ('pending', 'starting', 'running', 'stopping')
$$;

CREATE FUNCTION steady_allocation_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(jsonb_build_object('node_id', node_id, 'deployment_id', deployment_id, 'sign', 1))
        FROM new_rows WHERE node_id IS NOT NULL AND steady_allocating(status))));
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_allocation_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(change) FROM (
            SELECT jsonb_build_object('node_id', o.node_id, 'deployment_id', o.deployment_id, 'sign', -1) AS change
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.node_id IS NOT NULL AND steady_allocating(o.status)
              AND (n.node_id IS DISTINCT FROM o.node_id OR NOT steady_allocating(n.status))
            UNION ALL
            SELECT jsonb_build_object('node_id', n.node_id, 'deployment_id', n.deployment_id, 'sign', 1)
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE n.node_id IS NOT NULL AND steady_allocating(n.status)
              AND (n.node_id IS DISTINCT FROM o.node_id OR NOT steady_allocating(o.status))
        ) changes)));
    RETURN NULL;
END
$$;

CREATE FUNCTION steady_allocation_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(jsonb_build_object('node_id', node_id, 'deployment_id', deployment_id, 'sign', -1))
        FROM old_rows WHERE node_id IS NOT NULL AND steady_allocating(status))));
    RETURN NULL;
END
$$;

-- A cascade from deployments deletes resources and replicas in an order PostgreSQL does not promise;
-- whichever goes first releases the allocation, exactly once (the replica trigger needs the
-- resources row to compute a delta; this one needs the replica rows).
CREATE FUNCTION steady_allocation_on_resources_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(jsonb_build_object('node_id', node_id, 'deployment_id', deployment_id, 'sign', -1))
        FROM deployment_replicas
        WHERE deployment_id = OLD.deployment_id AND node_id IS NOT NULL AND steady_allocating(status))));
    RETURN OLD;
END
$$;

CREATE TRIGGER resources_allocation_delete BEFORE DELETE ON deployment_resources
    FOR EACH ROW EXECUTE FUNCTION steady_allocation_on_resources_delete();
CREATE TRIGGER replicas_allocation_insert AFTER INSERT ON deployment_replicas
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_allocation_on_insert();
CREATE TRIGGER replicas_allocation_update AFTER UPDATE ON deployment_replicas
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_allocation_on_update();
CREATE TRIGGER replicas_allocation_delete AFTER DELETE ON deployment_replicas
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION steady_allocation_on_delete();

-- A database with live replicas (one that went down past this migration and up again) starts exact.
UPDATE nodes n SET allocated_cpu_cores = a.cpu, allocated_memory_mb = a.mem, allocated_gpu_units = a.gpu, allocated_storage_gb = a.sto
FROM (
    SELECT r.node_id, sum(res.cpu_cores::numeric) AS cpu, sum(res.memory_mb) AS mem, sum(res.gpu_units) AS gpu, sum(res.storage_gb) AS sto
    FROM deployment_replicas r JOIN deployment_resources res ON res.deployment_id = r.deployment_id
    WHERE r.node_id IS NOT NULL AND steady_allocating(r.status)
    GROUP BY r.node_id
) a
WHERE n.id = a.node_id;

-- migrate:down
DROP TRIGGER resources_allocation_delete ON deployment_resources;
DROP FUNCTION steady_allocation_on_resources_delete();
DROP TRIGGER replicas_allocation_delete ON deployment_replicas;
DROP TRIGGER replicas_allocation_update ON deployment_replicas;
DROP TRIGGER replicas_allocation_insert ON deployment_replicas;
DROP FUNCTION steady_allocation_on_delete();
DROP FUNCTION steady_allocation_on_update();
DROP FUNCTION steady_allocation_on_insert();
DROP FUNCTION steady_allocating(replicastatus);
DROP FUNCTION steady_allocation_deltas(JSONB);
DROP FUNCTION steady_apply_allocation(JSONB);
ALTER TABLE nodes DROP COLUMN allocated_storage_gb, DROP COLUMN allocated_gpu_units,
    DROP COLUMN allocated_memory_mb, DROP COLUMN allocated_cpu_cores;
