import type { Assignment, NodeOverview, Registered } from '../db/queries/nodes.js';
import type { DeploymentListItem } from '../db/queries/deployment-list.js';
import type { DeploymentStatusRecord } from '../db/queries/deployment-status.js';
import type { ReplicaCounts } from '../db/queries/replica-counts.js';
import type { NodeRow, ReplicaRow } from '../db/tables.js';
import { deploymentHealth, type DeploymentHealth } from '../domain/health.js';
import { strategyJson } from '../domain/strategy.js';
import type { ReplicaStatus, Resources } from '../domain/types.js';

/** Domain and row values → the API's JSON (snake_case, UTC ISO-8601 timestamps with `Z`). */

const iso = (d: Date): string => d.toISOString();
const isoOrNull = (d: Date | null): string | null => (d === null ? null : d.toISOString());

/**
 * The seed's health rule over counts. `deploymentHealth` only counts running and failed replicas
 * among those it is given, so a list with the same counts gives the same answer; the counts come
 * from SQL (one aggregate per deployment) rather than from loading every replica.
 */
export function healthOf(counts: ReplicaCounts, targetReplicas: number): DeploymentHealth {
  const others = Math.max(0, counts.considered - counts.running - counts.failed);
  const statuses: ReplicaStatus[] = [
    ...Array<ReplicaStatus>(counts.running).fill('running'),
    ...Array<ReplicaStatus>(counts.failed).fill('failed'),
    ...Array<ReplicaStatus>(others).fill('pending'),
  ];
  return deploymentHealth(statuses, targetReplicas);
}

export const resourcesJson = (r: Resources) => ({
  cpu_cores: r.cpuCores,
  memory_mb: r.memoryMb,
  gpu_units: r.gpuUnits,
  storage_gb: r.storageGb,
});

/** The seed's "After (Real)" status object, field for field. */
export function deploymentStatusJson(d: DeploymentStatusRecord) {
  return {
    deployment_id: d.id,
    name: d.name,
    status: d.status,
    health: healthOf(d.counts, d.targetReplicas),
    target_replicas: d.targetReplicas,
    container_image: d.containerImage,
    replicas: d.replicas.map((r) => ({
      id: r.id,
      node_id: r.nodeId,
      node_name: r.nodeName,
      status: r.status,
      container_id: r.containerId,
      started_at: r.startedAt,
      stopped_at: r.stoppedAt,
      revision: r.revision,
      reason: r.reason,
    })),
    resources: resourcesJson(d.resources),
    recent_status_changes: d.history.map((h) => ({
      old_status: h.oldStatus,
      new_status: h.newStatus,
      changed_at: h.changedAt,
      reason: h.reason,
    })),
    created_at: iso(d.createdAt),
    updated_at: iso(d.updatedAt),
    revision: d.revision,
    generation: d.generation,
    observed_generation: d.observedGeneration,
    reason: d.reason,
    rollout: {
      state: d.rollout.state,
      revision: d.rollout.revision,
      updated_replicas: d.rollout.updatedReplicas,
      available_replicas: d.rollout.availableReplicas,
      reason: d.rollout.reason,
    },
    command: d.template.command === null ? null : [...d.template.command],
    env: d.template.env === null ? null : { ...d.template.env },
    strategy: strategyJson(d.strategy),
  };
}

export function deploymentListItemJson(d: DeploymentListItem) {
  return {
    deployment_id: d.id,
    name: d.name,
    status: d.status,
    health: healthOf(d.counts, d.targetReplicas),
    container_image: d.containerImage,
    target_replicas: d.targetReplicas,
    running_replicas: d.counts.running,
    total_replicas: d.counts.considered,
    created_at: iso(d.createdAt),
    revision: d.revision,
    rollout: {
      state: d.rollout.state,
      revision: d.revision,
      updated_replicas: d.rollout.updatedReplicas,
      available_replicas: d.rollout.availableReplicas,
      reason: d.rollout.reason,
    },
  };
}

export function nodeJson(n: NodeRow) {
  return {
    node_id: n.id,
    name: n.name,
    status: n.status,
    cpu_cores: n.cpu_cores,
    memory_mb: n.memory_mb,
    gpu_units: n.gpu_units,
    storage_gb: n.storage_gb,
    labels: n.labels,
    last_heartbeat_at: isoOrNull(n.last_heartbeat_at),
    created_at: iso(n.created_at),
    updated_at: iso(n.updated_at),
  };
}

export function registrationJson(r: Registered) {
  return {
    ...nodeJson(r.node),
    evicted_replicas: r.evicted.map((e) => ({ replica_id: e.replicaId, deployment_id: e.deploymentId, status: e.status, reason: e.reason })),
  };
}

export function nodeOverviewJson(o: NodeOverview) {
  return { ...nodeJson(o.node), allocated: resourcesJson(o.allocated), replica_counts: { ...o.replicaCounts } };
}

export function assignmentJson(a: Assignment) {
  return {
    replica_id: a.replicaId,
    deployment_id: a.deploymentId,
    status: a.status,
    revision: a.revision,
    container_image: a.containerImage,
    resources: resourcesJson(a.resources),
    command: a.command === null ? null : [...a.command],
    env: a.env === null ? null : { ...a.env },
    desired: a.status === 'stopping' ? ('stop' as const) : ('run' as const),
  };
}

export function replicaJson(r: ReplicaRow) {
  return {
    replica_id: r.id,
    deployment_id: r.deployment_id,
    node_id: r.node_id,
    status: r.status,
    container_id: r.container_id,
    reason: r.reason,
    started_at: isoOrNull(r.started_at),
    stopped_at: isoOrNull(r.stopped_at),
    updated_at: iso(r.updated_at),
  };
}
