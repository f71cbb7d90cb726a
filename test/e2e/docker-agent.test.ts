import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DockerNode } from '../../src/agent/docker/docker-node.js';
import { LABELS, containerName } from '../../src/agent/docker/container-config.js';
import type { DockerEngine } from '../../src/agent/docker/engine.js';
import type { Daemon } from '../../src/daemon.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { busyboxDeployment, nodeContainers, replicaRows, running, startSteadyFor, startTestDockerNode, userApi, type UserApi } from '../support/docker-cluster.js';
import { BUSYBOX_IMAGE } from '../support/docker-engine.js';
import { describeDocker, engineClient, uniqueName } from '../support/docker-tests.js';

/**
 * The node agent with the Docker runtime against steady (API and controller) and a real engine: a
 * deployment becomes containers, exits become failed replicas that are replaced, an agent restart
 * adopts what runs, and scale-down and delete remove containers. Figures are printed, not bounded.
 */

const POLL = { timeout: 90_000, interval: 100 };
const LONG = 240_000;

describeDocker('Docker node agent with steady', (host) => {
  let testDb: TestDatabase;
  let daemon: Daemon;
  let url: string;
  let engine: DockerEngine;
  let api: UserApi;
  let node: DockerNode;
  const name = uniqueName('docker-node');

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    ({ daemon, url } = await startSteadyFor(testDb.url!));
    engine = engineClient(host);
    api = await userApi(url);
    node = await startTestDockerNode(url, host, name);
    expect(await node.agent.registered).toBe(true);
  });
  afterAll(async () => {
    await node?.stop();
    for (const c of engine ? await nodeContainers(engine, name) : []) await engine.removeContainer(c.Id);
    engine?.close();
    await daemon?.stop();
    await testDb?.destroy();
  });

  const runningIds = async (): Promise<string[]> => (await running(engine, name)).map((c) => c.Labels[LABELS.replicaId]!).sort();
  const activeReplicaIds = async (deploymentId: string): Promise<string[]> =>
    (await replicaRows(daemon, deploymentId)).filter((r) => r.status === 'running').map((r) => r.id).sort();

  it('runs a deployment as one container per replica on a node labelled runtime=docker', async () => {
    const { rows } = await sql<{ labels: Record<string, string> }>`SELECT labels FROM nodes WHERE name = ${name}`.execute(daemon.ctx.database.db);
    expect(rows[0]?.labels).toMatchObject({ runtime: 'docker' });

    const id = await api.deploy(busyboxDeployment(uniqueName('web'), BUSYBOX_IMAGE, 3));
    await expect.poll(async () => (await api.status(id)).status, POLL).toBe('running');
    const replicas = await replicaRows(daemon, id);
    expect(await runningIds()).toEqual(replicas.map((r) => r.id).sort());
    for (const r of replicas) {
      const inspected = (await engine.inspectContainer(containerName(r.id)))!;
      expect(r.container_id).toBe(inspected.Id);
      expect(inspected.Config.Labels).toMatchObject({ [LABELS.deploymentId]: id, [LABELS.node]: name });
    }
    const latencies = replicas.map((r) => r.started_at!.getTime() - r.created_at.getTime());
    console.log(`[figure] start latency, placement to running (3 replicas): ${latencies.join(', ')} ms`);
    await api.remove(id);
    await expect.poll(runningIds, POLL).toEqual([]);
  }, LONG);

  it('reports a container killed behind its back as failed with its exit reason, and runs a replacement', async () => {
    const id = await api.deploy(busyboxDeployment(uniqueName('kill'), BUSYBOX_IMAGE, 2));
    await expect.poll(async () => (await activeReplicaIds(id)).length, POLL).toBe(2);
    const [victim] = await activeReplicaIds(id);
    const killedAt = Date.now();
    await engine.killContainer(containerName(victim!));

    await expect.poll(async () => (await replicaRows(daemon, id)).find((r) => r.id === victim)?.status, POLL).toBe('failed');
    const failed = (await replicaRows(daemon, id)).find((r) => r.id === victim)!;
    expect(failed.reason).toBe('Error: exit code 137');
    console.log(`[figure] exit to report latency (docker kill to failed recorded): ${failed.stopped_at!.getTime() - killedAt} ms`);

    // The controller places a replacement; the agent runs it and removes the dead container.
    await expect.poll(async () => (await activeReplicaIds(id)).length, POLL).toBe(2);
    expect(await activeReplicaIds(id)).not.toContain(victim);
    await expect.poll(runningIds, POLL).toEqual(await activeReplicaIds(id));
    await expect.poll(async () => engine.inspectContainer(containerName(victim!)), POLL).toBeNull();
    await api.remove(id);
    await expect.poll(runningIds, POLL).toEqual([]);
  }, LONG);

  it('adopts its containers after a restart: none started again, none doubled, strays removed', async () => {
    const id = await api.deploy(busyboxDeployment(uniqueName('adopt'), BUSYBOX_IMAGE, 3));
    await expect.poll(async () => (await activeReplicaIds(id)).length, POLL).toBe(3);
    const before = (await running(engine, name)).map((c) => c.Id).sort();
    expect(before).toHaveLength(3);

    await node.stop();
    // Containers outlive their agent.
    expect((await running(engine, name)).map((c) => c.Id).sort()).toEqual(before);
    // A container of a replica the API does not list for this node: the restarted agent removes it.
    const stray = await engine.createContainer(containerName(randomUUID()), {
      Image: BUSYBOX_IMAGE,
      Labels: { [LABELS.replicaId]: randomUUID(), [LABELS.node]: name },
      HostConfig: { NetworkMode: 'none' },
    });
    await engine.startContainer(stray);

    const began = Date.now();
    node = await startTestDockerNode(url, host, name);
    await expect.poll(() => node.agent.passes, POLL).toBeGreaterThanOrEqual(1);
    console.log(`[figure] agent restart to containers adopted (first pass done): ${Date.now() - began} ms`);
    await expect.poll(async () => engine.inspectContainer(stray), POLL).toBeNull();
    // The same three containers, still running, each recorded on its replica.
    expect((await running(engine, name)).map((c) => c.Id).sort()).toEqual(before);
    expect((await replicaRows(daemon, id)).filter((r) => r.status === 'running').map((r) => r.container_id).sort()).toEqual(before);
    expect((await api.status(id)).status).toBe('running');
    await api.remove(id);
    await expect.poll(runningIds, POLL).toEqual([]);
  }, LONG);

  it('removes the containers of replicas scaled down, then of a deleted deployment', async () => {
    const id = await api.deploy(busyboxDeployment(uniqueName('scale'), BUSYBOX_IMAGE, 3));
    await expect.poll(async () => (await activeReplicaIds(id)).length, POLL).toBe(3);
    let began = Date.now();
    await api.scale(id, 1);
    await expect.poll(async () => (await nodeContainers(engine, name)).length, POLL).toBe(1);
    console.log(`[figure] scale 3 to 1, containers removed after ${Date.now() - began} ms (stop timeout 2 s; sleep ignores SIGTERM)`);
    expect(await runningIds()).toEqual(await activeReplicaIds(id));

    began = Date.now();
    await api.remove(id);
    await expect.poll(async () => (await nodeContainers(engine, name)).length, POLL).toBe(0);
    console.log(`[figure] delete, last container removed after ${Date.now() - began} ms`);
  }, LONG);
});
