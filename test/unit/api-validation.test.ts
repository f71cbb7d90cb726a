import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { healthOf } from '../../src/api/views.js';
import { deploymentHealth } from '../../src/domain/health.js';
import { REPLICA_STATUSES, type ReplicaStatus } from '../../src/domain/types.js';
import { checkReplicaReport } from '../../src/domain/validation.js';

describe('checkReplicaReport', () => {
  const legal = new Set([
    'pending→starting',
    'pending→running',
    'starting→running',
    'pending→failed',
    'starting→failed',
    'running→failed',
    'stopping→stopped',
    'stopping→failed',
  ]);

  it('allows exactly the legal transitions, treats a repeat as unchanged, refuses the rest with a reason', () => {
    for (const from of REPLICA_STATUSES) {
      for (const to of REPLICA_STATUSES) {
        const check = checkReplicaReport(from, to);
        if (from === to) expect(check).toEqual({ kind: 'unchanged' });
        else if (legal.has(`${from}→${to}`)) expect(check, `${from}→${to}`).toEqual({ kind: 'apply' });
        else {
          expect(check.kind, `${from}→${to}`).toBe('illegal');
          if (check.kind === 'illegal') expect(check.reason).toContain(from);
        }
      }
    }
  });
});

describe('healthOf (health from SQL counts)', () => {
  it('agrees with deploymentHealth over the replicas it counts', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom<ReplicaStatus>('pending', 'starting', 'running', 'failed'), { maxLength: 30 }), fc.integer({ min: 0, max: 100 }), (statuses, target) => {
        const counts = {
          considered: statuses.length,
          running: statuses.filter((s) => s === 'running').length,
          failed: statuses.filter((s) => s === 'failed').length,
        };
        expect(healthOf(counts, target)).toBe(deploymentHealth(statuses, target));
      }),
    );
  });
});
