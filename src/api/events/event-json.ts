import type { EventRecord } from '../../db/queries/events.js';
import type { DeploymentStatus, ReplicaStatus } from '../../domain/types.js';
import { healthOf } from '../views.js';

/** An event's `data`, by its type (DESIGN.md section 8). */
export function eventJson(e: EventRecord): Record<string, unknown> {
  switch (e.kind) {
    case 'deployment': {
      const running = e.runningReplicas ?? 0;
      const failed = e.failedReplicas ?? 0;
      const target = e.targetReplicas ?? 0;
      return {
        deployment_id: e.deploymentId,
        name: e.deploymentName,
        status: e.status as DeploymentStatus,
        // Health needs only these: with none running it is unhealthy whatever else there is.
        health: healthOf({ considered: running + failed, running, failed }, target),
        target_replicas: target,
        running_replicas: running,
        // Null for events written before the log knew of revisions (migration 0009).
        revision: e.revision,
        rollout:
          e.rolloutState === null
            ? null
            : {
                state: e.rolloutState,
                revision: e.revision,
                updated_replicas: e.updatedReplicas ?? 0,
                available_replicas: e.availableReplicas ?? 0,
                reason: e.reason,
              },
      };
    }
    case 'history':
      return {
        deployment_id: e.deploymentId,
        name: e.deploymentName,
        old_status: e.history?.oldStatus ?? null,
        new_status: e.history?.newStatus ?? null,
        reason: e.history?.reason ?? null,
        changed_at: e.history?.changedAt.toISOString() ?? null,
      };
    case 'replica':
      return {
        replica_id: e.replicaId,
        deployment_id: e.deploymentId,
        name: e.deploymentName,
        status: e.status as ReplicaStatus,
        node_id: e.nodeId,
        node_name: e.nodeName,
        reason: e.reason,
        revision: e.revision,
      };
    case 'node':
      return { node_id: e.nodeId, name: e.nodeName, status: e.status };
  }
}
