-- Every node row carries the transaction that last changed what placement reads of it, so that the
-- controller can keep the fleet in memory and read only the nodes changed since its last read
-- (src/db/controller/node-cache.ts) instead of every node for every placement batch: at 10,000
-- nodes that read was 10,000 rows parsed and thrown away about 2,000 times over a million
-- placements, under the scheduling lock.
--
-- `changed_xid` is the top-level transaction id (`pg_current_xact_id()`, 64 bits, no wraparound).
-- A read taken with snapshot S has seen every change of every transaction below `xmin(S)` (and of
-- its own); a change it has not seen was made by a transaction at or above it. So the next read asks
-- for `changed_xid >= ` that horizon and misses nothing, whatever order the writers commit in.
--
-- Only the columns placement reads count as a change (the trigger's WHEN): a heartbeat, which stamps
-- `last_heartbeat_at` on every node every few seconds, does not make its node read again. A column
-- placement comes to read must be added to that list.

-- migrate:up
ALTER TABLE nodes ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE FUNCTION nodes_stamp_changed_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    RETURN NEW;
END;
$$;

CREATE TRIGGER nodes_stamp_changed_xid BEFORE UPDATE ON nodes
    FOR EACH ROW
    WHEN ((OLD.name, OLD.status, OLD.cpu_cores, OLD.memory_mb, OLD.gpu_units, OLD.storage_gb,
           OLD.allocated_cpu_millicores, OLD.allocated_memory_mb, OLD.allocated_gpu_units, OLD.allocated_storage_gb)
          IS DISTINCT FROM
          (NEW.name, NEW.status, NEW.cpu_cores, NEW.memory_mb, NEW.gpu_units, NEW.storage_gb,
           NEW.allocated_cpu_millicores, NEW.allocated_memory_mb, NEW.allocated_gpu_units, NEW.allocated_storage_gb))
    EXECUTE FUNCTION nodes_stamp_changed_xid();

-- migrate:down
DROP TRIGGER nodes_stamp_changed_xid ON nodes;
DROP FUNCTION nodes_stamp_changed_xid();
ALTER TABLE nodes DROP COLUMN changed_xid;
