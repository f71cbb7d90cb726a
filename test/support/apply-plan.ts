import type { Plan, PlannerInput } from '../../src/domain/planner.js';
import { addResources } from '../../src/domain/resources.js';
import type { Node, Replica, Resources } from '../../src/domain/types.js';

const withAllocated = (nodes: readonly Node[], nodeId: string, delta: Resources): readonly Node[] =>
  nodes.map((n) => (n.id !== nodeId ? n : { ...n, allocated: addResources(n.allocated, delta) }));

/**
 * The input as it will be once the plan is applied (same `now`): what the reconciler writes,
 * expressed over domain values. Created replicas take `newIds` in order, else generated ids.
 * Stops free nothing: only unscheduled replicas go straight to `stopped`, and `stopping` still holds.
 */
export const applyPlan = (input: PlannerInput, plan: Plan, newIds: readonly string[] = []): PlannerInput => {
  let nodes = input.nodes;
  const stops = new Map(plan.stop.map((s) => [s.replicaId, s]));
  const binds = new Map(plan.bind.map((b) => [b.replicaId, b]));
  const replaced = new Set(plan.markReplaced);

  const replicas = input.replicas.map((r): Replica => {
    const s = stops.get(r.id);
    const b = binds.get(r.id);
    if (b !== undefined) nodes = withAllocated(nodes, b.nodeId, b.resources);
    return {
      ...r,
      ...(s && { status: s.to, reason: s.reason }),
      ...(b !== undefined && { nodeId: b.nodeId, reason: null }),
      ...(replaced.has(r.id) && { replaced: true }),
    };
  });

  const d = input.deployment;
  const templateOf = (revision: number): number =>
    revision === d.revision ? d.templateRevision : (input.replicas.find((r) => r.revision === revision)?.templateRevision ?? revision);
  const taken = new Set(replicas.map((r) => r.id));
  let serial = replicas.length;
  const freshId = (): string => {
    while (taken.has(`${d.id}-r${serial}`)) serial++;
    return `${d.id}-r${serial++}`;
  };
  const created = plan.create.map((c, i): Replica => {
    if (c.nodeId !== null) nodes = withAllocated(nodes, c.nodeId, c.resources);
    const id = newIds[i] ?? freshId();
    taken.add(id);
    return {
      id,
      nodeId: c.nodeId,
      status: 'pending',
      createdAt: input.now,
      startedAt: null,
      reason: c.nodeId === null ? plan.createReason : null,
      replaced: false,
      revision: c.revision,
      templateRevision: templateOf(c.revision),
      resources: c.resources,
    };
  });

  const { rollout, stableRevision, ...rest } = plan.deployment;
  const deployment = {
    ...d,
    ...rest,
    rollout: { ...d.rollout, ...rollout },
    ...(stableRevision !== undefined && { stableRevision, stableTemplateRevision: d.templateRevision }),
  };
  return { ...input, deployment, replicas: [...replicas, ...created], nodes };
};
