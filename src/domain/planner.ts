import { addResources, subtractResources } from './resources.js';
import { placeReplicas } from './scheduler.js';
import { isActive, isAllocating } from './types.js';
import type { Deployment, DeploymentStatus, Node, Replica, Resources } from './types.js';
import { pickVictims } from './victims.js';

export interface PlannerConfig {
  /** First CrashLoopBackOff delay; doubles per counted failure. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Counted failures with no replica ever running after which the deployment goes `failed`. */
  readonly failureThreshold: number;
}

/** Kubernetes' CrashLoopBackOff: 10 s doubling to 5 min. */
export const DEFAULT_PLANNER_CONFIG: PlannerConfig = Object.freeze({
  backoffBaseMs: 10_000,
  backoffMaxMs: 300_000,
  failureThreshold: 5,
});

export interface PlannerInput {
  readonly deployment: Deployment;
  /** This deployment's replicas, every status. */
  readonly replicas: readonly Replica[];
  /** `allocated` already includes this deployment's allocating replicas. */
  readonly nodes: readonly Node[];
  readonly now: Date;
  readonly config: PlannerConfig;
}

export type StopTarget = 'stopping' | 'stopped';
export interface PlannedCreate { readonly nodeId: string | null }
/** Binding also clears the replica's stored unschedulable reason. */
export interface PlannedBind { readonly replicaId: string; readonly nodeId: string }
export interface PlannedStop { readonly replicaId: string; readonly to: StopTarget; readonly reason: string }
export interface StatusChange { readonly oldStatus: DeploymentStatus; readonly newStatus: DeploymentStatus; readonly reason: string }

export interface DeploymentPatch {
  readonly status?: DeploymentStatus;
  readonly statusReason?: string | null;
  readonly restartCount?: number;
  readonly backoffUntil?: Date | null;
  readonly everRunning?: boolean;
}

export interface Plan {
  /** New replicas, status `pending`; nodeId null = unschedulable, stored with createReason. */
  readonly create: readonly PlannedCreate[];
  readonly createReason: string | null;
  readonly bind: readonly PlannedBind[];
  readonly stop: readonly PlannedStop[];
  /** Failed replicas now counted and replaced: set `replaced = true`. */
  readonly markReplaced: readonly string[];
  /** Only the fields that change. */
  readonly deployment: DeploymentPatch;
  readonly history: readonly StatusChange[];
  /** Look again after this long (creation held by back-off), else null. */
  readonly requeueAfterMs: number | null;
}

type Tracked = Required<DeploymentPatch>;

const backoffMs = (restartCount: number, config: PlannerConfig): number =>
  // The exponent is capped so a huge restart count cannot make base * 2^n Infinity (or NaN for base 0).
  Math.min(config.backoffBaseMs * 2 ** Math.min(Math.max(restartCount, 1) - 1, 52), config.backoffMaxMs);

const withAllocated = (nodes: readonly Node[], nodeId: string, delta: Resources, sign: 1 | -1): readonly Node[] =>
  nodes.map((n) =>
    n.id !== nodeId ? n : { ...n, allocated: sign === 1 ? addResources(n.allocated, delta) : subtractResources(n.allocated, delta) },
  );

const diff = (d: Deployment, next: Tracked): DeploymentPatch => {
  const time = (t: Date | null) => (t === null ? null : t.getTime());
  return {
    ...(next.status !== d.status && { status: next.status }),
    ...(next.statusReason !== d.statusReason && { statusReason: next.statusReason }),
    ...(next.restartCount !== d.restartCount && { restartCount: next.restartCount }),
    ...(time(next.backoffUntil) !== time(d.backoffUntil) && { backoffUntil: next.backoffUntil }),
    ...(next.everRunning !== d.everRunning && { everRunning: next.everRunning }),
  };
};

const stopTarget = (r: Replica): StopTarget => (r.status === 'pending' && r.nodeId === null ? 'stopped' : 'stopping');

