import { NODE_CAPACITY_REDUCED } from './capacity-eviction.js';
import { addResources, subtractResources } from './resources.js';
import { placeReplicas } from './scheduler.js';
import { rolloutProgress } from './rollout-progress.js';
import { rolloutStep } from './rollout.js';
import { isActive } from './types.js';
import type { Deployment, DeploymentStatus, Node, Replica, Resources, Rollout } from './types.js';
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
/** A new replica of `revision`, holding `resources` (that revision's) on its node. */
export interface PlannedCreate { readonly nodeId: string | null; readonly revision: number; readonly resources: Resources }
/** Binding also clears the replica's stored unschedulable reason. `resources`: the replica's own. */
export interface PlannedBind { readonly replicaId: string; readonly nodeId: string; readonly resources: Resources }
export interface PlannedStop { readonly replicaId: string; readonly to: StopTarget; readonly reason: string }
/** A history row: a status move, or a rollout's (`rollout:progressing` → `rollout:complete`, `revision:1` → `revision:2`). */
export interface StatusChange { readonly oldStatus: string; readonly newStatus: string; readonly reason: string }

export interface DeploymentPatch {
  readonly status?: DeploymentStatus;
  readonly statusReason?: string | null;
  readonly restartCount?: number;
  readonly backoffUntil?: Date | null;
  readonly everRunning?: boolean;
  /** The rollout's fields that change. */
  readonly rollout?: Partial<Rollout>;
  readonly stableRevision?: number;
  /** The generation this plan acted on, when the deployment had not recorded it yet. */
  readonly observedGeneration?: number;
}

/** What a rollout step did, for the operator's log line. */
export interface StepSummary {
  readonly revision: number;
  readonly oldReplicas: number;
  readonly newReplicas: number;
  readonly created: number;
  readonly stopped: number;
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
  /** Look again after this long (creation held by back-off, min_ready_seconds, a deadline), else null. */
  readonly requeueAfterMs: number | null;
  /** A failed rollout rolls back: a new revision with this revision's template. */
  readonly rollbackTo: number | null;
  /** Set when the plan takes a rollout step. */
  readonly step: StepSummary | null;
}

type Tracked = Required<Omit<DeploymentPatch, 'rollout' | 'stableRevision' | 'observedGeneration'>>;

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

/** Replicas grouped by revision, groups in the order of their first member. */
const byRevision = (replicas: readonly Replica[]): Replica[][] => {
  const groups = new Map<number, Replica[]>();
  for (const r of replicas) {
    const group = groups.get(r.revision);
    if (group) group.push(r);
    else groups.set(r.revision, [r]);
  }
  return [...groups.values()];
};

const terminalReason = (d: Deployment): string | null =>
  d.deleted || d.status === 'deleted'
    ? 'DeploymentDeleted'
    : d.status === 'stopped'
      ? 'DeploymentStopped'
      : d.status === 'failed'
        ? 'DeploymentFailed'
        : null;

/**
 * Decides, from the deployment's desired state and observed replicas alone, what to change. Pure.
 * The plan records the generation it acted on (written in the same transaction as its actions), so
 * a reader of the status knows whether it describes the latest spec.
 */
export const planDeployment = (input: PlannerInput): Plan => {
  const plan = planActions(input);
  const d = input.deployment;
  return d.observedGeneration === d.generation ? plan : { ...plan, deployment: { ...plan.deployment, observedGeneration: d.generation } };
};

