import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { testContext } from '../support/context.js';
import { describeBackends } from '../support/databases.js';
import { agentsTick, driftedAllocations, overcommittedNodes, replicaCounts } from '../support/fixtures.js';
import { PATIENCE_MS } from '../support/patience.js';
import { createTestApp, nodeToken, userToken, type TestApp } from '../support/tokens.js';

/**
 * A node re-registered with less capacity than its replicas hold (DESIGN.md: never an overcommitted
 * node): the fewest replicas that make the rest fit fail with NodeCapacityReduced, the answer names
 * them, allocation equals the replicas kept, and the controller replaces them elsewhere.
 */
const WAIT = { timeout: PATIENCE_MS, interval: 50 };
const big = { cpu_cores: 4, memory_mb: 8192, gpu_units: 0, storage_gb: 100 };

interface Registration {
  node_id: string;
  cpu_cores: number;
  evicted_replicas: { replica_id: string; deployment_id: string; status: string; reason: string }[];
}

describeBackends('node re-registered smaller', (t) => {
  let api: TestApp;
  let controller: Controller | null = null;
  const db = () => t().database.db;

  beforeEach(async () => {
    api = createTestApp(t().database);
    controller = new Controller(testContext(t().database));
    await controller.start();
  });
  afterEach(async () => {
    await controller?.stop();
    controller = null;
    expect(await overcommittedNodes(db())).toEqual([]);
    expect(await driftedAllocations(db())).toEqual([]);
  });

  const register = async (name: string, capacity: Record<string, number>): Promise<Registration> => {
    const res = await api.call('POST', '/api/nodes', { token: await nodeToken(name), body: { name, ...capacity } });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Registration;
  };
  const deploy = async (name: string, replicas: number, cpu: number, memory = 512): Promise<string> => {
    const res = await api.call('POST', '/api/deployment/deploy', {
      token: await userToken('shrinker'),
      body: { name, container_image: 'nginx:1.27', target_replicas: replicas, resources: { cpu_cores: cpu, memory_mb: memory, storage_gb: 1 } },
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return ((await res.json()) as { deployment_id: string }).deployment_id;
  };
  const allocation = async (nodeId: string) => {
    const row = await db().selectFrom('nodes').select(['allocated_cpu_millicores', 'allocated_memory_mb']).where('id', '=', nodeId).executeTakeFirstOrThrow();
    return { cpuMillicores: Number(row.allocated_cpu_millicores), memoryMb: Number(row.allocated_memory_mb) };
  };

  it('evicts the fewest replicas that no longer fit, says which, and the controller replaces them elsewhere', async () => {
    const a = await register('shrink-a', big);
    expect(a.evicted_replicas).toEqual([]);
    const small = await deploy('shrink-small', 2, 0.5);
    await expect.poll(async () => (await replicaCounts(db(), small)).byNode[a.node_id], WAIT).toBe(2);
    const large = await deploy('shrink-large', 1, 2, 1024);
    await expect.poll(async () => (await replicaCounts(db(), large)).byNode[a.node_id], WAIT).toBe(1);
    await agentsTick(db());
    const [largeReplica] = await db().selectFrom('deployment_replicas').select('id').where('deployment_id', '=', large).execute();

    // 3 cores held on 1.5: one replica (the 2-core one) is the fewest that makes the rest fit.
    const shrunk = await register('shrink-a', { ...big, cpu_cores: 1.5 });
    expect(shrunk.cpu_cores).toBe(1.5);
    expect(shrunk.evicted_replicas).toEqual([{ replica_id: largeReplica!.id, deployment_id: large, status: 'failed', reason: 'NodeCapacityReduced' }]);
    expect(await allocation(a.node_id)).toEqual({ cpuMillicores: 1000, memoryMb: 1024 });
    expect((await replicaCounts(db(), small)).running).toBe(2);

    // Re-registering again as small evicts nothing more.
    expect((await register('shrink-a', { ...big, cpu_cores: 1.5 })).evicted_replicas).toEqual([]);

    const b = await register('shrink-b', big);
    await expect.poll(async () => (await replicaCounts(db(), large)).byNode[b.node_id], WAIT).toBe(1);
    expect((await replicaCounts(db(), large)).byNode[a.node_id]).toBeUndefined();
    // A failure of the node, not of the deployment: no crash-loop back-off.
    const { restart_count } = await db().selectFrom('deployments').select('restart_count').where('id', '=', large).executeTakeFirstOrThrow();
    expect(restart_count).toBe(0);
  });

  it('a node of 4 cores re-registered as 0.1 cores and 1 MB gives up everything it holds', async () => {
    const n = await register('shrink-tiny', big);
    const id = await deploy('shrink-tiny-app', 1, 0.5);
    await expect.poll(async () => (await replicaCounts(db(), id)).byNode[n.node_id], WAIT).toBe(1);
    const tiny = await register('shrink-tiny', { cpu_cores: 0.1, memory_mb: 1, gpu_units: 0, storage_gb: 100 });
    // Replicas of the other tests' deployments may have landed here too: every one goes.
    expect(tiny.evicted_replicas).toContainEqual(expect.objectContaining({ deployment_id: id, status: 'failed', reason: 'NodeCapacityReduced' }));
    expect(await allocation(n.node_id)).toEqual({ cpuMillicores: 0, memoryMb: 0 });
    const left = await db().selectFrom('deployment_replicas').select('id').where('node_id', '=', n.node_id).where('status', 'in', ['pending', 'starting', 'running', 'stopping']).execute();
    expect(left).toEqual([]);
  });

  it('documents the answer in the OpenAPI document', async () => {
    const doc = (await (await api.call('GET', '/openapi.json')).json()) as {
      paths: Record<string, { post?: { responses: Record<string, { content: { 'application/json': { schema: { $ref: string } } } }> } }>;
      components: { schemas: Record<string, { properties: Record<string, unknown>; required?: string[] }> };
    };
    expect(doc.paths['/api/nodes']!.post!.responses['201']!.content['application/json'].schema.$ref).toBe('#/components/schemas/NodeRegistration');
    const schema = doc.components.schemas.NodeRegistration!;
    expect(schema.properties).toHaveProperty('evicted_replicas');
    expect(schema.required).toContain('evicted_replicas');
  });

  it('the database refuses a capacity change that would leave a node overcommitted, whoever makes it', async () => {
    const n = await register('shrink-guard', big);
    const id = await deploy('shrink-guard-app', 1, 1);
    await expect.poll(async () => (await replicaCounts(db(), id)).byNode[n.node_id], WAIT).toBe(1);
    await expect(sql`UPDATE nodes SET cpu_cores = 0.5 WHERE id = ${n.node_id}`.execute(db())).rejects.toMatchObject({ code: 'ST001' });
    await sql`UPDATE nodes SET cpu_cores = 8 WHERE id = ${n.node_id}`.execute(db());
  });
});