const terminalReason = (d: Deployment): string | null =>
  d.deleted || d.status === 'deleted'
    ? 'DeploymentDeleted'
    : d.status === 'stopped'
      ? 'DeploymentStopped'
      : d.status === 'failed'
        ? 'DeploymentFailed'
        : null;

/** Decides, from the deployment's desired state and observed replicas alone, what to change. Pure. */
export const planDeployment = (input: PlannerInput): Plan => {
  const { deployment: d, replicas, now, config } = input;
  const need = d.resources;
  const stop: PlannedStop[] = [];
  const stopAll = (rs: readonly Replica[], reason: string) => {
    // Only unscheduled replicas go straight to `stopped`; `stopping` still holds its node's resources,
    // so stopping never frees capacity within the plan.
    for (const r of rs) stop.push({ replicaId: r.id, to: stopTarget(r), reason });
  };
  const everRunning = d.everRunning || replicas.some((r) => r.status === 'running');
  const current: Tracked = { status: d.status, statusReason: d.statusReason, restartCount: d.restartCount, backoffUntil: d.backoffUntil, everRunning };
  const empty = { create: [], createReason: null, bind: [], markReplaced: [], history: [], requeueAfterMs: null };
  const initiallyActive = replicas.filter((r) => isActive(r.status));

  const newFailures = replicas.filter((r) => r.status === 'failed' && !r.replaced);
  const markReplaced = newFailures.map((r) => r.id);

  const ending = terminalReason(d);
  if (ending !== null) {
    // Failures of a deployment that is ending are settled here, uncounted: nothing replaces them, and
    // a later start must not count them as fresh (nor the resync keep finding them).
    stopAll(initiallyActive, ending);
    return { ...empty, stop, markReplaced, deployment: diff(d, current) };
  }

  const counted = newFailures.filter((r) => r.reason !== 'NodeLost').length;
  const restartCount = d.restartCount + counted;
  const backoffUntil = counted > 0 ? new Date(now.getTime() + backoffMs(restartCount, config)) : d.backoffUntil;

  if (counted > 0 && restartCount >= config.failureThreshold && !everRunning) {
    const reason = `CrashLoopBackOff: ${restartCount} replicas failed and none ever ran`;
    stopAll(initiallyActive, 'DeploymentFailed');
    const next: Tracked = { ...current, status: 'failed', statusReason: reason, restartCount, backoffUntil };
    return { ...empty, stop, markReplaced, deployment: diff(d, next), history: [{ oldStatus: d.status, newStatus: 'failed', reason }] };
  }

  const draining = new Set(input.nodes.filter((n) => n.status === 'draining').map((n) => n.id));
  const isDraining = (r: Replica) => r.nodeId !== null && draining.has(r.nodeId);
  stopAll(initiallyActive.filter(isDraining), 'NodeDraining');
  let active = initiallyActive.filter((r) => !isDraining(r));

  const target = Math.max(0, d.targetReplicas);
  if (active.length > target) {
    const victims = new Set(pickVictims(active, active.length - target));
    stopAll([...victims], 'ScaledDown');
    active = active.filter((r) => !victims.has(r));
  }

  let nodes = input.nodes;
  const perNode = new Map<string, number>();
  const count = (nodeId: string) => perNode.set(nodeId, (perNode.get(nodeId) ?? 0) + 1);
  for (const r of active) if (r.nodeId !== null) count(r.nodeId);

  // Oldest first, so the replica that has waited longest is bound first.
  const unscheduled = active
    .filter((r) => r.nodeId === null && r.status === 'pending')
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const binding = placeReplicas(unscheduled.length, need, nodes, perNode);
  const bind: PlannedBind[] = [];
  binding.placements.forEach((nodeId, i) => {
    if (nodeId === null) return;
    bind.push({ replicaId: unscheduled[i]!.id, nodeId });
    nodes = withAllocated(nodes, nodeId, need, 1);
    count(nodeId);
  });

  const missing = target - active.length;
  const held = missing > 0 && backoffUntil !== null && backoffUntil.getTime() > now.getTime();
  const creating = missing > 0 && !held ? placeReplicas(missing, need, nodes, perNode) : null;
  const create = (creating?.placements ?? []).map((nodeId) => ({ nodeId }));
  const createReason = creating?.unschedulableReason ?? null;

  const bound = new Set(bind.map((b) => b.replicaId));
  const activeAfter = active.length + create.length;
  const unplaced = active.filter((r) => r.nodeId === null && !bound.has(r.id)).length + create.filter((c) => c.nodeId === null).length;
  const running = active.filter((r) => r.status === 'running').length;
  const status: DeploymentStatus =
    activeAfter === target && running >= target ? 'running' : activeAfter === target && unplaced === 0 ? 'scheduled' : 'pending';
  const backoffReason = `CrashLoopBackOff: back-off ${Math.round(backoffMs(restartCount, config) / 1000)}s restarting failed replicas`;
  const statusReason = status !== 'pending' ? null : (binding.unschedulableReason ?? createReason ?? (held ? backoffReason : null));

  const next: Tracked =
    status === 'running'
      ? { ...current, status, statusReason, restartCount: 0, backoffUntil: null }
      : { ...current, status, statusReason, restartCount, backoffUntil };
  const changeReason =
    status === 'running' ? 'All replicas running' : status === 'scheduled' ? 'All replicas placed' : (statusReason ?? 'Waiting for replicas to be placed');
  return {
    create,
    createReason,
    bind,
    stop,
    markReplaced,
    deployment: diff(d, next),
    history: status === d.status ? [] : [{ oldStatus: d.status, newStatus: status, reason: changeReason }],
    requeueAfterMs: held ? backoffUntil!.getTime() - now.getTime() : null,
  };
};

