import type { z } from 'zod';
import type {
  CreateDeploymentBody,
  DeploymentListSchema,
  DeploymentStatusSchema,
  HeartbeatSchema,
  NodeListSchema,
  NodeRegistrationSchema,
  NodeSchema,
  ReadyzSchema,
  RegisterNodeBody,
  ReplicaReportBody,
  ReplicaSchema,
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

export interface Strategy {
  readonly type: 'rolling' | 'recreate';
  readonly max_surge: number | string;
  readonly max_unavailable: number | string;
  readonly min_ready_seconds: number;
  readonly progress_deadline_seconds: number;
  readonly auto_rollback: boolean;
}

/** `PATCH /api/deployment/{id}`: a template change (image, resources, command, env) makes a new revision. */
export interface DeploymentPatch {
  readonly container_image?: string;
  readonly resources?: Partial<Resources>;
  readonly command?: readonly string[] | null;
  readonly env?: Readonly<Record<string, string>> | null;
  readonly target_replicas?: number;
  readonly strategy?: Partial<Strategy>;
}

export interface Rollout {
  readonly state: 'progressing' | 'complete' | 'paused' | 'failed';
  readonly revision: number;
  readonly updated_replicas: number;
  readonly available_replicas: number;
  readonly reason: string | null;
}

/**
 * The status object with the rollout fields (section 3). Optional here until every server this client
 * talks to answers them; a server that does always sends them.
 */
export type DeploymentState = Omit<DeploymentStatus, 'replicas'> & {
  readonly revision?: number;
  readonly reason?: string | null;
  readonly rollout?: Rollout;
  readonly strategy?: Strategy;
  readonly command?: readonly string[] | null;
  readonly replicas: ReadonlyArray<Replica & { readonly revision?: number; readonly reason?: string | null }>;
};

export interface Revision {
  readonly revision: number;
  readonly container_image: string;
  readonly resources: Resources;
  readonly command: readonly string[] | null;
  readonly env: Readonly<Record<string, string>> | null;
  readonly created_at: string;
  readonly active_replicas: number;
}

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
