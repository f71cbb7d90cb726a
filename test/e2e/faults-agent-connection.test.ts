import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startSimulatedNodes, type SimulatedNodes } from '../../src/agent/simulator.js';
import { signToken } from '../../src/api/tokens.js';
import { createTestDatabase, silentLogger, type TestDatabase } from '../support/databases.js';
import { overcommittedNodes } from '../support/fixtures.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import {
  CHAOS_SECRET,
  call,
  describeProcesses,
  sleep,
  startServe,
  steadyEnv,
  stopGracefully,
  unconvergedDeployments,
  userTokenFor,
  waitUntilClean,
  type ChaosProcess,
} from '../support/chaos-cluster.js';
import { LONG_TEST_MS, PATIENCE_MS } from '../support/patience.js';

/**
 * Scenario 4 of issue 7, lost agent connection: the API process dies (SIGKILL) and another comes
 * back behind the same address (a TCP proxy, as a Service or load balancer would be), once at once
 * and once after longer than grace + eviction, while the controller (its own process) goes on. The agents run in this test process, real NodeAgents over HTTP, so their
 * containers can be counted: afterwards every running container is exactly a replica the database
 * has running on that node (nothing orphaned), and no replica was ever started twice.
 */

const GRACE_MS = 10_000;
const EVICTION_MS = 2_000;

