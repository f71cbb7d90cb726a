import type { z } from 'zod';
import type {
  CreateDeploymentBody,
  DeploymentListSchema,
  DeploymentStatusSchema,
  HeartbeatSchema,
  NodeListSchema,
  NodeRegistrationSchema,
  NodeSchema,
  PatchDeploymentBody,
  ReadyzSchema,
  RegisterNodeBody,
  ReplicaReportBody,
  ReplicaSchema,
  RevisionListSchema,
  RolloutSchema,
  StrategySchema,
} from '../api/schemas.js';

/**
 * The API's bodies, inferred from the schemas that validate them on the server. Type-only imports:
 * nothing of zod or hono is loaded at run time, so the client bundles for a browser.
 */

export type DeploymentStatus = z.output<typeof DeploymentStatusSchema>;
export type DeploymentList = z.output<typeof DeploymentListSchema>;
export type DeploymentListItem = DeploymentList['items'][number];
export type Replica = DeploymentStatus['replicas'][number];
export type StatusChange = DeploymentStatus['recent_status_changes'][number];
export type Resources = DeploymentStatus['resources'];
/** What `POST /api/deployment/deploy` takes (`gpu_units` may be left out). */
export type DeploymentSpec = z.input<typeof CreateDeploymentBody>;

export type NodeList = z.output<typeof NodeListSchema>;
export type NodeOverview = NodeList['items'][number];
export type Node = z.output<typeof NodeSchema>;
export type NodeRegistration = z.input<typeof RegisterNodeBody>;
/** The registered node, and the replicas it gave up because they no longer fit its capacity. */
export type NodeRegistered = z.output<typeof NodeRegistrationSchema>;
export type NodeStatus = Node['status'];
export type Heartbeat = z.output<typeof HeartbeatSchema>;
export type ReplicaReport = z.input<typeof ReplicaReportBody>;
export type ReplicaRecord = z.output<typeof ReplicaSchema>;
export type Readiness = z.output<typeof ReadyzSchema>;

export interface ListOptions {
  readonly limit?: number;
  readonly cursor?: string;
  /** Only the live deployment with this name (names are unique per user). */
  readonly name?: string;
}

// ---------- rollouts (DESIGN.md section 6)

export type Strategy = z.output<typeof StrategySchema>;
/** `PATCH /api/deployment/{id}`: a template change (image, resources, command, env) makes a new revision. */
export type DeploymentPatch = z.input<typeof PatchDeploymentBody>;
export type Rollout = z.output<typeof RolloutSchema>;
/** The status object (section 3), rollout fields included. */
export type DeploymentState = DeploymentStatus;
export type Revision = z.output<typeof RevisionListSchema>['items'][number];

// ---------- events (DESIGN.md section 8)

export interface DeploymentEventData {
  readonly deployment_id: string;
  readonly name: string;
  readonly status: DeploymentStatus['status'];
  readonly health: DeploymentStatus['health'];
  readonly target_replicas: number;
  readonly running_replicas: number;
  /** The desired revision and the rollout as the status object shows them (null from events older than them). */
  readonly revision?: number | null;
  readonly rollout?: Rollout | null;
}

export interface HistoryEventData {
  readonly deployment_id: string;
  readonly name: string;
  readonly old_status: string | null;
  readonly new_status: string | null;
  readonly reason: string | null;
  readonly changed_at: string | null;
}

export interface ReplicaEventData {
  readonly replica_id: string;
  readonly deployment_id: string;
  readonly name: string;
  readonly status: Replica['status'];
  readonly node_id: string | null;
  readonly node_name?: string | null;
  readonly reason: string | null;
  readonly revision?: number | null;
}

/** Admins only: a node registered, changed status or was deleted (`deleted`). */
export interface NodeEventData {
  readonly node_id: string;
  readonly name: string;
  readonly status: NodeStatus | 'deleted';
}

/** One event of `GET /api/events`; `reset` means events were lost (too old to resume): list again. */
export type SteadyEvent =
  | { readonly type: 'deployment'; readonly id: string | null; readonly data: DeploymentEventData }
  | { readonly type: 'history'; readonly id: string | null; readonly data: HistoryEventData }
  | { readonly type: 'replica'; readonly id: string | null; readonly data: ReplicaEventData }
  | { readonly type: 'node'; readonly id: string | null; readonly data: NodeEventData }
  | { readonly type: 'reset'; readonly id: string | null; readonly data: unknown };
