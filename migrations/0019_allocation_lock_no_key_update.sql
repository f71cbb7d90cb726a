-- The allocation trigger locks the nodes it places on FOR NO KEY UPDATE instead of FOR UPDATE: the
-- lock the UPDATE of their allocation takes anyway, and the weakest that keeps concurrent placements
-- (and a cordon or drain, which update the same rows) queueing in id order.
--
-- FOR UPDATE also conflicts with FOR KEY SHARE, the lock a foreign-key check takes on the node a
-- replica row names. Two transactions inserting replicas on one node both passed their checks, then
-- each waited for the other's key-share lock to take FOR UPDATE: a deadlock, which only the
-- controller's scheduling lock (one placing transaction at a time) kept from happening. With
-- placement decisions serialised in the controller's process and their writes and commits
-- overlapping (src/db/controller/node-cache.ts), two placing transactions now run at once: their
-- row inserts and key checks go on side by side, and only the allocation updates queue.
--
-- Down: FOR UPDATE again (0007's function).

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
    PERFORM 1 FROM nodes WHERE id = ANY(p_nodes) ORDER BY id FOR NO KEY UPDATE;
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
