import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerRuntime } from '../../src/agent/docker/docker-runtime.js';
import { LABELS, containerName } from '../../src/agent/docker/container-config.js';
import type { DockerEngine, EngineEvent } from '../../src/agent/docker/engine.js';
import type { ContainerSpec } from '../../src/agent/runtime.js';
import { startBrokenRegistry } from '../support/broken-registry.js';
import { BUSYBOX_IMAGE } from '../support/docker-engine.js';
import { capturingLogger, describeDocker, engineClient, uniqueName } from '../support/docker-tests.js';
import { silentLogger } from '../support/databases.js';

/** DockerRuntime against a real engine: what the engine is told, and how its states read back. */

const spec = (overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  replicaId: randomUUID(),
  deploymentId: randomUUID(),
  image: BUSYBOX_IMAGE,
  resources: { cpuCores: 0.5, memoryMb: 512, gpuUnits: 0, storageGb: 1 },
  ...overrides,
});

describeDocker('Docker runtime against a real engine', (host) => {
  let engine: DockerEngine;
  beforeAll(() => {
    engine = engineClient(host);
  });
  afterAll(() => engine.close());

  const runtimeFor = (node = uniqueName('node'), logger = silentLogger, stopTimeoutSec = 1) =>
    new DockerRuntime({ engine, logger, node, networkMode: 'none', stopTimeoutSec });

  it('creates the container with the limits, labels, command and env of the spec, and never logs env values', async () => {
    const { logger, text } = capturingLogger();
    const node = uniqueName('node');
    const runtime = runtimeFor(node, logger);
    const s = spec({ resources: { cpuCores: 1.5, memoryMb: 768, gpuUnits: 0, storageGb: 1 }, revision: 4, command: ['sleep', '3600'], env: { GREETING: 'hello', API_KEY: 'sekret-value-42' } });
    const status = await runtime.start(s);
    expect(status).toMatchObject({ replicaId: s.replicaId, state: 'running', reason: null });

    const inspected = (await engine.inspectContainer(status.containerId))!;
    expect(inspected.Name).toBe(`/${containerName(s.replicaId)}`);
    expect(inspected.HostConfig).toMatchObject({
      Memory: 768 * 1024 * 1024,
      MemorySwap: 768 * 1024 * 1024,
      NanoCpus: 1_500_000_000,
      NetworkMode: 'none',
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      Privileged: false,
    });
    expect(inspected.HostConfig.CapAdd ?? []).toEqual([]);
    expect(inspected.HostConfig.Binds ?? []).toEqual([]);
    expect(inspected.HostConfig.DeviceRequests ?? []).toEqual([]);
    expect(inspected.Config.Labels).toMatchObject({
      [LABELS.replicaId]: s.replicaId,
      [LABELS.deploymentId]: s.deploymentId,
      [LABELS.revision]: '4',
      [LABELS.node]: node,
    });
    expect(inspected.Config.Cmd).toEqual(['sleep', '3600']);
    expect(inspected.Config.Env).toEqual(expect.arrayContaining(['GREETING=hello', 'API_KEY=sekret-value-42']));
    expect(await runtime.list()).toEqual([{ containerId: status.containerId, replicaId: s.replicaId, state: 'running', reason: null }]);
    expect(text()).not.toContain('sekret-value-42');
    await runtime.stop(status.containerId);
  }, 120_000);

  it('asks for GPUs as a DeviceRequests count; without a GPU driver the start fails as ContainerCannotRun', async () => {
    const runtime = runtimeFor();
    const s = spec({ resources: { cpuCores: 0.5, memoryMb: 512, gpuUnits: 2, storageGb: 1 } });
    const status = await runtime.start(s);
    const inspected = (await engine.inspectContainer(containerName(s.replicaId)))!;
    expect(inspected.HostConfig.DeviceRequests).toEqual([expect.objectContaining({ Count: 2, Capabilities: [['gpu']] })]);
    expect(status.state).toBe('failed');
    expect(status.reason).toMatch(/^ContainerCannotRun: .+/);
    // The failed container stays visible with the same reason until it is stopped.
    expect(await runtime.list()).toEqual([status]);
    await runtime.stop(status.containerId);
    expect(await runtime.list()).toEqual([]);
  }, 120_000);

  it('reads exits back: exit code, OOMKilled past the memory limit, and a command that cannot run', async () => {
    const runtime = runtimeFor();
    const changes: number[] = [];
    const unwatch = runtime.watch(() => changes.push(Date.now()));
    try {
      const exit3 = spec({ command: ['sh', '-c', 'sleep 0.5; exit 3'] });
      const oom = spec({ command: ['sh', '-c', 'head -c 700m /dev/zero | tail'] });
      const cannot = spec({ command: ['/no/such/binary'] });
      const started = await Promise.all([exit3, oom, cannot].map((s) => runtime.start(s)));
      expect(started[2]).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^ContainerCannotRun: .*no such file or directory/) });
      const reasons = async () => Object.fromEntries((await runtime.list()).map((c) => [c.replicaId, `${c.state} ${c.reason}`]));
      await expect.poll(reasons, { timeout: 240_000, interval: 200 }).toEqual({
        [exit3.replicaId]: 'failed Error: exit code 3',
        [oom.replicaId]: 'failed OOMKilled',
        [cannot.replicaId]: started[2]!.state + ' ' + started[2]!.reason,
      });
      // The two exits came through the event stream.
      expect(changes.length).toBeGreaterThanOrEqual(2);
      for (const c of await runtime.list()) await runtime.stop(c.containerId);
    } finally {
      unwatch();
      await runtime.close();
    }
  }, 300_000);

  it('fails a missing image as ErrImagePull, also when the engine reports it inside a 200 pull stream', async () => {
    const runtime = runtimeFor();
    const unreachable = await runtime.start(spec({ image: '127.0.0.1:1/steady/missing:1' }));
    expect(unreachable).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^ErrImagePull: .*127\.0\.0\.1:1/) });

    const registry = await startBrokenRegistry();
    try {
      const s = spec({ image: registry.image });
      const status = await runtime.start(s);
      expect(status).toMatchObject({ state: 'failed', reason: 'ErrImagePull: unknown blob' });
      // No container exists, yet the failure stays listed until stop() forgets it.
      expect(await runtime.list()).toContainEqual(status);
      expect(await engine.inspectContainer(containerName(s.replicaId))).toBeNull();
      await runtime.stop(status.containerId);
      await runtime.stop(unreachable.containerId);
      expect(await runtime.list()).toEqual([]);
    } finally {
      await registry.close();
    }
  }, 120_000);

  it('stops with SIGTERM, then SIGKILL after the stop timeout, and removes the container', async () => {
    const runtime = runtimeFor(uniqueName('node'), silentLogger, 2);
    const polite = spec({ command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done'] });
    const stubborn = spec({ command: ['sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done'] });
    const [a, b] = await Promise.all([runtime.start(polite), runtime.start(stubborn)]);
    const signals = await collectKillSignals(engine, [a!.containerId, b!.containerId], async () => {
      const began = Date.now();
      await runtime.stop(b!.containerId);
      expect(Date.now() - began).toBeGreaterThanOrEqual(2_000);
      await runtime.stop(a!.containerId);
    });
    expect(signals[a!.containerId]).toEqual(['15']);
    expect(signals[b!.containerId]).toEqual(['15', '9']);
    expect(await engine.inspectContainer(a!.containerId)).toBeNull();
    expect(await engine.inspectContainer(b!.containerId)).toBeNull();
    // Stopping what is already gone is not an error.
    await runtime.stop(a!.containerId);
  }, 180_000);

  it('finds its containers again from their labels in a new runtime, and keeps one container per replica', async () => {
    const node = uniqueName('node');
    const first = runtimeFor(node);
    const s = spec();
    const running = await first.start(s);
    const other = await runtimeFor().start(spec());

    // A second agent process on the same node sees exactly the same containers, by label.
    const second = runtimeFor(node);
    expect(await second.list()).toEqual([running]);

    // A leftover under the replica's name (say, from a node that was renamed) is replaced, never doubled.
    const again = await second.start(s);
    expect(again.state).toBe('running');
    expect(again.containerId).not.toBe(running.containerId);
    const named = await engine.listContainers([`${LABELS.replicaId}=${s.replicaId}`]);
    expect(named.map((c) => c.Id)).toEqual([again.containerId]);

    // A container created but never started (its agent died in between) is removed, so the replica starts afresh.
    const orphan = spec();
    await engine.createContainer(containerName(orphan.replicaId), { Image: BUSYBOX_IMAGE, Labels: { [LABELS.replicaId]: orphan.replicaId, [LABELS.node]: node } });
    expect((await second.list()).map((c) => c.replicaId)).toEqual([s.replicaId]);
    expect(await engine.inspectContainer(containerName(orphan.replicaId))).toBeNull();

    await second.stop(again.containerId);
    await runtimeFor().stop(other.containerId);
  }, 120_000);
});

/** The signals the engine delivered to the given containers while `during` ran, from its event stream. */
async function collectKillSignals(engine: DockerEngine, ids: readonly string[], during: () => Promise<void>): Promise<Record<string, string[]>> {
  const stream = await engine.events({ type: ['container'], event: ['kill', 'destroy'], container: [...ids] });
  const seen: Record<string, string[]> = Object.fromEntries(ids.map((id) => [id, []]));
  const destroyed = new Set<string>();
  const reading = (async () => {
    for await (const event of stream.events as AsyncIterable<EngineEvent>) {
      if (event.Action === 'kill') seen[event.Actor.ID]?.push(event.Actor.Attributes.signal ?? '?');
      if (event.Action === 'destroy') destroyed.add(event.Actor.ID);
      if (destroyed.size === ids.length) break;
    }
  })();
  await during();
  await reading;
  stream.close();
  return seen;
}
