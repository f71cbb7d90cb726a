/**
 * Domain values: plain, immutable data that the pure rules (planner, scheduler, health) work on.
 * Row types live in src/db/tables.ts; the reconciler maps rows to these.
 */

export const DEPLOYMENT_STATUSES = ['pending', 'scheduled', 'running', 'stopped', 'failed', 'deleted'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

export const REPLICA_STATUSES = ['pending', 'starting', 'running', 'stopping', 'stopped', 'failed'] as const;
export type ReplicaStatus = (typeof REPLICA_STATUSES)[number];

export const NODE_STATUSES = ['ready', 'not_ready', 'cordoned', 'draining'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

/** Replicas that count towards a deployment's target. */
export const ACTIVE_REPLICA_STATUSES: readonly ReplicaStatus[] = ['pending', 'starting', 'running'];
/** Replicas that hold resources on their node (stopping still does). */
export const ALLOCATING_REPLICA_STATUSES: readonly ReplicaStatus[] = ['pending', 'starting', 'running', 'stopping'];

export const isActive = (s: ReplicaStatus): boolean => ACTIVE_REPLICA_STATUSES.includes(s);
export const isAllocating = (s: ReplicaStatus): boolean => ALLOCATING_REPLICA_STATUSES.includes(s);
/** Of replica counts by status, those in `statuses`. */
export const countIn = (statuses: readonly ReplicaStatus[], counts: Readonly<Partial<Record<ReplicaStatus, number>>>): number =>
  statuses.reduce((sum, s) => sum + (counts[s] ?? 0), 0);
/** Of a node's replica counts by status, those that still hold it (what drain waits for, what a delete refuses). */
export const allocatingCount = (counts: Readonly<Partial<Record<ReplicaStatus, number>>>): number => countIn(ALLOCATING_REPLICA_STATUSES, counts);

export interface Resources {
  readonly cpuCores: number;
  readonly memoryMb: number;
  readonly gpuUnits: number;
  readonly storageGb: number;
}

/** How a deployment replaces replicas of an old template (DESIGN.md section 6). */
export interface Strategy {
  readonly type: 'rolling' | 'recreate';
  /** An integer count, or a percentage of the target as `"25%"`. */
  readonly maxSurge: number | string;
  readonly maxUnavailable: number | string;
  readonly minReadySeconds: number;
  readonly progressDeadlineSeconds: number;
  readonly autoRollback: boolean;
}

export const ROLLOUT_STATES = ['progressing', 'complete', 'failed'] as const;
/** Stored; the API shows `paused` in place of the state while the deployment is paused. */
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/** The rollout of the desired revision, as stored on the deployment. */
export interface Rollout {
  readonly state: RolloutState;
  readonly reason: string | null;
  /** When the rollout last made progress (or started, or resumed). */
  readonly progressAt: Date | null;
  /** The most new-template replicas ever available at once during this rollout. */
  readonly bestAvailable: number;
  /** The fewest old-template replicas ever active at once during this rollout (null: not measured yet). */
  readonly leastOld: number | null;
  /** Counted failures of new-template replicas during this rollout. */
  readonly failures: number;
}

export interface Deployment {
  readonly id: string;
  readonly name: string;
  readonly status: DeploymentStatus;
  readonly statusReason: string | null;
  readonly targetReplicas: number;
  readonly deleted: boolean;
  /** The desired revision's resources, CPU rounded up to the millicore as allocation counts it. */
  readonly resources: Resources;
  /** The desired revision. */
  readonly revision: number;
  /** The first revision with the desired template: replicas whose revision has the same one are up to date. */
  readonly templateRevision: number;
  readonly strategy: Strategy;
  readonly paused: boolean;
  readonly rollout: Rollout;
  /** The last revision whose rollout completed, and its templateRevision (auto-rollback's target). */
  readonly stableRevision: number | null;
  readonly stableTemplateRevision: number | null;
  /** Consecutive replica failures (NodeLost and NodeCapacityReduced excluded) since the deployment last reached `running`. */
  readonly restartCount: number;
  /** No replacement replica is created before this instant (CrashLoopBackOff). */
  readonly backoffUntil: Date | null;
  /** Whether any replica of this deployment has ever reported `running`. */
  readonly everRunning: boolean;
  /** Bumped by every change of the spec; a reconcile records the one it acted on as observedGeneration. */
  readonly generation: number;
  readonly observedGeneration: number;
}

export interface Replica {
  readonly id: string;
  readonly nodeId: string | null;
  readonly status: ReplicaStatus;
  readonly createdAt: Date;
  readonly reason: string | null;
  /** For a `failed` replica: whether the controller has already counted and replaced it. */
  readonly replaced: boolean;
  /** The revision it runs, and that revision's template identity (see Deployment.templateRevision). */
  readonly revision: number;
  readonly templateRevision: number;
  /** What it holds on its node: its own revision's resources, never the deployment's current ones. */
  readonly resources: Resources;
  /** When it last reported `running` (availability counts from there). */
  readonly startedAt: Date | null;
}

export interface Node {
  readonly id: string;
  readonly name: string;
  readonly status: NodeStatus;
  readonly capacity: Resources;
  /** Resources held by every allocating replica on the node, of every deployment (this one included). */
  readonly allocated: Resources;
}
