import { resolveFenceposts } from './strategy.js';
import type { Replica, Strategy } from './types.js';
import { pickVictims } from './victims.js';

/**
 * One step of a rollout, as Kubernetes' rolling.go takes it, over replicas grouped by template
 * instead of ReplicaSets. Pure arithmetic on counts; the planner turns the answer into creates and stops.
 */
export interface RolloutStepInput {
  /** The deployment's target, N. */
  readonly target: number;
  readonly strategy: Strategy;
  /** Active replicas (pending, starting, running) of the desired template. */
  readonly current: readonly Replica[];
  /** Active replicas of any other template. */
  readonly old: readonly Replica[];
  /** Replicas of other templates still `stopping` (recreate waits until none is left). */
  readonly oldStopping: number;
  /** Running for at least min_ready_seconds. */
  readonly isAvailable: (r: Replica) => boolean;
  /** Whether old replicas lost meanwhile may come back with the last template that completed (one exists, and it is not the desired one). */
  readonly restorable?: boolean;
}

export interface RolloutStep {
  /** New replicas of the desired revision to create. */
  readonly scaleUp: number;
  /** Replicas of the last template that completed to create, in place of old ones lost meanwhile. */
  readonly restore: number;
  /** Old replicas to stop: unavailable ones first, then the oldest revision. */
  readonly stopOld: readonly Replica[];
  /** Desired-template replicas beyond the target (a scale-down during the rollout). */
  readonly stopCurrent: readonly Replica[];
  /** The rounded bounds this step kept (for the log and the blocked test). */
  readonly maxSurge: number;
  readonly maxUnavailable: number;
}

const STATUS_RANK: Readonly<Record<string, number>> = { pending: 0, starting: 1, running: 2 };

/** Unavailable before available, oldest revision first, then unscheduled, less advanced, newest. */
const oldVictimOrder = (isAvailable: (r: Replica) => boolean) => (a: Replica, b: Replica): number =>
  Number(isAvailable(a)) - Number(isAvailable(b)) ||
  a.revision - b.revision ||
  Number(a.nodeId !== null) - Number(b.nodeId !== null) ||
  (STATUS_RANK[a.status] ?? 0) - (STATUS_RANK[b.status] ?? 0) ||
  b.createdAt.getTime() - a.createdAt.getTime() ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export function rolloutStep(input: RolloutStepInput): RolloutStep {
  const { target, strategy, current, old, isAvailable } = input;
  const { maxSurge, maxUnavailable } = resolveFenceposts(strategy, target);
  const stopCurrent = current.length > target ? pickVictims(current, current.length - target) : [];
  const stopping = new Set(stopCurrent);
  const kept = current.filter((r) => !stopping.has(r));
  const keptCurrent = kept.length;
  const none = { scaleUp: 0, restore: 0, stopOld: [], stopCurrent, maxSurge, maxUnavailable };

  if (strategy.type === 'recreate') {
    // Every old replica goes first; the new ones only once none is left, stopping included.
    if (old.length > 0) return { ...none, stopOld: [...old].sort(oldVictimOrder(isAvailable)) };
    if (input.oldStopping > 0) return none;
    return { ...none, scaleUp: Math.max(0, target - keptCurrent) };
  }

  // A ReplicaSet recreates the pods it loses, whatever the Deployment is rolling to: old replicas lost
  // meanwhile (crashed, on a lost node) come back with the last template that completed, before any
  // new replica takes their room, while the old and the available new ones are fewer than N −
  // maxUnavailable. Without this a lost old replica could only be replaced by a new one, which may
  // never run (a new template no node can fit waits for its progress deadline) while availability
  // stays below the bound. The rollout's own stops never make such a deficit: they stop old replicas
  // only as far as availability allows, so the restored ones are only ever the lost ones.
  const newAvailable = kept.filter((r) => isAvailable(r)).length;
  const restore = input.restorable
    ? Math.max(0, Math.min(target - maxUnavailable - newAvailable - old.length, target + maxSurge - keptCurrent - old.length))
    : 0;

  // reconcileNewReplicaSet: grow the new template within N + maxSurge active replicas in all.
  const total = keptCurrent + old.length + restore;
  const scaleUp = Math.max(0, Math.min(target + maxSurge - total, target - keptCurrent));

  // reconcileOldReplicaSets: shrink the old templates as far as availability allows. New replicas
  // just created are unavailable; so are unplaced ones.
  const newUnavailable = keptCurrent + scaleUp - newAvailable;
  const minAvailable = target - maxUnavailable;
  const maxScaledDown = total + scaleUp - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return { ...none, scaleUp, restore };

  const ordered = [...old].sort(oldVictimOrder(isAvailable));
  // cleanupUnhealthyReplicas: unavailable old replicas hold no availability up; they go first.
  const unhealthy = ordered.filter((r) => !isAvailable(r)).slice(0, maxScaledDown);
  // scaleDownOldReplicaSetsForRollingUpdate: available ones only down to minAvailable.
  const availableAll = newAvailable + old.filter((r) => isAvailable(r)).length;
  const availableBudget = Math.max(0, Math.min(availableAll - minAvailable, maxScaledDown - unhealthy.length));
  const healthy = ordered.filter((r) => isAvailable(r)).slice(0, availableBudget);
  return { ...none, scaleUp, restore, stopOld: [...unhealthy, ...healthy] };
}
