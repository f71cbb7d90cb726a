import type { ValidationIssue } from './errors.js';
import type { Strategy } from './types.js';

/** DESIGN.md section 6's defaults (Kubernetes' own, plus auto-rollback on). */
export const DEFAULT_STRATEGY: Strategy = Object.freeze({
  type: 'rolling',
  maxSurge: '25%',
  maxUnavailable: '25%',
  minReadySeconds: 0,
  progressDeadlineSeconds: 600,
  autoRollback: true,
});

/** The stored and API form (snake_case), every field present. */
export interface StrategyJson {
  readonly type: 'rolling' | 'recreate';
  readonly max_surge: number | string;
  readonly max_unavailable: number | string;
  readonly min_ready_seconds: number;
  readonly progress_deadline_seconds: number;
  readonly auto_rollback: boolean;
}

export const strategyJson = (s: Strategy): StrategyJson => ({
  type: s.type,
  max_surge: s.maxSurge,
  max_unavailable: s.maxUnavailable,
  min_ready_seconds: s.minReadySeconds,
  progress_deadline_seconds: s.progressDeadlineSeconds,
  auto_rollback: s.autoRollback,
});

/** A stored or requested strategy over a base: the fields it names change, the others keep. */
export const mergeStrategy = (base: Strategy, json: Partial<StrategyJson> | null | undefined): Strategy => ({
  type: json?.type ?? base.type,
  maxSurge: json?.max_surge ?? base.maxSurge,
  maxUnavailable: json?.max_unavailable ?? base.maxUnavailable,
  minReadySeconds: json?.min_ready_seconds ?? base.minReadySeconds,
  progressDeadlineSeconds: json?.progress_deadline_seconds ?? base.progressDeadlineSeconds,
  autoRollback: json?.auto_rollback ?? base.autoRollback,
});

export interface Fenceposts {
  readonly maxSurge: number;
  readonly maxUnavailable: number;
}

const scaledValue = (value: number | string, target: number, roundUp: boolean): number => {
  if (typeof value === 'number') return value;
  const percent = Number(value.replace('%', ''));
  const exact = (target * percent) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
};

/**
 * Kubernetes' ResolveFenceposts: surge rounds up, unavailable rounds down, and when both come to 0,
 * unavailable is 1 (a rollout that may neither add nor remove a replica could never move).
 */
export const resolveFenceposts = (strategy: Strategy, target: number): Fenceposts => {
  const maxSurge = scaledValue(strategy.maxSurge, target, true);
  const maxUnavailable = scaledValue(strategy.maxUnavailable, target, false);
  return maxSurge === 0 && maxUnavailable === 0 ? { maxSurge, maxUnavailable: 1 } : { maxSurge, maxUnavailable };
};

/** What the field ranges alone cannot say: the deadline must leave room for a replica to become available. */
export const strategyIssues = (s: Strategy): ValidationIssue[] =>
  s.progressDeadlineSeconds > s.minReadySeconds
    ? []
    : [{ path: 'strategy.progress_deadline_seconds', message: `must be greater than min_ready_seconds (${s.minReadySeconds})` }];
