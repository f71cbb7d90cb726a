-- The generation the controller has acted on, as Kubernetes' status.observedGeneration: every
-- change of a deployment's spec (target, template, stop/start/delete, pause) bumps `generation`
-- (0002), and a reconcile of that deployment writes the generation it read into
-- `observed_generation` in the same transaction as its actions. While the two differ, the status
-- object describes the deployment before the change: `steady rollout status` waits for them to be
-- equal before it trusts the counts ("Waiting for deployment spec update to be observed...").
--
-- A new deployment starts unobserved (0). Existing ones are taken as observed: their last change
-- woke the controller long ago, and a converged deployment is not reconciled again until something
-- changes, so a 0 here would leave them unobserved until then.

-- migrate:up
ALTER TABLE deployments ADD COLUMN observed_generation INTEGER NOT NULL DEFAULT 0;
UPDATE deployments SET observed_generation = generation;

-- migrate:down
ALTER TABLE deployments DROP COLUMN observed_generation;
