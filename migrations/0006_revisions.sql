-- Revisions and rollouts (DESIGN.md section 6), all additive:
--   deployment_revisions          every template a deployment has had: image, the four resources,
--                                 command, env; `template_revision` is the first revision with an
--                                 equal template (two revisions with the same template_revision run
--                                 the same thing), `cpu_millicores` the CPU as capacity sums count it
--   deployments.revision          the desired revision (container_image and deployment_resources keep
--                                 mirroring its template, so the seed's reads stay true)
--   deployments.strategy          {type, max_surge, max_unavailable, min_ready_seconds,
--                                 progress_deadline_seconds, auto_rollback}, always complete
--   deployments.paused            a paused rollout makes no step and runs no deadline
--   deployments.rollout_*         the rollout of the desired revision: state, reason, when it last
--                                 progressed and the marks progress is measured against, failures of
--                                 its replicas
--   deployments.stable_revision   the last revision whose rollout completed (auto-rollback's target)
--   deployment_replicas.revision  the revision each replica runs (backfilled to 1)
--
-- Allocation: replicas are priced by their own revision, never by deployment_resources, so changing a
-- deployment's resources never changes what its running replicas hold. CPU is summed in integer
-- millicores (a replica's CPU rounded up to the millicore, a node's capacity rounded down): exact,
-- whatever the order of placements and releases. nodes.allocated_cpu_cores stays, derived from the
-- millicores. The allocation of every node is recomputed from the replicas (a database that went down
-- past 0003 and up again had it at zero).
--
-- Down: throws away every revision but the desired one (its template stays on the deployment), the
-- rollout state and the strategies; allocation is recomputed the 0004 way (by deployment_resources).

-- migrate:up
CREATE TABLE deployment_revisions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    deployment_id UUID NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    revision INTEGER NOT NULL CHECK (revision >= 1),
    template_revision INTEGER NOT NULL,
    container_image VARCHAR(500) NOT NULL,
    cpu_cores FLOAT NOT NULL,
    cpu_millicores INTEGER GENERATED ALWAYS AS (ceil(cpu_cores::numeric * 1000)::integer) STORED,
    memory_mb INTEGER NOT NULL,
    gpu_units INTEGER NOT NULL DEFAULT 0,
    storage_gb INTEGER NOT NULL,
    command TEXT[] NULL,
    env JSONB NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by UUID NULL REFERENCES users(id) ON DELETE SET NULL,
    CONSTRAINT deployment_revisions_deployment_revision_key UNIQUE (deployment_id, revision)
);

INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb, created_at)
SELECT d.id, 1, 1, d.container_image, coalesce(r.cpu_cores, 0), coalesce(r.memory_mb, 0), coalesce(r.gpu_units, 0),
       coalesce(r.storage_gb, 0), d.created_at
FROM deployments d LEFT JOIN deployment_resources r ON r.deployment_id = d.id;

-- Existing deployments run revision 1, taken as complete; a new one starts with its first rollout.
ALTER TABLE deployments
    ADD COLUMN revision INTEGER NOT NULL DEFAULT 1,
    ADD COLUMN strategy JSONB NOT NULL DEFAULT '{"type": "rolling", "max_surge": "25%", "max_unavailable": "25%", "min_ready_seconds": 0, "progress_deadline_seconds": 600, "auto_rollback": true}',
    ADD COLUMN paused BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN rollout_state VARCHAR(20) NOT NULL DEFAULT 'complete' CHECK (rollout_state IN ('progressing', 'complete', 'failed')),
    ADD COLUMN rollout_reason VARCHAR(500) NULL,
    ADD COLUMN rollout_progress_at TIMESTAMPTZ NULL,
    ADD COLUMN rollout_best_available INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN rollout_least_old INTEGER NULL,
    ADD COLUMN rollout_failures INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN stable_revision INTEGER NULL DEFAULT 1;
ALTER TABLE deployments ALTER COLUMN rollout_state SET DEFAULT 'progressing', ALTER COLUMN stable_revision DROP DEFAULT;

-- Every writer of a replica names its revision: no default that could price it wrongly.
ALTER TABLE deployment_replicas ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE deployment_replicas ALTER COLUMN revision DROP DEFAULT;

-- The resync's "a rollout in progress".
CREATE INDEX idx_deployments_rollout_progressing ON deployments (id)
    WHERE rollout_state = 'progressing' AND NOT paused;

