import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSimulatedNodes, type SimulatedNodes } from '../../src/agent/simulator.js';
import { createApp } from '../../src/api/app.js';
import { serveApi, type RunningServer } from '../../src/api/server.js';
import { createTokenMinter } from '../../src/api/tokens.js';
import { loadConfig } from '../../src/config.js';
import { systemClock } from '../../src/context.js';
import { createMetrics } from '../../src/metrics.js';
import { describeBackends } from '../support/databases.js';
import { until } from '../support/patience.js';

/**
 * Simulated node agents against the real API over real HTTP, on both backends. No controller runs:
 * the test writes the replica rows the controller would, and watches the agents carry them out.
 */
const SECRET = 'agent-api-integration-secret-0123456789abcdef';

describeBackends('node agents against the real API', (t) => {
  const db = () => t().database.db;
  let server: RunningServer;
  let sim: SimulatedNodes;
  let deploymentId: string;

  beforeAll(async () => {
    const logger = pino({ level: 'silent' });
    const config = loadConfig({ JWT_SECRET: SECRET });
    const app = createApp({ config, database: t().database, logger, metrics: createMetrics(), clock: systemClock });
    server = await serveApi(app, { host: '127.0.0.1', port: 0 });
    const mint = createTokenMinter(SECRET, { roles: ['node'], ttlSec: 3600 });
    sim = startSimulatedNodes({ apiUrl: `http://127.0.0.1:${server.port}`, tokenFor: mint, nodes: 2, namePrefix: 'it', heartbeatMs: 50, startDelayMs: 20, logger });
    await sim.ready();
    const user = await db().insertInto('users').values({ subject: 'agent-it' }).returning('id').executeTakeFirstOrThrow();
    const deployment = await db()
      .insertInto('deployments')
      .values({ name: 'web', user_id: user.id, container_image: 'nginx:1.27', target_replicas: 2 })
      .returning('id')
      .executeTakeFirstOrThrow();
    deploymentId = deployment.id;
    await db().insertInto('deployment_resources').values({ deployment_id: deploymentId, cpu_cores: 1, memory_mb: 512, storage_gb: 1 }).execute();
    await db()
      .insertInto('deployment_revisions')
      .values({ deployment_id: deploymentId, revision: 1, template_revision: 1, container_image: 'nginx:1.27', cpu_cores: 1, memory_mb: 512, storage_gb: 1 })
      .execute();
  });

  afterAll(async () => {
    await sim?.stop();
    await server?.close();
  });

  const nodeId = async (name: string) => (await db().selectFrom('nodes').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
  const replica = async (id: string) =>
    db().selectFrom('deployment_replicas').select(['status', 'container_id', 'reason']).where('id', '=', id).executeTakeFirstOrThrow();
  const placeReplica = async (nodeName: string) =>
    (
      await db()
        .insertInto('deployment_replicas')
        .values({ deployment_id: deploymentId, node_id: await nodeId(nodeName), status: 'pending', revision: 1 })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  async function waitForStatus(id: string, status: string): Promise<void> {
    await until(`replica ${id} becoming ${status}`, async () => (await replica(id)).status === status);
  }

  it('registers every node with its capacity and keeps its heartbeat fresh', async () => {
    const nodes = await db().selectFrom('nodes').select(['name', 'status', 'cpu_cores', 'memory_mb', 'last_heartbeat_at']).orderBy('name').execute();
    expect(nodes.map((n) => [n.name, n.status, Number(n.cpu_cores), n.memory_mb])).toEqual([
      ['it-1', 'ready', 4, 8192],
      ['it-2', 'ready', 4, 8192],
    ]);
    // Fresh: every node's heartbeat moves on past the one just read.
    const heartbeats = async () => (await db().selectFrom('nodes').select('last_heartbeat_at').orderBy('name').execute()).map((n) => new Date(n.last_heartbeat_at!).getTime());
    const seen = await heartbeats();
    await until('newer heartbeats from every node', async () => (await heartbeats()).every((t, i) => t > seen[i]!));
  });

  it('runs placed replicas (pending → starting → running, with a container id) and stops them on request', async () => {
    const a = await placeReplica('it-1');
    const b = await placeReplica('it-2');
    await waitForStatus(a, 'running');
    await waitForStatus(b, 'running');
    expect((await replica(a)).container_id).toMatch(/^it-1-/);
    expect(sim.nodes[1]!.runtime.runningReplicaIds()).toEqual([b]);

    await db().updateTable('deployment_replicas').set({ status: 'stopping' }).where('id', '=', a).execute();
    await waitForStatus(a, 'stopped');
    expect(sim.nodes[0]!.runtime.runningReplicaIds()).toEqual([]);
  });

  it('reports a crash as failed with its reason, and removes the container once the replica is off the node', async () => {
    const id = await placeReplica('it-1');
    await waitForStatus(id, 'running');
    sim.nodes[0]!.runtime.crash(id);
    await waitForStatus(id, 'failed');
    expect((await replica(id)).reason).toContain('SimulatedCrash');
    await until('the failed replica’s container removed', async () => !(await sim.nodes[0]!.runtime.list()).some((c) => c.replicaId === id));
  });
});
