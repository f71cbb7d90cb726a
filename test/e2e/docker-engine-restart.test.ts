import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DockerNode } from '../../src/agent/docker/docker-node.js';
import { containerName, LABELS } from '../../src/agent/docker/container-config.js';
import type { DockerEngine } from '../../src/agent/docker/engine.js';
import type { Daemon } from '../../src/daemon.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { busyboxDeployment, nodeContainers, replicaRows, running, startSteadyFor, startTestDockerNode, userApi } from '../support/docker-cluster.js';
import { BUSYBOX_IMAGE, importBusyboxImage, startDockerEngine, type DockerEngineProcess } from '../support/docker-engine.js';
import { capturingLogger, describeDocker, engineClient, uniqueName } from '../support/docker-tests.js';

/**
 * The engine restarted under a running agent (its own engine: the shared one must not go away under
 * other test files). The engine's shutdown kills the containers; once it is back, the agent reports
 * them failed with their exit reasons, not running, and the controller's replacements run.
 */

const POLL = { timeout: 120_000, interval: 200 };

describeDocker('Docker engine restarted under the agent', () => {
  let testDb: TestDatabase;
  let daemon: Daemon;
  let url: string;
  let dockerd: DockerEngineProcess;
  let engine: DockerEngine;
  let node: DockerNode | null = null;
  const name = uniqueName('restart-node');
  const log = capturingLogger();

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    ({ daemon, url } = await startSteadyFor(testDb.url!));
    dockerd = await startDockerEngine();
    await importBusyboxImage(dockerd);
    engine = engineClient(dockerd.host);
    node = await startTestDockerNode(url, dockerd.host, name, log.logger);
  }, 180_000);
  afterAll(async () => {
    await node?.stop();
    engine?.close();
    await dockerd?.destroy();
    await daemon?.stop();
    await testDb?.destroy();
  }, 120_000);

  it('recovers when the engine is back and reports the killed containers failed, then runs their replacements', async () => {
    const id = await (await userApi(url)).deploy(busyboxDeployment(uniqueName('web'), BUSYBOX_IMAGE, 2));
    const runningReplicas = async () => (await replicaRows(daemon, id)).filter((r) => r.status === 'running').map((r) => r.id).sort();
    await expect.poll(async () => (await runningReplicas()).length, POLL).toBe(2);
    const before = await runningReplicas();

    await dockerd.stop();
    await dockerd.start();

    // The old replicas are reported failed with the exit the engine recorded, never left running.
    await expect.poll(async () => (await replicaRows(daemon, id)).filter((r) => before.includes(r.id)).map((r) => r.status), POLL).toEqual(['failed', 'failed']);
    for (const r of (await replicaRows(daemon, id)).filter((row) => before.includes(row.id))) expect(r.reason).toMatch(/^Error: exit code \d+$/);

    // Replacements run in new containers; the dead ones are removed; one container per replica.
    await expect.poll(async () => (await runningReplicas()).filter((r) => !before.includes(r)).length, POLL).toBe(2);
    const now = await runningReplicas();
    await expect.poll(async () => (await nodeContainers(engine, name)).map((c) => c.Labels[LABELS.replicaId]).sort(), POLL).toEqual(now);
    expect((await running(engine, name)).map((c) => c.Labels[LABELS.replicaId]).sort()).toEqual(now);
    for (const r of before) expect(await engine.inspectContainer(containerName(r))).toBeNull();

    // The event stream reconnected after the engine came back.
    expect(log.text()).toContain('Docker event stream reconnected');
  }, 300_000);
});