export const isEmptyPlan = (plan: Plan): boolean =>
  plan.create.length === 0 &&
  plan.bind.length === 0 &&
  plan.stop.length === 0 &&
  plan.markReplaced.length === 0 &&
  plan.history.length === 0 &&
  Object.keys(plan.deployment).length === 0;

/**
 * The input as it will be once the plan is applied (same `now`): what the reconciler writes,
 * expressed over domain values. Created replicas take `newIds` in order, else generated ids.
 */
export const applyPlan = (input: PlannerInput, plan: Plan, newIds: readonly string[] = []): PlannerInput => {
  const need = input.deployment.resources;
  let nodes = input.nodes;
  const stops = new Map(plan.stop.map((s) => [s.replicaId, s]));
  const binds = new Map(plan.bind.map((b) => [b.replicaId, b.nodeId]));
  const replaced = new Set(plan.markReplaced);

  const replicas = input.replicas.map((r): Replica => {
    const s = stops.get(r.id);
    const nodeId = binds.get(r.id);
    if (s?.to === 'stopped' && r.nodeId !== null && isAllocating(r.status)) nodes = withAllocated(nodes, r.nodeId, need, -1);
    if (nodeId !== undefined) nodes = withAllocated(nodes, nodeId, need, 1);
    return {
      ...r,
      ...(s && { status: s.to, reason: s.reason }),
      ...(nodeId !== undefined && { nodeId, reason: null }),
      ...(replaced.has(r.id) && { replaced: true }),
    };
  });

  const taken = new Set(replicas.map((r) => r.id));
  let serial = replicas.length;
  const freshId = (): string => {
    while (taken.has(`${input.deployment.id}-r${serial}`)) serial++;
    return `${input.deployment.id}-r${serial++}`;
  };
  const created = plan.create.map((c, i): Replica => {
    if (c.nodeId !== null) nodes = withAllocated(nodes, c.nodeId, need, 1);
    const id = newIds[i] ?? freshId();
    taken.add(id);
    return { id, nodeId: c.nodeId, status: 'pending', createdAt: input.now, reason: c.nodeId === null ? plan.createReason : null, replaced: false };
  });

  return { ...input, deployment: { ...input.deployment, ...plan.deployment }, replicas: [...replicas, ...created], nodes };
};
