import { describe, expect, it } from 'vitest';
import { deploymentHealth } from '../../src/domain/health.js';

describe('deploymentHealth (seed health table)', () => {
  it.each([
    ['all target replicas running, no failures', ['running', 'running', 'running'], 3, 'healthy'],
    ['some replicas failed', ['running', 'running', 'failed'], 2, 'degraded'],
    ['running < target replicas', ['running', 'pending', 'starting'], 3, 'degraded'],
    ['all replicas failed', ['failed', 'failed'], 2, 'unhealthy'],
    ['no running replicas', ['pending', 'starting', 'stopping'], 3, 'unhealthy'],
    ['no replicas exist', [], 0, 'unhealthy'],
  ] as const)('%s → %s', (_row, statuses, target, expected) => {
    expect(deploymentHealth(statuses, target)).toBe(expected);
  });

  it('lets unhealthy override degraded: failures with nothing running', () => {
    expect(deploymentHealth(['failed', 'pending'], 2)).toBe('unhealthy');
  });

  it('is healthy with more running than target and extra non-failed replicas', () => {
    expect(deploymentHealth(['running', 'running', 'stopping'], 1)).toBe('healthy');
  });
});
