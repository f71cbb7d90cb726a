import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LABELS } from '../../src/agent/docker/container-config.js';
import type { DockerEngine } from '../../src/agent/docker/engine.js';
import { signToken } from '../../src/api/tokens.js';
import { TEST_JWT_SECRET } from '../support/context.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { busyboxDeployment, nodeContainers, running, userApi } from '../support/docker-cluster.js';
import { BUSYBOX_IMAGE } from '../support/docker-engine.js';
import { describeDocker, engineClient, uniqueName } from '../support/docker-tests.js';
import { startSteady, type SteadyProcess } from '../support/processes.js';

/**
 * `steady serve` and `steady agent --runtime docker` as real processes, and `steady dev --runtime
 * docker`: a deployment becomes running containers; the agent SIGKILLed and started again adopts
 * them; SIGTERM stops the agent and leaves its containers running.
 */

const POLL = { timeout: 120_000, interval: 200 };

describeDocker('steady agent --runtime docker as a process', (host) => {
  let testDb: TestDatabase;
  let engine: DockerEngine;
  const procs: SteadyProcess[] = [];
  const nodeNames: string[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    engine = engineClient(host);
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    for (const name of nodeNames) for (const c of await nodeContainers(engine, name)) await engine.removeContainer(c.Id);
    engine?.close();
    await testDb?.destroy();
  });

  it('runs a deployment of 3 replicas as 3 containers, and adopts them after a SIGKILL of the agent', async () => {
    const env = { DATABASE_URL: testDb.url!, JWT_SECRET: TEST_JWT_SECRET, PORT: '0', STEADY_RESYNC_PERIOD: '1s', STEADY_BACKOFF_BASE: '200ms', STEADY_RATE_LIMIT: '0' };
    const server = startSteady(['serve', '--role', 'all'], env);
    procs.push(server);
    const [, url] = await server.waitFor(/"url":"(http:\/\/[^"]+)"/, 60_000);
    const name = uniqueName('proc-node');
    nodeNames.push(name);
    const agentArgs = ['agent', '--runtime', 'docker', '--api', url!, '--name', name, '--docker-host', host, '--network', 'none', '--cpu', '4', '--memory-mb', '8192', '--storage-gb', '50', '--stop-timeout', '2s', '--heartbeat', '1s'];
    const agentEnv = { ...env, JWT_SECRET: undefined, STEADY_TOKEN: await signToken(TEST_JWT_SECRET, { sub: name, roles: ['node'] }) };
    let agent = startSteady(agentArgs, agentEnv);
    procs.push(agent);

    const api = await userApi(url!);
    const id = await api.deploy(busyboxDeployment(uniqueName('web'), BUSYBOX_IMAGE, 3));
    await expect.poll(async () => (await api.status(id)).status, POLL).toBe('running');
    const before = (await running(engine, name)).map((c) => c.Id).sort();
    expect(before).toHaveLength(3);
    expect((await api.status(id)).replicas.map((r) => r.container_id).sort()).toEqual(before);

    agent.kill('SIGKILL');
    await agent.exited();
    const began = Date.now();
    agent = startSteady(agentArgs, agentEnv);
    procs.push(agent);
    await agent.waitFor(/"msg":"Docker node agent started"/, 60_000);
    await agent.waitFor(/"msg":"node registered"/, 60_000);
    console.log(`[figure] agent process restarted to registered with its containers (process start included): ${Date.now() - began} ms`);
    // Several passes later: the same three containers, nothing started again, nothing doubled.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect((await nodeContainers(engine, name)).map((c) => c.Id).sort()).toEqual(before);
    expect((await api.status(id)).status).toBe('running');

    // SIGTERM stops the agent cleanly; a kubelet restart does not kill pods.
    agent.kill('SIGTERM');
    expect(await agent.exited()).toBe(0);
    expect((await running(engine, name)).map((c) => c.Id).sort()).toEqual(before);
    expect(agent.output()).not.toContain(TEST_JWT_SECRET);

    agent = startSteady(agentArgs, agentEnv);
    procs.push(agent);
    await api.remove(id);
    await expect.poll(async () => (await nodeContainers(engine, name)).length, POLL).toBe(0);
    agent.kill('SIGTERM');
    expect(await agent.exited()).toBe(0);
    server.kill('SIGTERM');
    expect(await server.exited()).toBe(0);
  }, 300_000);

  it('steady dev --runtime docker runs a deployment as containers on the local engine', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-dev-docker-'));
    const dev = startSteady(['dev', '--runtime', 'docker', '--network', 'none'], { DATABASE_URL: undefined, JWT_SECRET: undefined, STEADY_DATA_DIR: dir, XDG_CONFIG_HOME: dir, PORT: '0', DOCKER_HOST: host });
    procs.push(dev);
    // The embedded database's first start takes long on a loaded machine.
    const [, url] = await dev.waitFor(/API\s+(http:\/\/\S+)/, 400_000);
    const [, token] = await dev.waitFor(/token\s+(\S+)/);
    const [, name] = await dev.waitFor(/nodes\s+1 Docker node \((\S+)\)/);
    nodeNames.push(name!);
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const created = await fetch(`${url}/api/deployment/deploy`, { method: 'POST', headers, body: JSON.stringify(busyboxDeployment('dev-web', BUSYBOX_IMAGE, 2)) });
    expect(created.status).toBe(201);
    const { deployment_id: id } = (await created.json()) as { deployment_id: string };
    await expect.poll(async () => ((await (await fetch(`${url}/api/deployment/status/${id}`, { headers })).json()) as { status: string }).status, POLL).toBe('running');
    const containers = await running(engine, name!);
    expect(containers.map((c) => c.Labels[LABELS.deploymentId])).toEqual([id, id]);
    dev.kill('SIGTERM');
    expect(await dev.exited()).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 600_000);
});
