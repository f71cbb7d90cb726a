import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { StrategyJson } from '../domain/strategy.js';
import type { DeploymentStatus, NodeStatus, ReplicaStatus, RolloutState } from '../domain/types.js';

/** Row types, as the database holds them. Domain values (src/domain/types.ts) are kept apart. */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface UsersTable {
  id: Generated<string>;
  subject: string;
  username: string | null;
  created_at: Timestamp;
}

export interface NodesTable {
  id: Generated<string>;
  name: string;
  status: ColumnType<NodeStatus, NodeStatus | undefined, NodeStatus>;
  cpu_cores: number;
  memory_mb: number;
  gpu_units: ColumnType<number, number | undefined, number>;
  storage_gb: number;
  labels: ColumnType<Record<string, string>, string | undefined, string>;
  last_heartbeat_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
  /**
   * Kept by triggers (migrations 0003, 0005); NUMERIC/BIGINT come back as strings: cast when selecting.
   * CPU is summed in millicores; allocated_cpu_cores is derived from it.
   */
  allocated_cpu_millicores: ColumnType<string, never, never>;
  allocated_cpu_cores: ColumnType<string, never, never>;
  allocated_memory_mb: ColumnType<string, never, never>;
  allocated_gpu_units: ColumnType<string, never, never>;
  allocated_storage_gb: ColumnType<string, never, never>;
  /** The transaction that last changed what placement reads of the node (migration 0016); xid8 as text. */
  changed_xid: ColumnType<string, never, never>;
}

export interface DeploymentsTable {
  id: Generated<string>;
  name: string;
  user_id: string;
  container_image: string;
  status: ColumnType<DeploymentStatus, DeploymentStatus | undefined, DeploymentStatus>;
  target_replicas: ColumnType<number, number | undefined, number>;
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
  /** Bumped by every change of the spec (0002); the controller writes what it acted on to observed_generation (0017). */
  generation: ColumnType<number, number | undefined, number>;
  observed_generation: ColumnType<number, number | undefined, number>;
  status_reason: string | null;
  restart_count: ColumnType<number, number | undefined, number>;
  backoff_until: NullableTimestamp;
  ever_running: ColumnType<boolean, boolean | undefined, boolean>;
  /** The desired revision (migration 0005). */
  revision: ColumnType<number, number | undefined, number>;
  strategy: ColumnType<StrategyJson, string | undefined, string>;
  paused: ColumnType<boolean, boolean | undefined, boolean>;
  rollout_state: ColumnType<RolloutState, RolloutState | undefined, RolloutState>;
  rollout_reason: string | null;
  rollout_progress_at: NullableTimestamp;
  rollout_best_available: ColumnType<number, number | undefined, number>;
  rollout_least_old: ColumnType<number | null, number | null | undefined, number | null>;
  rollout_failures: ColumnType<number, number | undefined, number>;
  stable_revision: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface DeploymentRevisionsTable {
  id: Generated<string>;
  deployment_id: string;
  revision: number;
  /** The first revision whose template equals this one's: equal values, equal templates. */
  template_revision: number;
  container_image: string;
  cpu_cores: number;
  /** cpu_cores rounded up to the millicore, as allocation sums count it (generated). */
  cpu_millicores: ColumnType<number, never, never>;
  memory_mb: number;
  gpu_units: ColumnType<number, number | undefined, number>;
  storage_gb: number;
  command: string[] | null;
  env: ColumnType<Record<string, string> | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  created_by: string | null;
}

export interface DeploymentResourcesTable {
  id: Generated<string>;
  deployment_id: string;
  cpu_cores: number;
  memory_mb: number;
  gpu_units: ColumnType<number, number | undefined, number>;
  storage_gb: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface DeploymentReplicasTable {
  id: Generated<string>;
  deployment_id: string;
  node_id: string | null;
  status: ColumnType<ReplicaStatus, ReplicaStatus | undefined, ReplicaStatus>;
  container_id: string | null;
  started_at: NullableTimestamp;
  stopped_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
  reason: string | null;
  replaced: ColumnType<boolean, boolean | undefined, boolean>;
  /** The revision this replica runs (migration 0005); required on insert. */
  revision: number;
}

export interface DeploymentStatusHistoryTable {
  id: Generated<string>;
  deployment_id: string;
  old_status: string;
  new_status: string;
  changed_by: string | null;
  changed_at: Timestamp;
  reason: string | null;
}

export interface LeaderLeaseTable {
  name: string;
  leader_id: string;
  term: ColumnType<number, number, number>;
  elected_at: Timestamp;
  renewed_at: Timestamp;
  expires_at: Timestamp;
}

export interface MigrationsTable {
  version: string;
  name: string;
  applied_at: Timestamp;
}

export interface Tables {
  users: UsersTable;
  nodes: NodesTable;
  deployments: DeploymentsTable;
  deployment_resources: DeploymentResourcesTable;
  deployment_revisions: DeploymentRevisionsTable;
  deployment_replicas: DeploymentReplicasTable;
  deployment_status_history: DeploymentStatusHistoryTable;
  steady_leader: LeaderLeaseTable;
  steady_migrations: MigrationsTable;
}

export type UserRow = Selectable<UsersTable>;
export type NodeRow = Selectable<NodesTable>;
export type DeploymentRow = Selectable<DeploymentsTable>;
export type DeploymentResourcesRow = Selectable<DeploymentResourcesTable>;
export type RevisionRow = Selectable<DeploymentRevisionsTable>;
export type ReplicaRow = Selectable<DeploymentReplicasTable>;
export type HistoryRow = Selectable<DeploymentStatusHistoryTable>;
export type NewReplica = Insertable<DeploymentReplicasTable>;
export type NewHistory = Insertable<DeploymentStatusHistoryTable>;
export type DeploymentUpdate = Updateable<DeploymentsTable>;