ALTER TABLE nodes DROP COLUMN allocated_cpu_cores;
ALTER TABLE nodes
    ADD COLUMN allocated_cpu_millicores BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN allocated_cpu_cores NUMERIC(15, 3) GENERATED ALWAYS AS (allocated_cpu_millicores / 1000.0) STORED;

CREATE FUNCTION steady_apply_millicore_deltas(p_nodes UUID[], p_cpu BIGINT[], p_mem BIGINT[], p_gpu BIGINT[], p_sto BIGINT[])
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

-- Prices replica changes, given as (node, deployment, revision, +1 or -1), each with its own
-- revision's template, sums them per node and applies them. A replica whose revision does not exist
-- cannot be priced: refused (ST002) rather than silently held for nothing.
CREATE FUNCTION steady_apply_revision_changes(p_nodes UUID[], p_deployments UUID[], p_revisions INT[], p_signs INT[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ids UUID[]; cpu BIGINT[]; mem BIGINT[]; gpu BIGINT[]; sto BIGINT[]; unpriced INT;
BEGIN
    IF p_nodes IS NULL OR cardinality(p_nodes) = 0 THEN
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE NOT priced), array_agg(node_id ORDER BY node_id) FILTER (WHERE priced AND (c <> 0 OR m <> 0 OR g <> 0 OR s <> 0)),
           array_agg(c ORDER BY node_id) FILTER (WHERE priced AND (c <> 0 OR m <> 0 OR g <> 0 OR s <> 0)),
           array_agg(m ORDER BY node_id) FILTER (WHERE priced AND (c <> 0 OR m <> 0 OR g <> 0 OR s <> 0)),
           array_agg(g ORDER BY node_id) FILTER (WHERE priced AND (c <> 0 OR m <> 0 OR g <> 0 OR s <> 0)),
           array_agg(s ORDER BY node_id) FILTER (WHERE priced AND (c <> 0 OR m <> 0 OR g <> 0 OR s <> 0))
    INTO unpriced, ids, cpu, mem, gpu, sto
    FROM (
        SELECT ch.node_id, bool_and(rev.id IS NOT NULL) AS priced,
               sum(ch.sign * rev.cpu_millicores)::bigint AS c, sum(ch.sign * rev.memory_mb)::bigint AS m,
               sum(ch.sign * rev.gpu_units)::bigint AS g, sum(ch.sign * rev.storage_gb)::bigint AS s
        FROM unnest(p_nodes, p_deployments, p_revisions, p_signs) AS ch(node_id, deployment_id, revision, sign)
        LEFT JOIN deployment_revisions rev ON rev.deployment_id = ch.deployment_id AND rev.revision = ch.revision
        GROUP BY ch.node_id
    ) per_node;
    IF unpriced > 0 THEN
        RAISE EXCEPTION 'replica_unpriced: a replica on a node names a revision that does not exist' USING ERRCODE = 'ST002';
    END IF;
    PERFORM steady_apply_millicore_deltas(ids, cpu, mem, gpu, sto);
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_revisions INT[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(revision), array_agg(1)
    INTO r_nodes, r_deployments, r_revisions, r_signs
    FROM new_rows WHERE node_id IS NOT NULL AND steady_allocating(status);
    PERFORM steady_apply_revision_changes(r_nodes, r_deployments, r_revisions, r_signs);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_revisions INT[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(revision), array_agg(sign)
    INTO r_nodes, r_deployments, r_revisions, r_signs
    FROM (
        SELECT o.node_id, o.deployment_id, o.revision, -1 AS sign
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.node_id IS NOT NULL AND steady_allocating(o.status)
          AND (n.node_id IS DISTINCT FROM o.node_id OR NOT steady_allocating(n.status) OR n.revision <> o.revision)
        UNION ALL
        SELECT n.node_id, n.deployment_id, n.revision, 1 AS sign
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.node_id IS NOT NULL AND steady_allocating(n.status)
          AND (n.node_id IS DISTINCT FROM o.node_id OR NOT steady_allocating(o.status) OR n.revision <> o.revision)
    ) changes;
    PERFORM steady_apply_revision_changes(r_nodes, r_deployments, r_revisions, r_signs);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION steady_allocation_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_revisions INT[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(revision), array_agg(-1)
    INTO r_nodes, r_deployments, r_revisions, r_signs
    FROM old_rows WHERE node_id IS NOT NULL AND steady_allocating(status);
    PERFORM steady_apply_revision_changes(r_nodes, r_deployments, r_revisions, r_signs);
    RETURN NULL;
END
$$;

-- deployment_resources no longer prices anything: deleting it releases nothing. A hard-deleted
-- deployment's replicas still go first (0004's trigger), while their revisions are there.
DROP TRIGGER resources_allocation_delete ON deployment_resources;
DROP FUNCTION steady_allocation_on_resources_delete();
DROP FUNCTION steady_apply_changes(UUID[], UUID[], INT[]);
DROP FUNCTION steady_apply_deltas(UUID[], NUMERIC[], BIGINT[], BIGINT[], BIGINT[]);

UPDATE nodes n SET allocated_cpu_millicores = a.cpu, allocated_memory_mb = a.mem, allocated_gpu_units = a.gpu, allocated_storage_gb = a.sto
FROM (
    SELECT n2.id, coalesce(sum(rev.cpu_millicores), 0) AS cpu, coalesce(sum(rev.memory_mb), 0) AS mem,
           coalesce(sum(rev.gpu_units), 0) AS gpu, coalesce(sum(rev.storage_gb), 0) AS sto
    FROM nodes n2
    LEFT JOIN deployment_replicas r ON r.node_id = n2.id AND steady_allocating(r.status)
    LEFT JOIN deployment_revisions rev ON rev.deployment_id = r.deployment_id AND rev.revision = r.revision
    GROUP BY n2.id
) a
WHERE n.id = a.id;

-- migrate:down
CREATE FUNCTION steady_apply_deltas(p_nodes UUID[], p_cpu NUMERIC[], p_mem BIGINT[], p_gpu BIGINT[], p_sto BIGINT[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    over TEXT;
BEGIN
    IF p_nodes IS NULL OR cardinality(p_nodes) = 0 THEN
        RETURN;
    END IF;
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

CREATE FUNCTION steady_allocation_on_resources_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r_nodes UUID[]; r_deployments UUID[]; r_signs INT[];
BEGIN
    SELECT array_agg(node_id), array_agg(deployment_id), array_agg(-1) INTO r_nodes, r_deployments, r_signs
    FROM deployment_replicas WHERE deployment_id = OLD.deployment_id AND node_id IS NOT NULL AND steady_allocating(status);
    PERFORM steady_apply_changes(r_nodes, r_deployments, r_signs);
    RETURN OLD;
END
$$;

CREATE TRIGGER resources_allocation_delete BEFORE DELETE ON deployment_resources
    FOR EACH ROW EXECUTE FUNCTION steady_allocation_on_resources_delete();

DROP FUNCTION steady_apply_revision_changes(UUID[], UUID[], INT[], INT[]);
DROP FUNCTION steady_apply_millicore_deltas(UUID[], BIGINT[], BIGINT[], BIGINT[], BIGINT[]);

ALTER TABLE nodes DROP COLUMN allocated_cpu_cores;
ALTER TABLE nodes DROP COLUMN allocated_cpu_millicores;
ALTER TABLE nodes ADD COLUMN allocated_cpu_cores NUMERIC(12, 3) NOT NULL DEFAULT 0;

DROP INDEX idx_deployments_rollout_progressing;
ALTER TABLE deployment_replicas DROP COLUMN revision;
ALTER TABLE deployments DROP COLUMN stable_revision, DROP COLUMN rollout_failures, DROP COLUMN rollout_least_old,
    DROP COLUMN rollout_best_available, DROP COLUMN rollout_progress_at, DROP COLUMN rollout_reason, DROP COLUMN rollout_state,
    DROP COLUMN paused, DROP COLUMN strategy, DROP COLUMN revision;
DROP TABLE deployment_revisions;

UPDATE nodes n SET allocated_cpu_cores = a.cpu, allocated_memory_mb = a.mem, allocated_gpu_units = a.gpu, allocated_storage_gb = a.sto
FROM (
    SELECT n2.id, coalesce(sum(res.cpu_cores::numeric), 0) AS cpu, coalesce(sum(res.memory_mb), 0) AS mem,
           coalesce(sum(res.gpu_units), 0) AS gpu, coalesce(sum(res.storage_gb), 0) AS sto
    FROM nodes n2
    LEFT JOIN deployment_replicas r ON r.node_id = n2.id AND steady_allocating(r.status)
    LEFT JOIN deployment_resources res ON res.deployment_id = r.deployment_id
    GROUP BY n2.id
) a
WHERE n.id = a.id;
