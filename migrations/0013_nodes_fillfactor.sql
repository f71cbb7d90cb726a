-- Nodes are updated in place all the time: every placement and every stop changes the allocation
-- of the nodes involved (a batch of 50 deployments × 10 replicas spread over 1,000 nodes updates
-- about 480 of them), every heartbeat stamps one. With full pages, nine updates in ten could not be
-- HOT (the new row version must fit on the row's page): each wrote a row on another page and an
-- entry in both indexes, and the table bloated to 15 MB for 1,000 rows while placing 100,000
-- replicas. With pages four-fifths empty every update is HOT: the allocation update of a placement
-- batch took 3 ms instead of 10–13 ms, and a cold start of 10,000 × 10 on 1,000 nodes placed in
-- 11.1–11.6 s instead of 13.2–15.2 s (durable PostgreSQL, 2 cores). The table stays small: a node
-- row is about 160 bytes, so 10,000 nodes take about 8 MB.
--
-- Existing pages keep their rows: a row moves to a page with room at its next update, once.

-- migrate:up
ALTER TABLE nodes SET (fillfactor = 20);

-- migrate:down
ALTER TABLE nodes RESET (fillfactor);
