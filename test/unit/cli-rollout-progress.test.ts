import { describe, expect, it } from 'vitest';
import type { DeploymentState, Replica } from '../../src/client/types.js';
import { rolloutProgress } from '../../src/cli/rollout.js';

const replica = (status: Replica['status'], revision = 1): Replica => ({
  id: `r-${Math.random().toString(36).slice(2)}`,
  node_id: null,
  node_name: null,
  status,
  container_id: null,
  started_at: null,
  stopped_at: null,
  revision,
  reason: null,
});

/** A deployment of revision 1 with `running` replicas, all available, its rollout complete, observed. */
const state = (over: Partial<DeploymentState> & { running?: number; pending?: number } = {}): DeploymentState => {
  const { running = 3, pending = 0, ...rest } = over;
  const replicas = [...Array.from({ length: running }, () => replica('running')), ...Array.from({ length: pending }, () => replica('pending'))];
  return {
    deployment_id: '00000000-0000-4000-8000-000000000001',
    name: 'web',
    status: 'running',
    health: 'healthy',
    target_replicas: 3,
    container_image: 'nginx:1.27',
    replicas,
    resources: { cpu_cores: 1, memory_mb: 512, gpu_units: 0, storage_gb: 1 },
    recent_status_changes: [],
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    revision: 1,
    generation: 1,
    observed_generation: 1,
    reason: null,
    rollout: { state: 'complete', revision: 1, updated_replicas: running + pending, available_replicas: running, reason: null },
    command: null,
    env: null,
    strategy: { type: 'rolling_update', max_surge: 1, max_unavailable: 0, min_ready_seconds: 0, progress_deadline_seconds: 600, auto_rollback: true },
    ...rest,
  } as DeploymentState;
};

describe('rollout status progress', () => {
  it('is done when the rollout is complete, observed, and every target replica is there and available', () => {
    expect(rolloutProgress(state())).toEqual({ done: true, failed: false, line: 'deployment "web" successfully rolled out (revision 1)' });
  });

  it('waits for the controller to observe the latest change before it trusts the counts', () => {
    // Scaled down from 5 to 3: until the controller acts, the five replicas still look complete.
    const scaledDown = state({ running: 5, target_replicas: 3, generation: 2, observed_generation: 1 });
    expect(rolloutProgress(scaledDown)).toEqual({ done: false, line: 'Waiting for deployment "web" spec update to be observed...' });
  });

  it('is not done after a scale up while new replicas are missing or unavailable, though the template rolled out', () => {
    const placing = state({ running: 3, pending: 5, target_replicas: 8, generation: 2, observed_generation: 2 });
    expect(rolloutProgress(placing)).toEqual({ done: false, line: 'Waiting for deployment "web" rollout to finish: 3 of 8 updated replicas are available...' });
    const unschedulable = state({ running: 3, pending: 5, target_replicas: 8, generation: 2, observed_generation: 2, reason: 'Unschedulable: 0/2 nodes are available' });
    expect(rolloutProgress(unschedulable).line).toBe('Waiting for deployment "web" rollout to finish: 3 of 8 updated replicas are available... (Unschedulable: 0/2 nodes are available)');
    const created = state({ running: 3, target_replicas: 8, generation: 2, observed_generation: 2 });
    expect(rolloutProgress(created)).toEqual({ done: false, line: 'Waiting for deployment "web" rollout to finish: 3 out of 8 new replicas have been updated...' });
  });

  it('takes the counts as they are from a server that sends no generations', () => {
    const { generation: _g, observed_generation: _o, ...older } = state({ running: 5, target_replicas: 5 });
    expect(rolloutProgress(older as DeploymentState).done).toBe(true);
  });

  it('says a paused rollout is paused, and a failed one failed, whatever the generations', () => {
    const paused = state({ generation: 3, observed_generation: 2, rollout: { state: 'paused', revision: 2, updated_replicas: 1, available_replicas: 1, reason: null } });
    expect(rolloutProgress(paused)).toEqual({ done: false, line: 'Waiting for deployment "web": the rollout to revision 2 is paused (steady rollout resume web)' });
    const failed = state({ rollout: { state: 'failed', revision: 2, updated_replicas: 0, available_replicas: 0, reason: 'ProgressDeadlineExceeded' } });
    expect(rolloutProgress(failed)).toEqual({ done: true, failed: true, line: 'deployment "web" rollout to revision 2 failed: ProgressDeadlineExceeded' });
  });

  it('waits without a line for the controller to call a progressing rollout complete once all is available', () => {
    const progressing = state({ rollout: { state: 'progressing', revision: 1, updated_replicas: 3, available_replicas: 3, reason: null } });
    expect(rolloutProgress(progressing)).toEqual({ done: false, line: '' });
  });

  it("says why new replicas are missing when only they know: the newest failure of the desired revision's replicas", () => {
    const failedAt = (reason: string, stoppedAt: string, revision = 2): Replica => ({ ...replica('failed', revision), reason, stopped_at: stoppedAt });
    const d = state({
      generation: 2,
      observed_generation: 2,
      revision: 2,
      rollout: { state: 'progressing', revision: 2, updated_replicas: 1, available_replicas: 0, reason: null },
    });
    const pulling = {
      ...d,
      replicas: [
        ...d.replicas,
        failedAt('ErrImagePull: no such image', '2026-01-01T00:00:02.000Z'),
        failedAt('ErrImagePull: timeout', '2026-01-01T00:00:05.000Z'),
        failedAt('OOMKilled', '2026-01-01T00:00:09.000Z', 1),
      ],
    };
    expect(rolloutProgress(pulling).line).toBe('Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated... (last failure: ErrImagePull: timeout)');
    // What the rollout or the deployment says comes first; with no failure there is no parenthesis.
    expect(rolloutProgress({ ...pulling, reason: 'Unschedulable: 0/3 nodes are available' }).line).toMatch(/\(Unschedulable: 0\/3 nodes are available\)$/);
    expect(rolloutProgress(d).line).toBe('Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...');
  });
});