const planActions = (input: PlannerInput): Plan => {
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
  const empty = { create: [], createReason: null, bind: [], markReplaced: [], history: [], requeueAfterMs: null, rollbackTo: null, step: null };
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

  const counted = newFailures.filter((r) => !isNodeFailure(r)).length;
  const restartCount = d.restartCount + counted;
  const backoffUntil = counted > 0 ? new Date(now.getTime() + backoffMs(restartCount, config)) : d.backoffUntil;

  if (counted > 0 && restartCount >= config.failureThreshold && !everRunning) {
    const reason = `CrashLoopBackOff: ${restartCount} replicas failed and none ever ran`;
    stopAll(initiallyActive, 'DeploymentFailed');
    const next: Tracked = { ...current, status: 'failed', statusReason: reason, restartCount, backoffUntil };
    const rollout = d.rollout.state === 'progressing' ? { rollout: { state: 'failed' as const, reason } } : {};
    return { ...empty, stop, markReplaced, deployment: { ...diff(d, next), ...rollout }, history: [{ oldStatus: d.status, newStatus: 'failed', reason }] };
  }

  const draining = new Set(input.nodes.filter((n) => n.status === 'draining').map((n) => n.id));
  const isDraining = (r: Replica) => r.nodeId !== null && draining.has(r.nodeId);
  stopAll(initiallyActive.filter(isDraining), 'NodeDraining');
  let active = initiallyActive.filter((r) => !isDraining(r));

  const target = Math.max(0, d.targetReplicas);
  const isCurrent = (r: Replica) => r.templateRevision === d.templateRevision;
  const minReadyMs = d.strategy.minReadySeconds * 1000;
  const availableAt = (r: Replica) => (r.status === 'running' && r.startedAt !== null ? r.startedAt.getTime() + minReadyMs : Infinity);
  const isAvailable = (r: Replica) => availableAt(r) <= now.getTime();
  const old = active.filter((r) => !isCurrent(r));
  const oldStopping = replicas.filter((r) => r.status === 'stopping' && !isCurrent(r)).length;
  const progress = rolloutProgress({
    deployment: d,
    target,
    current: active.filter(isCurrent),
    old,
    newFailures: newFailures.filter((r) => !isNodeFailure(r) && isCurrent(r)).length,
    isAvailable,
    now,
    failureThreshold: config.failureThreshold,
  });

  // What to create, by revision: the desired one, except when scaling a paused rollout.
  let createCount = 0;
  let createOf: { revision: number; resources: Resources } = { revision: d.revision, resources: need };
  // Old replicas lost during a rollout, brought back with the last template that completed (rollout.ts says when).
  let restoreOf: { count: number; revision: number; resources: Resources } | null = null;
  let step: StepSummary | null = null;
  let blockedPossible = false;
  const stopVictims = (victims: readonly Replica[], reason: string) => {
    const gone = new Set(victims);
    stopAll(victims, reason);
    active = active.filter((r) => !gone.has(r));
  };
  if (progress.rollbackTo !== null) {
    // This pass only records the failure and rolls back; the next one steps towards the old template.
  } else if (old.length === 0 && (d.strategy.type !== 'recreate' || oldStopping === 0)) {
    if (active.length > target) stopVictims(pickVictims(active, active.length - target), 'ScaledDown');
    createCount = target - active.length;
  } else if (d.paused) {
    // Scaling still works, without a step: the largest template grows or everything shrinks alike.
    if (active.length > target) stopVictims(pickVictims(active, active.length - target), 'ScaledDown');
    createCount = target - active.length;
    const largest = largestOther(active.filter((r) => !isCurrent(r)), active.filter(isCurrent).length);
    if (largest) createOf = { revision: largest.revision, resources: largest.resources };
  } else {
    // The last template that completed, priced by one of its replicas (lost ones included), unless it is the desired one.
    const stable =
      d.stableTemplateRevision === null || d.stableTemplateRevision === d.templateRevision
        ? undefined
        : replicas.find((r) => r.templateRevision === d.stableTemplateRevision);
    const taken = rolloutStep({ target, strategy: d.strategy, current: active.filter(isCurrent), old, oldStopping, isAvailable, restorable: stable !== undefined });
    stopVictims(taken.stopCurrent, 'ScaledDown');
    stopVictims(taken.stopOld, 'RolloutReplaced');
    createCount = taken.scaleUp;
    if (stable !== undefined && taken.restore > 0) restoreOf = { count: taken.restore, revision: stable.revision, resources: stable.resources };
    step = { revision: d.revision, oldReplicas: old.length, newReplicas: active.filter(isCurrent).length, created: taken.scaleUp, stopped: taken.stopOld.length };
    blockedPossible = taken.maxUnavailable === 0 && taken.stopOld.length === 0;
  }

  let nodes = input.nodes;
  const perNode = new Map<string, number>();
  const count = (nodeId: string) => perNode.set(nodeId, (perNode.get(nodeId) ?? 0) + 1);
  for (const r of active) if (r.nodeId !== null) count(r.nodeId);

  // Oldest first, so the replica that has waited longest is bound first.
  const unscheduled = active
    .filter((r) => r.nodeId === null && r.status === 'pending')
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  // Each replica is placed with its own revision's resources: by revision, in the order of each's oldest.
  const bind: PlannedBind[] = [];
  let bindReason: string | null = null;
  for (const group of byRevision(unscheduled)) {
    const resources = group[0]!.resources;
    const binding = placeReplicas(group.length, resources, nodes, perNode);
    bindReason ??= binding.unschedulableReason;
    binding.placements.forEach((nodeId, i) => {
      if (nodeId === null) return;
      bind.push({ replicaId: group[i]!.id, nodeId, resources });
      nodes = withAllocated(nodes, nodeId, resources, 1);
      count(nodeId);
    });
  }

  const missing = createCount + (restoreOf?.count ?? 0);
  const held = missing > 0 && backoffUntil !== null && backoffUntil.getTime() > now.getTime();
  // Restored replicas first: they bring availability back; then the desired template's.
  const restoring = restoreOf !== null && !held ? placeReplicas(restoreOf.count, restoreOf.resources, nodes, perNode) : null;
  const restored = (restoring?.placements ?? []).map((nodeId): PlannedCreate => ({ nodeId, revision: restoreOf!.revision, resources: restoreOf!.resources }));
  for (const r of restored) {
    if (r.nodeId === null) continue;
    nodes = withAllocated(nodes, r.nodeId, r.resources, 1);
    count(r.nodeId);
  }
  const creating = createCount > 0 && !held ? placeReplicas(createCount, createOf.resources, nodes, perNode) : null;
  const create = [...restored, ...(creating?.placements ?? []).map((nodeId): PlannedCreate => ({ nodeId, ...createOf }))];
  const createReason = restoring?.unschedulableReason ?? creating?.unschedulableReason ?? null;

  const bound = new Set(bind.map((b) => b.replicaId));
  const activeAfter = active.length + create.length;
  const unplaced = active.filter((r) => r.nodeId === null && !bound.has(r.id)).length + create.filter((c) => c.nodeId === null).length;
  const running = active.filter((r) => r.status === 'running').length;
  // Whatever their revisions: during a rollout there may be more active replicas than the target.
  const status: DeploymentStatus =
    activeAfter >= target && running >= target ? 'running' : activeAfter >= target && unplaced === 0 ? 'scheduled' : 'pending';
  const backoffReason = `CrashLoopBackOff: back-off ${Math.round(backoffMs(restartCount, config) / 1000)}s restarting failed replicas`;
  const statusReason = status !== 'pending' ? null : (bindReason ?? createReason ?? (held ? backoffReason : null));

  // Failures of a new template keep their back-off while old replicas run: reset only once settled.
  const next: Tracked =
    status === 'running' && old.length === 0
      ? { ...current, status, statusReason, restartCount: 0, backoffUntil: null }
      : { ...current, status, statusReason, restartCount, backoffUntil };
  const changeReason =
    status === 'running' ? 'All replicas running' : status === 'scheduled' ? 'All replicas placed' : (statusReason ?? 'Waiting for replicas to be placed');

  // A surge that cannot be placed while no old replica may go: say so, once.
  const unplacedNew = active.filter((r) => isCurrent(r) && r.nodeId === null && !bound.has(r.id));
  const blockedBy = blockedPossible && (unplacedNew.length > 0 || create.some((c) => c.nodeId === null))
    ? (createReason ?? bindReason ?? unplacedNew.find((r) => r.reason?.startsWith('Unschedulable'))?.reason ?? 'Unschedulable')
    : null;
  const rolloutReason = blockedBy === null ? null : `RolloutBlocked: ${blockedBy}`;
  const rollout: { -readonly [K in keyof Rollout]?: Rollout[K] } = { ...progress.rollout };
  const history: StatusChange[] = status === d.status ? [] : [{ oldStatus: d.status, newStatus: status, reason: changeReason }];
  history.push(...progress.history);
  if (progress.rollout.state === undefined && d.rollout.state === 'progressing' && rolloutReason !== d.rollout.reason) {
    rollout.reason = rolloutReason;
    if (rolloutReason !== null) history.push({ oldStatus: 'rollout:progressing', newStatus: 'rollout:blocked', reason: rolloutReason });
  }

  const wakeAt = Math.min(
    held ? backoffUntil!.getTime() : Infinity,
    progress.deadlineAt?.getTime() ?? Infinity,
    ...(old.length > 0 || d.rollout.state !== 'complete' ? active.map(availableAt).filter((t) => t > now.getTime()) : []),
  );
  const requeueAfterMs = progress.rollbackTo !== null ? 0 : Number.isFinite(wakeAt) ? Math.max(0, wakeAt - now.getTime()) : null;
  return {
    create,
    createReason,
    bind,
    stop,
    markReplaced,
    deployment: {
      ...diff(d, next),
      ...(Object.keys(rollout).length > 0 && { rollout }),
      ...(progress.stableRevision !== undefined && { stableRevision: progress.stableRevision }),
    },
    history,
    requeueAfterMs,
    rollbackTo: progress.rollbackTo,
    step,
  };
};

/** Of the other templates' replicas, one of the template with the most replicas, if it has more than `currentCount`. */
const largestOther = (others: readonly Replica[], currentCount: number): Replica | null => {
  const byTemplate = new Map<number, Replica[]>();
  for (const r of others) byTemplate.set(r.templateRevision, [...(byTemplate.get(r.templateRevision) ?? []), r]);
  let best: Replica[] = [];
  for (const group of byTemplate.values()) if (group.length > best.length) best = group;
  return best.length > currentCount ? best[0]! : null;
};

export const isEmptyPlan = (plan: Plan): boolean =>
  plan.create.length === 0 &&
  plan.bind.length === 0 &&
  plan.stop.length === 0 &&
  plan.markReplaced.length === 0 &&
  plan.history.length === 0 &&
  plan.rollbackTo === null &&
  Object.keys(plan.deployment).length === 0;

/** A replica that failed because of its node (lost, or re-registered too small), not of its own doing: no crash loop counts it. */
const isNodeFailure = (r: Replica): boolean => r.reason === 'NodeLost' || r.reason === NODE_CAPACITY_REDUCED;
