import { describe, expect, it } from 'vitest';
import { SimulatedRuntime } from '../../src/agent/simulated-runtime.js';

const spec = (replicaId: string, image = 'redis:7') => ({
  replicaId,
  deploymentId: 'd1',
  revision: 1,
  image,
  resources: { cpuCores: 1, memoryMb: 512, gpuUnits: 0, storageGb: 1 },
  command: null,
  env: null,
});

describe('SimulatedRuntime', () => {
  it('fails exactly the starts whose random draw falls under failRate', async () => {
    const draws = [0.1, 0.9, 0.29, 0.3];
    const runtime = new SimulatedRuntime({ failRate: 0.3, random: () => draws.shift()!, idPrefix: 'n1' });
    const results = [];
    for (const id of ['a', 'b', 'c', 'd']) results.push(await runtime.start(spec(id)));
    expect(results.map((r) => r.state)).toEqual(['failed', 'running', 'failed', 'running']);
    expect(results[0]!.reason).toBe('SimulatedFailure: redis:7 exited with code 1 while starting');
    expect(new Set(results.map((r) => r.containerId)).size).toBe(4);
    expect(results.map((r) => r.containerId)).toEqual(['n1-a', 'n1-b', 'n1-c', 'n1-d']);
    // Failed containers stay listed (like an exited container) until removed.
    expect((await runtime.list()).map((c) => [c.replicaId, c.state])).toEqual([
      ['a', 'failed'],
      ['b', 'running'],
      ['c', 'failed'],
      ['d', 'running'],
    ]);
  });

  it('takes startDelayMs to start, and shows the container as starting meanwhile', async () => {
    const runtime = new SimulatedRuntime({ startDelayMs: 60 });
    const began = Date.now();
    const pending = runtime.start(spec('a'));
    expect((await runtime.list()).map((c) => c.state)).toEqual(['starting']);
    expect((await pending).state).toBe('running');
    expect(Date.now() - began).toBeGreaterThanOrEqual(55);
  });

  it('crashes a running container on request, and stop removes it idempotently', async () => {
    const runtime = new SimulatedRuntime();
    const { containerId } = await runtime.start(spec('a'));
    expect(runtime.crash('missing')).toBe(false);
    expect(runtime.crash('a', 'OOMKilled: out of memory')).toBe(true);
    expect(runtime.crash('a')).toBe(false);
    expect(await runtime.list()).toEqual([{ containerId, replicaId: 'a', state: 'failed', reason: 'OOMKilled: out of memory' }]);
    await runtime.stop(containerId);
    await runtime.stop(containerId);
    expect(await runtime.list()).toEqual([]);
  });

  it('a container removed while starting ends failed, not running', async () => {
    const runtime = new SimulatedRuntime({ startDelayMs: 30 });
    const pending = runtime.start(spec('a'));
    const [starting] = await runtime.list();
    await runtime.stop(starting!.containerId);
    expect(await pending).toMatchObject({ state: 'failed', reason: 'Stopped: removed while starting' });
    expect(await runtime.list()).toEqual([]);
  });

  it('never starts an image tagged fail, whatever the fail rate', async () => {
    const runtime = new SimulatedRuntime({ failRate: 0, idPrefix: 'n1' });
    expect(await runtime.start(spec('a', 'web:fail'))).toMatchObject({ state: 'failed', reason: 'ErrImagePull: simulated: web:fail cannot be pulled' });
    expect(await runtime.start(spec('b', 'web:failsafe'))).toMatchObject({ state: 'running' });
  });

  it('rejects impossible options', () => {
    expect(() => new SimulatedRuntime({ failRate: 1.5 })).toThrow(RangeError);
    expect(() => new SimulatedRuntime({ startDelayMs: -1 })).toThrow(RangeError);
  });
});
