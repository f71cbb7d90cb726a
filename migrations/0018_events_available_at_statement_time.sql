-- A deployment event counts a replica as available when it has run for min_ready_seconds. The event
-- functions measured that against `now()`, the start of the writing transaction. The controller's
-- reconcile often starts before an agent's report of `running` commits, reads that replica running
-- (a later statement sees the commit), and then found its `started_at` (the report's transaction
-- start) after its own `now()`: the event said 2 of 3 available for a deployment whose three
-- replicas ran, and, the deployment converged, no later event corrected it (`get deployments -w`
-- ended on `3/3 3 2`). They now measure against `statement_timestamp()`: the statement that writes
-- the event starts after every row it reads was committed.
--
-- The functions are rewritten in place, as in 0015: their definitions read back from the catalog,
-- the one comparison replaced.

-- migrate:up
DO $$
DECLARE
    f RECORD;
    n INTEGER := 0;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
        WHERE ns.nspname = current_schema() AND p.prosrc LIKE '%r.started_at <= now() - make_interval%'
    LOOP
        EXECUTE replace(pg_get_functiondef(f.oid), 'r.started_at <= now() - make_interval', 'r.started_at <= statement_timestamp() - make_interval');
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'no event function counts available replicas';
    END IF;
END
$$;

-- migrate:down
DO $$
DECLARE
    f RECORD;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
        WHERE ns.nspname = current_schema() AND p.prosrc LIKE '%r.started_at <= statement_timestamp() - make_interval%'
    LOOP
        EXECUTE replace(pg_get_functiondef(f.oid), 'r.started_at <= statement_timestamp() - make_interval', 'r.started_at <= now() - make_interval');
    END LOOP;
END
$$;
