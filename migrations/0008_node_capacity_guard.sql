-- A node never holds more than its capacity, also when the capacity shrinks: a node re-registered
-- with less than its replicas hold used to be overcommitted silently. The API now evicts the replicas
-- that no longer fit (NodeCapacityReduced) in the same transaction, before the capacity changes; this
-- trigger refuses (SQLSTATE ST001, node_overcommitted) any capacity change that would leave the node
-- overcommitted, whoever makes it.
--
-- Down: the trigger goes; nothing else changes.

-- migrate:up
CREATE FUNCTION steady_check_capacity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.allocated_cpu_millicores > floor(NEW.cpu_cores::numeric * 1000)
       OR NEW.allocated_memory_mb > NEW.memory_mb
       OR NEW.allocated_gpu_units > NEW.gpu_units
       OR NEW.allocated_storage_gb > NEW.storage_gb THEN
        RAISE EXCEPTION 'node_overcommitted: % would hold more than its capacity', NEW.name USING ERRCODE = 'ST001';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER nodes_capacity_check BEFORE UPDATE OF cpu_cores, memory_mb, gpu_units, storage_gb ON nodes
    FOR EACH ROW WHEN (
        NEW.cpu_cores < OLD.cpu_cores OR NEW.memory_mb < OLD.memory_mb
        OR NEW.gpu_units < OLD.gpu_units OR NEW.storage_gb < OLD.storage_gb
    ) EXECUTE FUNCTION steady_check_capacity();

-- migrate:down
DROP TRIGGER nodes_capacity_check ON nodes;
DROP FUNCTION steady_check_capacity();
