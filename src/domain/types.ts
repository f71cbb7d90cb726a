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
/** Replicas that will never change again. */
export const TERMINAL_REPLICA_STATUSES: readonly ReplicaStatus[] = ['stopped', 'failed'];

export const isActive = (s: ReplicaStatus): boolean => ACTIVE_REPLICA_STATUSES.includes(s);
export const isAllocating = (s: ReplicaStatus): boolean => ALLOCATING_REPLICA_STATUSES.includes(s);
export const isTerminal = (s: ReplicaStatus): boolean => TERMINAL_REPLICA_STATUSES.includes(s);

export interface Resources {
  readonly cpuCores: number;
  readonly memoryMb: number;
  readonly gpuUnits: number;
  readonly storageGb: number;
}

export interface Deployment {
  readonly id: string;
  readonly name: string;
  readonly status: DeploymentStatus;
  readonly statusReason: string | null;
  readonly targetReplicas: number;
  readonly deleted: boolean;
  readonly resources: Resources;
  /** Consecutive replica failures (NodeLost excluded) since the deployment last reached `running`. */
  readonly restartCount: number;
  /** No replacement replica is created before this instant (CrashLoopBackOff). */
  readonly backoffUntil: Date | null;
  /** Whether any replica of this deployment has ever reported `running`. */
  readonly everRunning: boolean;
}

export interface Replica {
  readonly id: string;
  readonly nodeId: string | null;
  readonly status: ReplicaStatus;
  readonly createdAt: Date;
  readonly reason: string | null;
  /** For a `failed` replica: whether the controller has already counted and replaced it. */
  readonly replaced: boolean;
}

export interface Node {
  readonly id: string;
  readonly name: string;
  readonly status: NodeStatus;
  readonly capacity: Resources;
  /** Resources held by every allocating replica on the node, of every deployment (this one included). */
  readonly allocated: Resources;
}
