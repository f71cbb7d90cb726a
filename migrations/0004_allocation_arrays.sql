-- Node allocation without JSON: the triggers of 0003 passed per-row changes through jsonb (build,
-- aggregate, expand, parse) to one shared helper. Here the triggers pass arrays of the changed
-- replicas, which one helper prices and sums per node in SQL, which halves the cost of inserting a batch of
-- placed replicas (the controller's hottest statement). Same rules: nodes locked in id order, only
-- increases checked, SQLSTATE ST001 on overcommit.
--
-- Also fixes a leak of 0003: deleting a deployment (hard delete, cascading to its resources and
-- replicas) released nothing when the replicas' cascade ran first, because the replica trigger fires
-- after the statement, by which time the resources row it prices the replicas with is gone. A
-- deployment's replicas are now deleted first, by a trigger of its own, while its resources are there.

-- migrate:up
CREATE FUNCTION steady_apply_deltas(p_nodes UUID[], p_cpu NUMERIC[], p_mem BIGINT[], p_gpu BIGINT[], p_sto BIGINT[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    over TEXT;
BEGIN
    IF p_nodes IS NULL OR cardinality(p_nodes) = 0 THEN
        RETURN;
    END IF;
    -- Lock the nodes in id order first: concurrent writers then queue instead of deadlocking.
    PERFORM 1 FROM nodes WHERE id = ANY(p_nodes) ORDER BY id FOR UPDATE;
    WITH d AS (
        SELECT * FROM unnest(p_nodes, p_cpu, p_mem, p_gpu, p_sto) AS d(node_id, cpu, mem, gpu, sto)
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

-- Prices replica changes, given as (node, deployment, +1 or -1) triples, with their deployments'
-- resources, sums them per node and applies them.
CREATE FUNCTION steady_apply_changes(p_nodes UUID[], p_deployments UUID[], p_signs INT[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ids UUID[]; cpu NUMERIC[]; mem BIGINT[]; gpu BIGINT[]; sto BIGINT[];
BEGIN
    SELECT array_agg(node_id ORDER BY node_id), array_agg(c ORDER BY node_id), array_agg(m ORDER BY node_id),
           array_agg(g ORDER BY node_id), array_agg(s ORDER BY node_id)
    INTO ids, cpu, mem, gpu, sto
    FROM (
        SELECT ch.node_id, sum(ch.sign * res.cpu_cores::numeric) AS c, sum(ch.sign * res.memory_mb) AS m,
               sum(ch.sign * res.gpu_units) AS g, sum(ch.sign * res.storage_gb) AS s
        FROM unnest(p_nodes, p_deployments, p_signs) AS ch(node_id, deployment_id, sign)
        JOIN deployment_resources res ON res.deployment_id = ch.deployment_id
        GROUP BY ch.node_id
    ) per_node
    WHERE c <> 0 OR m <> 0 OR g <> 0 OR s <> 0;
    PERFORM steady_apply_deltas(ids, cpu, mem, gpu, sto);
END
$$;

-- Each trigger hands over the replicas that start or stop holding resources on a node.
CREATE OR REPLACE FUNCTION steady_allocation_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(1) INTO r_nodes, r_deployments, r_signs
    FROM new_rows WHERE node_id IS NOT NULL AND steady_allocating(status);
    PERFORM steady_apply_changes(r_nodes, r_deployments, r_signs);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(sign) INTO r_nodes, r_deployments, r_signs
    FROM (
        SELECT o.node_id, o.deployment_id, -1 AS sign
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.node_id IS NOT NULL AND steady_allocating(o.status)
          AND (n.node_id IS DISTINCT FROM o.node_id OR NOT steady_allocating(n.status))
        UNION ALL
        SELECT n.node_id, n.deployment_id, 1 AS sign
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.node_id IS NOT NULL AND steady_allocating(n.status)
          AND (n.node_id IS DISTINCT FROM o.node_id OR NOT steady_allocating(o.status))
    ) changes;
    PERFORM steady_apply_changes(r_nodes, r_deployments, r_signs);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(-1) INTO r_nodes, r_deployments, r_signs
    FROM old_rows WHERE node_id IS NOT NULL AND steady_allocating(status);
    PERFORM steady_apply_changes(r_nodes, r_deployments, r_signs);
    RETURN NULL;
END
$$;

-- A cascade from deployments deletes resources and replicas in an order PostgreSQL does not promise;
-- whichever goes first releases the allocation, exactly once (see 0003).
CREATE OR REPLACE FUNCTION steady_allocation_on_resources_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_signs INT[];
BEGIN
    -- BEFORE DELETE: the resources row is still there to price the replicas with.
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(-1) INTO r_nodes, r_deployments, r_signs
    FROM deployment_replicas WHERE deployment_id = OLD.deployment_id AND node_id IS NOT NULL AND steady_allocating(status);
    PERFORM steady_apply_changes(r_nodes, r_deployments, r_signs);
    RETURN OLD;
END
$$;

CREATE FUNCTION steady_delete_replicas_first() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deployment_replicas WHERE deployment_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER deployments_delete_replicas_first BEFORE DELETE ON deployments
    FOR EACH ROW EXECUTE FUNCTION steady_delete_replicas_first();

DROP FUNCTION steady_allocation_deltas(JSONB);
DROP FUNCTION steady_apply_allocation(JSONB);

-- migrate:down
DROP TRIGGER deployments_delete_replicas_first ON deployments;
DROP FUNCTION steady_delete_replicas_first();

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

CREATE OR REPLACE FUNCTION steady_allocation_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(jsonb_build_object('node_id', node_id, 'deployment_id', deployment_id, 'sign', 1))
        FROM new_rows WHERE node_id IS NOT NULL AND steady_allocating(status))));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION steady_allocation_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(jsonb_build_object('node_id', node_id, 'deployment_id', deployment_id, 'sign', -1))
        FROM old_rows WHERE node_id IS NOT NULL AND steady_allocating(status))));
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_resources_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM steady_apply_allocation(steady_allocation_deltas((
        SELECT jsonb_agg(jsonb_build_object('node_id', node_id, 'deployment_id', deployment_id, 'sign', -1))
        FROM deployment_replicas
        WHERE deployment_id = OLD.deployment_id AND node_id IS NOT NULL AND steady_allocating(status))));
    RETURN OLD;
END
$$;

DROP FUNCTION steady_apply_changes(UUID[], UUID[], INT[]);
DROP FUNCTION steady_apply_deltas(UUID[], NUMERIC[], BIGINT[], BIGINT[], BIGINT[]);