describe('agents lose the API and come back', () => {
  let testDb: TestDatabase;
  let controller: ChaosProcess;
  let api: ChaosProcess;
  let nodes: SimulatedNodes;
  let env: Record<string, string>;
  let proxy: TcpProxy;
  let url = '';

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    env = steadyEnv(testDb.url!, {
      STEADY_NODE_GRACE_PERIOD: `${GRACE_MS}ms`,
      STEADY_NODE_EVICTION_TIMEOUT: `${EVICTION_MS}ms`,
      STEADY_RESYNC_PERIOD: '2s',
      STEADY_LEASE_DURATION: '3s',
      STEADY_LEASE_RENEW: '1s',
      STEADY_LEASE_RETRY: '300ms',
    });
    let apiUrl: string;
    ({ proc: api, url: apiUrl } = await startServe('api', 'api', env));
    proxy = await startTcpProxy(Number(new URL(apiUrl).port));
    url = `http://127.0.0.1:${proxy.port}`;
    ({ proc: controller } = await startServe('controller', 'controller', env));
    nodes = startSimulatedNodes({
      apiUrl: url,
      tokenFor: (name) => signToken(CHAOS_SECRET, { sub: name, roles: ['node'] }),
      namePrefix: 'conn',
      nodes: 4,
      heartbeatMs: 300,
      startDelayMs: 100,
      retryBaseMs: 100,
      retryMaxMs: 1_000,
      requestTimeoutMs: 2_000,
      logger: silentLogger,
    });
    await nodes.ready();
  }, LONG_TEST_MS);

  afterAll(async () => {
    await nodes?.stop();
    await Promise.all([api, controller].filter(Boolean).map((p) => stopGracefully(p)));
    await proxy?.close();
    await testDb?.destroy();
  });

  /** Running containers per node versus the replicas the database has running there. */
  const containerMismatches = async (): Promise<string[]> => {
    const { rows } = await sql<{ id: string; node: string }>`
      SELECT r.id, n.name AS node FROM deployment_replicas r JOIN nodes n ON n.id = r.node_id WHERE r.status = 'running'`.execute(testDb.database.db);
    const problems: string[] = [];
    const seen = new Map<string, string>();
    for (const node of nodes.nodes) {
      const containers = await node.runtime.list();
      for (const c of containers) {
        if (seen.has(c.replicaId)) problems.push(`replica ${c.replicaId} has containers on ${seen.get(c.replicaId)} and ${node.name}`);
        seen.set(c.replicaId, node.name);
      }
      const running = new Set(node.runtime.runningReplicaIds());
      const expected = new Set(rows.filter((r) => r.node === node.name).map((r) => r.id));
      for (const id of running) if (!expected.has(id)) problems.push(`${node.name}: orphaned container of ${id}`);
      for (const id of expected) if (!running.has(id)) problems.push(`${node.name}: ${id} is running in the database, not here`);
      if (containers.length !== running.size) problems.push(`${node.name}: ${containers.length - running.size} containers not running`);
    }
    return problems;
  };
  const notSettled = async (): Promise<string[]> => {
    const { rows } = await sql<{ id: string }>`
      SELECT id FROM deployment_replicas WHERE status IN ('pending', 'starting', 'stopping')`.execute(testDb.database.db);
    return [...rows.map((r) => r.id), ...(await unconvergedDeployments(testDb.database.db)).map((d) => d.id)];
  };
  const doubleStarts = (): string[] =>
    nodes.nodes.flatMap((n) => [...n.runtime.startCounts].filter(([, count]) => count > 1).map(([id, count]) => `${n.name}: ${id} started ${count} times`));

  /**
   * Kills the API and puts a new one behind the address. With `awayMs` 0 the new one is started first,
   * so the outage is only the kill (however long a start takes on a loaded machine); otherwise nothing
   * answers for `awayMs`, and then for as long as the new one takes to start. Returns how long it was away.
   */
  const outage = async (awayMs: number): Promise<number> => {
    const next = awayMs === 0 ? await startServe('api', 'api', env) : null;
    const from = performance.now();
    proxy.cut();
    api.kill('SIGKILL');
    await api.exited();
    await sleep(awayMs);
    const { proc, url: nextUrl } = next ?? (await startServe('api', 'api', env));
    api = proc;
    proxy.retarget(Number(new URL(nextUrl).port));
    proxy.restore();
    return performance.now() - from;
  };

  it('starts nothing twice and leaves nothing orphaned after short and long API outages', async () => {
    const db = testDb.database.db;
    onTestFailed(() => console.log(describeProcesses([api, controller])));
    const token = await userTokenFor('chaos-conn-user');
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const a = await call(url, 'POST', '/api/deployment/deploy', {
        token,
        body: { name: `conn-${i}`, container_image: 'nginx:1.27', target_replicas: 3, resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 } },
      });
      expect(a.status, a.text).toBe(201);
      ids.push((a.json as { deployment_id: string }).deployment_id);
    }
    await waitUntilClean('initial convergence', notSettled, PATIENCE_MS);
    await waitUntilClean('containers match', containerMismatches, PATIENCE_MS);

    // A short outage, well inside the grace period: nothing moves.
    const { rows: beforeShort } = await sql<{ id: string }>`SELECT id FROM deployment_replicas WHERE status = 'running' ORDER BY id`.execute(db);
    const shortMs = await outage(0);
    await sleep(1_500);
    const { rows: afterShort } = await sql<{ id: string }>`SELECT id FROM deployment_replicas WHERE status = 'running' ORDER BY id`.execute(db);
    expect(afterShort).toEqual(beforeShort);
    await waitUntilClean('containers match after the short outage', containerMismatches, PATIENCE_MS);

    // Changes the agents have not acted on yet, then an outage longer than grace + eviction: the
    // controller marks the nodes not_ready, fails their replicas with NodeLost and creates
    // replacements that wait for a node; when the API is back, the agents drop the old containers and
    // start the replacements.
    for (const [i, target] of [[0, 1], [1, 5], [2, 2]] as const) {
      expect((await call(url, 'POST', `/api/deployment/scale/${ids[i]}`, { token, body: { target_replicas: target } })).status).toBe(200);
    }
    expect((await call(url, 'POST', `/api/deployment/${ids[3]}/stop`, { token })).status).toBe(200);
    const longMs = await outage(GRACE_MS + EVICTION_MS + 2_000);
    const { rows: lostRows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM deployment_replicas WHERE reason = 'NodeLost'`.execute(db);
    expect(lostRows[0]!.n).toBeGreaterThan(0);

    await waitUntilClean('convergence after the long outage', notSettled, PATIENCE_MS);
    await waitUntilClean('containers match after the long outage', containerMismatches, PATIENCE_MS);
    expect(doubleStarts()).toEqual([]);
    expect(await overcommittedNodes(db)).toEqual([]);
    const { rows: statuses } = await sql<{ status: string }>`SELECT status::text AS status FROM nodes`.execute(db);
    expect(statuses.every((s) => s.status === 'ready')).toBe(true);
    expect([api, controller].flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`))).toEqual([]);
    const containers = (await Promise.all(nodes.nodes.map((n) => n.runtime.list()))).flat().length;
    console.log(
      `[faults-agent-connection] API outages of ${Math.round(shortMs)} ms and ${Math.round(longMs)} ms (grace ${GRACE_MS}, eviction ${EVICTION_MS}): ${lostRows[0]!.n} replicas failed NodeLost ` +
        `and were replaced; ${containers} containers, each a running replica, none started twice`,
    );
  }, LONG_TEST_MS);
});
