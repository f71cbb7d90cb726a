import type { ReplicaStatus } from './types.js';

export type DeploymentHealth = 'healthy' | 'degraded' | 'unhealthy';

/**
 * The seed's health aggregation, verbatim: any failure or too few running is degraded; all failed,
 * none running, or no replicas at all is unhealthy (which overrides degraded).
 */
export const deploymentHealth = (replicaStatuses: readonly ReplicaStatus[], targetReplicas: number): DeploymentHealth => {
  if (replicaStatuses.length === 0) return 'unhealthy';
  const running = replicaStatuses.filter((s) => s === 'running').length;
  const failed = replicaStatuses.filter((s) => s === 'failed').length;
  if (failed === replicaStatuses.length || running === 0) return 'unhealthy';
  if (failed > 0 || running < targetReplicas) return 'degraded';
  return 'healthy';
};
