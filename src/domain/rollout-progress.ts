import type { Deployment, Replica, Rollout } from './types.js';

/**
 * The rollout's own state machine, decided from the observed replicas (pure): complete once the
 * desired template alone runs, available, at the target; failed when it stops making progress for
 * progress_deadline_seconds or its replicas crash-loop with none ever available; then, with
 * auto_rollback, a rollback to the template of the last revision that completed, never to the
 * template that just failed (so it cannot loop). A paused rollout runs no deadline.
 */
export interface ProgressInput {
  readonly deployment: Deployment;
  readonly target: number;
  /** Active replicas of the desired template, and of any other. */
  readonly current: readonly Replica[];
  readonly old: readonly Replica[];
  /** Failures of desired-template replicas counted in this pass (NodeLost and NodeCapacityReduced excluded). */
  readonly newFailures: number;
  readonly isAvailable: (r: Replica) => boolean;
  readonly now: Date;
  readonly failureThreshold: number;
}

export interface RolloutChange {
  readonly oldStatus: string;
  readonly newStatus: string;
  readonly reason: string;
}

export interface ProgressOutcome {
  /** Only the fields that change. */
  readonly rollout: Partial<Rollout>;
  readonly stableRevision?: number;
  readonly history: readonly RolloutChange[];
  /** Roll back to the template of this revision (a new revision), instead of stepping this pass. */
  readonly rollbackTo: number | null;
  /** When the deadline runs out, if the rollout is still progressing. */
  readonly deadlineAt: Date | null;
}

const NOTHING: ProgressOutcome = { rollout: {}, history: [], rollbackTo: null, deadlineAt: null };

export function rolloutProgress(input: ProgressInput): ProgressOutcome {
  const { deployment: d, current, old, now } = input;
  const r = d.rollout;
  const newAvailable = current.filter((x) => input.isAvailable(x)).length;

  if (old.length === 0 && current.length >= input.target && newAvailable >= input.target) {
    if (r.state === 'complete') return d.stableRevision === d.revision ? NOTHING : { ...NOTHING, stableRevision: d.revision };
    return {
      ...NOTHING,
      rollout: { state: 'complete', reason: null },
      stableRevision: d.revision,
      history: [{ oldStatus: `rollout:${r.state}`, newStatus: 'rollout:complete', reason: 'Rollout complete' }],
    };
  }
  if (r.state === 'complete' || d.paused) return NOTHING;

  // Progress: more new replicas available than ever, or fewer old ones than ever.
  const progressed = newAvailable > r.bestAvailable || r.leastOld === null || old.length < r.leastOld;
  const marks: Partial<Rollout> = {
    ...(newAvailable > r.bestAvailable && { bestAvailable: newAvailable }),
    ...((r.leastOld === null || old.length < r.leastOld) && { leastOld: old.length }),
    ...(input.newFailures > 0 && { failures: r.failures + input.newFailures }),
    ...((progressed || r.progressAt === null) && { progressAt: now }),
  };
  if (r.state === 'failed') return { ...NOTHING, rollout: marks };

  const progressAt = marks.progressAt ?? r.progressAt!;
  const failures = marks.failures ?? r.failures;
  const everAvailable = Math.max(r.bestAvailable, newAvailable) > 0;
  const deadlineAt = new Date(progressAt.getTime() + d.strategy.progressDeadlineSeconds * 1000);
  const reason =
    failures >= input.failureThreshold && !everAvailable
      ? `CrashLoopBackOff: ${failures} replicas of revision ${d.revision} failed and none became available`
      : deadlineAt.getTime() <= now.getTime()
        ? 'ProgressDeadlineExceeded'
        : null;
  if (reason === null) return { ...NOTHING, rollout: marks, deadlineAt };

  const history: RolloutChange[] = [{ oldStatus: 'rollout:progressing', newStatus: 'rollout:failed', reason: `Rollout failed: ${reason}` }];
  const canRollBack =
    d.strategy.autoRollback && d.stableRevision !== null && d.stableTemplateRevision !== null && d.stableTemplateRevision !== d.templateRevision;
  if (canRollBack) {
    history.push({
      oldStatus: `revision:${d.revision}`,
      newStatus: `revision:${d.revision + 1}`,
      reason: `Rolled back to revision ${d.stableRevision} (template of revision ${d.stableTemplateRevision})`,
    });
  }
  return { rollout: { ...marks, state: 'failed', reason }, history, rollbackTo: canRollBack ? d.stableRevision : null, deadlineAt: null };
}
