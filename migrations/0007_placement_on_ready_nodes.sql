-- Placement serialises with cordon and drain: a replica placed (inserted or bound) on a node that is
-- not `ready` is refused with SQLSTATE ST003 (node_unschedulable). The allocation trigger already locks
-- the nodes it places on (in id order) before it adds to their allocation; a cordon or drain updates
-- the same row, so the two queue on that lock, and the status is checked after it. Before this, a node
-- cordoned between the controller's read of the nodes and its insert could still receive replicas.
-- Only increases are checked: replicas that leave a cordoned or draining node release as before.
--
-- Down: the check goes; nothing else changes.

-- migrate:up
CREATE OR REPLACE FUNCTION steady_apply_millicore_deltas(p_nodes UUID[], p_cpu BIGINT[], p_mem BIGINT[], p_gpu BIGINT[], p_sto BIGINT[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    over TEXT;
    unschedulable TEXT;
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
            allocated_cpu_millicores = n.allocated_cpu_millicores + d.cpu,
            allocated_memory_mb = n.allocated_memory_mb + d.mem,
            allocated_gpu_units = n.allocated_gpu_units + d.gpu,
            allocated_storage_gb = n.allocated_storage_gb + d.sto
        FROM d WHERE n.id = d.node_id
        RETURNING n.name, d.cpu, d.mem, d.gpu, d.sto, n.allocated_cpu_millicores, n.allocated_memory_mb,
                  n.allocated_gpu_units, n.allocated_storage_gb, n.cpu_cores, n.memory_mb, n.gpu_units, n.storage_gb, n.status
    )
    SELECT string_agg(name, ', ') FILTER (WHERE (cpu > 0 AND allocated_cpu_millicores > floor(cpu_cores::numeric * 1000))
                                             OR (mem > 0 AND allocated_memory_mb > memory_mb)
                                             OR (gpu > 0 AND allocated_gpu_units > gpu_units)
                                             OR (sto > 0 AND allocated_storage_gb > storage_gb)),
           string_agg(name, ', ') FILTER (WHERE (cpu > 0 OR mem > 0 OR gpu > 0 OR sto > 0) AND status <> 'ready')
    INTO over, unschedulable FROM updated;
    -- Read under the node's row lock, as of the latest commit: a cordon or drain that committed after
    -- the controller read the nodes is seen here, and the placement is refused (the reconcile retries
    -- on a fresh read).
    IF unschedulable IS NOT NULL THEN
        RAISE EXCEPTION 'node_unschedulable: %', unschedulable USING ERRCODE = 'ST003';
    END IF;
    IF over IS NOT NULL THEN
        RAISE EXCEPTION 'node_overcommitted: %', over USING ERRCODE = 'ST001';
    END IF;
END
$$;

-- migrate:down
CREATE OR REPLACE FUNCTION steady_apply_millicore_deltas(p_nodes UUID[], p_cpu BIGINT[], p_mem BIGINT[], p_gpu BIGINT[], p_sto BIGINT[])
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
            allocated_cpu_millicores = n.allocated_cpu_millicores + d.cpu,
            allocated_memory_mb = n.allocated_memory_mb + d.mem,
            allocated_gpu_units = n.allocated_gpu_units + d.gpu,
            allocated_storage_gb = n.allocated_storage_gb + d.sto
        FROM d WHERE n.id = d.node_id
        RETURNING n.name, d.cpu, d.mem, d.gpu, d.sto, n.allocated_cpu_millicores, n.allocated_memory_mb,
                  n.allocated_gpu_units, n.allocated_storage_gb, n.cpu_cores, n.memory_mb, n.gpu_units, n.storage_gb
    )
    SELECT string_agg(name, ', ') INTO over FROM updated
    WHERE (cpu > 0 AND allocated_cpu_millicores > floor(cpu_cores::numeric * 1000))
       OR (mem > 0 AND allocated_memory_mb > memory_mb)
       OR (gpu > 0 AND allocated_gpu_units > gpu_units)
       OR (sto > 0 AND allocated_storage_gb > storage_gb);
    IF over IS NOT NULL THEN
        RAISE EXCEPTION 'node_overcommitted: %', over USING ERRCODE = 'ST001';
    END IF;
END
$$;
