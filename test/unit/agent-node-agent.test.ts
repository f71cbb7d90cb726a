import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { jwtVerify } from 'jose';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import { NodeAgent, retryDelayMs } from '../../src/agent/node-agent.js';
import { SimulatedRuntime } from '../../src/agent/simulated-runtime.js';
import { startSimulatedNodes } from '../../src/agent/simulator.js';
import { parseAgentArgs, runAgent } from '../../src/cli/agent.js';
import { createTokenMinter } from '../../src/api/tokens.js';
import { loadConfig } from '../../src/config.js';
import type { Logger } from '../../src/logger.js';
import { PATIENCE_MS } from '../support/patience.js';

/**
 * An in-process fake of the agent side of the API (DESIGN.md section 3): a test double of the peer
 * over real HTTP, with the same status codes, error bodies and transition rules.
 */
type Status = 'pending' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
interface FakeReplica {
  id: string;
  nodeId: string;
  status: Status;
  containerId: string | null;
  reason: string | null;
}
interface Report {
  replicaId: string;
  status: string;
  containerId: string | null;
  reason: string | null;
  code: number;
}

interface Claims {
  sub?: string;
  roles?: string[];
}

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const LEGAL: Record<Status, readonly Status[]> = {
  pending: ['starting', 'running', 'failed'],
  starting: ['running', 'failed'],
  running: ['failed'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

class FakeApi {
  readonly nodes = new Map<string, { id: string; name: string; body: Record<string, unknown> }>();
  readonly replicas = new Map<string, FakeReplica>();
  readonly reports: Report[] = [];
  readonly requests: { path: string; at: number; code: number }[] = [];
  registrations = 0;
  /** Answer everything with 503, as when the database is away. */
  unavailable = false;
  readonly app = new Hono<{ Variables: { claims: Claims } }>();
  #server: ReturnType<typeof serve> | null = null;
  port = 0;

  constructor() {
    const error = (code: string, message: string) => ({ error: { code, message } });
    this.app.use('*', async (c, next) => {
      await next();
      this.requests.push({ path: new URL(c.req.url).pathname, at: Date.now(), code: c.res.status });
    });
    this.app.use('/api/*', async (c, next) => {
      if (this.unavailable) return c.json(error('unavailable', 'database unavailable'), 503);
      const token = c.req.header('authorization')?.replace(/^Bearer /, '') ?? '';
      try {
        const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), { algorithms: ['HS256'] });
        c.set('claims', payload as Claims);
      } catch {
        return c.json(error('unauthorized', 'bad token'), 401);
      }
      return next();
    });
    // As in the API: an admin may register any node, but only a node token speaks for its node.
    const isNode = (claims: Claims, nodeName: string): boolean => (claims.roles ?? []).includes('node') && claims.sub === nodeName;
    const may = (claims: Claims, nodeName: string): boolean => (claims.roles ?? []).includes('admin') || isNode(claims, nodeName);

    this.app.post('/api/nodes', async (c) => {
      const body = await c.req.json<Record<string, unknown>>();
      const name = String(body.name);
      if (!may(c.get('claims'), name)) return c.json(error('forbidden', 'not this node'), 403);
      this.registrations++;
      const node = this.nodes.get(name) ?? { id: randomUUID(), name, body };
      node.body = body;
      this.nodes.set(name, node);
      return c.json({ node_id: node.id, name, status: 'ready' }, 201);
    });
    this.app.post('/api/nodes/:id/heartbeat', (c) => {
      const node = [...this.nodes.values()].find((n) => n.id === c.req.param('id'));
      if (!node) return c.json(error('not_found', 'no such node'), 404);
      if (!isNode(c.get('claims'), node.name)) return c.json(error('not_found', 'no such node'), 404);
      const replicas = [...this.replicas.values()]
        .filter((r) => r.nodeId === node.id && ['pending', 'starting', 'running', 'stopping'].includes(r.status))
        .map((r) => ({
          replica_id: r.id,
          deployment_id: 'dep-1',
          container_image: 'nginx:1.27',
          resources: { cpu_cores: 0.5, memory_mb: 512, gpu_units: 0, storage_gb: 1 },
          desired: r.status === 'stopping' ? 'stop' : 'run',
        }));
      return c.json({ replicas });
    });
    this.app.post('/api/replicas/:id/status', async (c) => {
      const body = await c.req.json<{ status: Status; container_id?: string; reason?: string }>();
      const replica = this.replicas.get(c.req.param('id'));
      const record = (code: number) =>
        this.reports.push({ replicaId: c.req.param('id'), status: body.status, containerId: body.container_id ?? null, reason: body.reason ?? null, code });
      const caller = c.get('claims');
      if (!replica || this.nodes.get(caller.sub ?? '')?.id !== replica.nodeId) {
        record(404);
        return c.json(error('not_found', 'replica not on this node'), 404);
      }
      if (replica.status !== body.status && !LEGAL[replica.status].includes(body.status)) {
        record(409);
        return c.json(error('conflict', `${replica.status} → ${body.status} is not allowed`), 409);
      }
      record(200);
      replica.status = body.status;
      replica.containerId = body.container_id ?? replica.containerId;
      replica.reason = body.reason ?? replica.reason;
      return c.json({ replica_id: replica.id, status: replica.status });
    });
  }

  async listen(port = 0): Promise<string> {
    this.#server = serve({ fetch: this.app.fetch, port, hostname: '127.0.0.1' });
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as AddressInfo).port;
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  addReplica(nodeName: string, status: Status = 'pending'): string {
    const node = this.nodes.get(nodeName);
    if (!node) throw new Error(`node ${nodeName} is not registered`);
    const id = randomUUID();
    this.replicas.set(id, { id, nodeId: node.id, status, containerId: null, reason: null });
    return id;
  }

  status(id: string): Status | undefined {
    return this.replicas.get(id)?.status;
  }

  reportsFor(id: string): Report[] {
    return this.reports.filter((r) => r.replicaId === id);
  }
}

const mint = createTokenMinter(SECRET, { roles: ['node'], ttlSec: 3600 });

function captureLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function waitFor(condition: () => boolean, timeoutMs = PATIENCE_MS, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface AgentSetup {
  api: FakeApi;
  agent: NodeAgent;
  runtime: SimulatedRuntime;
  logs: () => Record<string, unknown>[];
}

async function setup(
  options: { name?: string; startDelayMs?: number; failRate?: number; heartbeatMs?: number; retryBaseMs?: number; runtime?: SimulatedRuntime; api?: FakeApi; apiUrl?: string; token?: string } = {},
): Promise<AgentSetup> {
  const api = options.api ?? new FakeApi();
  if (!options.api && !options.apiUrl) {
    await api.listen();
    cleanups.push(() => api.close());
  }
  const name = options.name ?? 'node-a';
  const runtime = options.runtime ?? new SimulatedRuntime({ startDelayMs: options.startDelayMs ?? 0, failRate: options.failRate ?? 0, idPrefix: name });
  const { logger, lines } = captureLogger();
  const agent = new NodeAgent({
    name,
    capacity: { cpuCores: 4, memoryMb: 8192, gpuUnits: 0, storageGb: 100 },
    client: new AgentClient({ apiUrl: options.apiUrl ?? api.url, token: options.token ?? (() => mint(name)), timeoutMs: 30_000 }),
    runtime,
    logger,
    heartbeatMs: options.heartbeatMs ?? 20,
    retryBaseMs: options.retryBaseMs ?? 20,
    retryMaxMs: Math.max(80, options.retryBaseMs ?? 0),
    random: () => 1,
  });
  cleanups.push(() => agent.stop());
  return { api, agent, runtime, logs: lines };
}

async function registered(s: AgentSetup): Promise<void> {
  s.agent.start();
  expect(await s.agent.registered).toBe(true);
}

async function passes(agent: NodeAgent, n: number): Promise<void> {
  const target = agent.passes + n;
  await waitFor(() => agent.passes >= target, PATIENCE_MS, `${n} heartbeat passes`);
}

describe('NodeAgent against a fake of the agent protocol', () => {
  it('registers with its capacity and labels, idempotently by name', async () => {
    const s = await setup();
    await registered(s);
    expect(s.api.nodes.get('node-a')?.body).toEqual({ name: 'node-a', cpu_cores: 4, memory_mb: 8192, gpu_units: 0, storage_gb: 100 });
    expect(s.agent.nodeId).toBe(s.api.nodes.get('node-a')?.id);
  });

  it('reports starting, starts the container, then reports running with its id', async () => {
    const s = await setup({ startDelayMs: 30 });
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'running', PATIENCE_MS, 'running');
    expect(s.api.reportsFor(id).map((r) => [r.status, r.code])).toEqual([
      ['starting', 200],
      ['running', 200],
    ]);
    expect(s.api.replicas.get(id)?.containerId).toBe(`node-a-${id}`);
    expect(s.runtime.runningReplicaIds()).toEqual([id]);
    // The API has the report before the agent has the answer: wait for the agent's line.
    await waitFor(() => s.logs().some((l) => l.msg === 'replica running' && l.replica_id === id), PATIENCE_MS, 'log line');
  });

  it('never starts a replica twice while heartbeats repeat during a slow start and after it', async () => {
    const s = await setup({ startDelayMs: 150, heartbeatMs: 10 });
    await registered(s);
    const ids = [s.api.addReplica('node-a'), s.api.addReplica('node-a')];
    await waitFor(() => ids.every((id) => s.api.status(id) === 'running'), PATIENCE_MS, 'running');
    await passes(s.agent, 10);
    for (const id of ids) {
      expect(s.runtime.startCounts.get(id)).toBe(1);
      expect(s.api.reportsFor(id).map((r) => r.status)).toEqual(['starting', 'running']);
    }
  });

  it('stops a replica the API marks stopping and reports stopped', async () => {
    const s = await setup();
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'running');
    s.api.replicas.get(id)!.status = 'stopping';
    await waitFor(() => s.api.status(id) === 'stopped', PATIENCE_MS, 'stopped');
    expect(s.runtime.runningReplicaIds()).toEqual([]);
    await passes(s.agent, 3);
    expect(s.api.reportsFor(id).filter((r) => r.status === 'stopped')).toHaveLength(1);
  });

  it('reports stopped for a stopping replica it has no container for', async () => {
    const s = await setup();
    await registered(s);
    const id = s.api.addReplica('node-a', 'stopping');
    await waitFor(() => s.api.status(id) === 'stopped');
    expect(s.runtime.startCounts.get(id)).toBeUndefined();
  });

  it('reports a failed start with its reason and does not start it again', async () => {
    const s = await setup({ failRate: 1 });
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'failed', PATIENCE_MS, 'failed');
    expect(s.api.replicas.get(id)?.reason).toMatch(/^SimulatedFailure: nginx:1.27 exited with code 1/);
    await passes(s.agent, 5);
    expect(s.runtime.startCounts.get(id)).toBe(1);
    expect(await s.runtime.list()).toEqual([]); // the failed container is cleaned up once the API stops listing it
  });

  it('reports a crash of a running container as failed, then removes the container', async () => {
    const s = await setup();
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'running');
    expect(s.runtime.crash(id)).toBe(true);
    await waitFor(() => s.api.status(id) === 'failed', PATIENCE_MS, 'failed');
    expect(s.api.replicas.get(id)?.reason).toBe('SimulatedCrash: container exited with code 137');
    await passes(s.agent, 3);
    expect(await s.runtime.list()).toEqual([]);
    expect(s.runtime.startCounts.get(id)).toBe(1);
  });

  it('runs a pass at once when the runtime reports a change, not at the next heartbeat', async () => {
    /** The simulator with the watch hook a Docker runtime drives from the engine's events. */
    class WatchedRuntime extends SimulatedRuntime {
      readonly listeners = new Set<() => void>();
      watch(onChange: () => void): () => void {
        this.listeners.add(onChange);
        return () => this.listeners.delete(onChange);
      }
      changed(): void {
        for (const listener of this.listeners) listener();
      }
    }
    const runtime = new WatchedRuntime({ idPrefix: 'node-a' });
    // An hour between heartbeats: only the runtime's news can make the passes this test waits for.
    const s = await setup({ runtime, heartbeatMs: 3_600_000 });
    await registered(s);
    const id = s.api.addReplica('node-a');
    runtime.changed();
    await waitFor(() => s.api.status(id) === 'running', 5_000, 'running');
    expect(runtime.crash(id)).toBe(true);
    runtime.changed();
    await waitFor(() => s.api.status(id) === 'failed', 5_000, 'failed');
    expect(s.api.replicas.get(id)?.reason).toBe('SimulatedCrash: container exited with code 137');
    await s.agent.stop();
    expect(runtime.listeners.size).toBe(0);
  });

  it('drops a 409 (the controller moved on) and removes the container it no longer needs', async () => {
    const s = await setup({ startDelayMs: 100 });
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'starting');
    s.api.replicas.get(id)!.status = 'failed'; // for example NodeLost, decided while the start was under way
    await waitFor(() => s.api.reportsFor(id).some((r) => r.status === 'running'), PATIENCE_MS, 'running report');
    await passes(s.agent, 3);
    expect(s.api.reportsFor(id).map((r) => [r.status, r.code])).toEqual([
      ['starting', 200],
      ['running', 409],
    ]);
    expect(await s.runtime.list()).toEqual([]);
    expect(s.logs().some((l) => l.msg === 'status report refused; dropped' && l.outcome === 'conflict')).toBe(true);
  });

  it('retries with growing, capped delays while the API answers 503, then recovers', async () => {
    const s = await setup();
    s.api.unavailable = true;
    s.agent.start();
    await waitFor(() => s.api.requests.length >= 5, PATIENCE_MS, 'five attempts');
    const gaps = s.api.requests.slice(0, 5).map((r, i, all) => (i === 0 ? 0 : r.at - all[i - 1]!.at)).slice(1);
    // random() = 1 → the full delay: 20, 40, 80, 80 (capped).
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(gaps[3]).toBeGreaterThanOrEqual(78);
    expect(s.logs().filter((l) => l.msg === 'API unavailable; retrying with backoff, containers keep running')).toHaveLength(1);
    s.api.unavailable = false;
    expect(await s.agent.registered).toBe(true);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'running');
    expect(s.logs().some((l) => l.msg === 'API reachable again')).toBe(true);
  });

  it('keeps its containers running while the API is away, and neither restarts nor re-reports them after', async () => {
    const s = await setup();
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'running');
    s.api.unavailable = true;
    const before = s.api.requests.length;
    await waitFor(() => s.api.requests.length >= before + 3, PATIENCE_MS, 'failed heartbeats');
    expect(s.runtime.runningReplicaIds()).toEqual([id]);
    s.api.unavailable = false;
    await passes(s.agent, 3);
    expect(s.runtime.startCounts.get(id)).toBe(1);
    expect(s.api.reportsFor(id).map((r) => r.status)).toEqual(['starting', 'running']);
  });

  it('waits out refused connections and registers once the API listens', async () => {
    const port = await freePort();
    const api = new FakeApi();
    const s = await setup({ api, apiUrl: `http://127.0.0.1:${port}` });
    s.agent.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(api.registrations).toBe(0);
    expect(s.logs().some((l) => l.msg === 'API unavailable; retrying with backoff, containers keep running' && String(l.err).includes('ECONNREFUSED'))).toBe(true);
    await api.listen(port);
    cleanups.push(() => api.close());
    expect(await s.agent.registered).toBe(true);
    expect(api.registrations).toBe(1);
  });

  it('registers again when the API no longer knows the node', async () => {
    const s = await setup();
    await registered(s);
    const firstId = s.agent.nodeId;
    s.api.nodes.clear();
    await waitFor(() => s.api.registrations === 2, PATIENCE_MS, 'second registration');
    await waitFor(() => s.agent.nodeId !== null && s.agent.nodeId !== firstId);
  });

  it('logs a refused token as an error and keeps retrying at the capped delay', async () => {
    const s = await setup({ token: 'not-a-valid-token' });
    s.agent.start();
    await waitFor(() => s.api.requests.length >= 3);
    expect(s.api.requests.every((r) => r.code === 401)).toBe(true);
    expect(s.logs().some((l) => l.level === 50 && l.msg === 'the API refused the node agent (check the token and its roles)')).toBe(true);
  });

  it('after a restart with a surviving runtime, re-reports what runs without starting it again', async () => {
    const runtime = new SimulatedRuntime({ idPrefix: 'node-a' });
    const first = await setup({ runtime });
    await registered(first);
    const id = first.api.addReplica('node-a');
    await waitFor(() => first.api.status(id) === 'running');
    await first.agent.stop();
    first.api.replicas.get(id)!.status = 'starting'; // the `running` report was lost, say
    const second = await setup({ runtime, api: first.api });
    await registered(second);
    await waitFor(() => first.api.status(id) === 'running', PATIENCE_MS, 're-report');
    expect(runtime.startCounts.get(id)).toBe(1);
    expect(first.api.reportsFor(id).at(-1)).toMatchObject({ status: 'running', code: 200 });
  });

  it('after a restart that lost its containers, starts a running replica again', async () => {
    const first = await setup();
    await registered(first);
    const id = first.api.addReplica('node-a');
    await waitFor(() => first.api.status(id) === 'running');
    const oldContainer = first.api.replicas.get(id)!.containerId;
    await first.agent.stop();
    const runtime = new SimulatedRuntime({ idPrefix: 'node-a' });
    const second = await setup({ runtime, api: first.api });
    await registered(second);
    await waitFor(() => runtime.runningReplicaIds().includes(id), PATIENCE_MS, 'restarted container');
    await waitFor(() => first.api.reportsFor(id).length === 4, PATIENCE_MS, 'reports after the restart');
    expect(first.api.status(id)).toBe('running');
    expect((await runtime.list())[0]!.containerId).toBe(oldContainer);
    expect(first.api.reportsFor(id).slice(2).map((r) => [r.status, r.code])).toEqual([
      ['starting', 409],
      ['running', 200],
    ]);
  });

  it('stop() waits for the start in flight to be reported, and sends nothing afterwards', async () => {
    const s = await setup({ startDelayMs: 200 });
    await registered(s);
    const id = s.api.addReplica('node-a');
    await waitFor(() => s.api.status(id) === 'starting');
    await s.agent.stop();
    expect(s.api.status(id)).toBe('running');
    const count = s.api.requests.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(s.api.requests.length).toBe(count);
  });

  it('stop() before the API was ever reachable resolves without waiting out the retry delay', async () => {
    const port = await freePort();
    // A retry an hour away: stop() resolving at all shows it does not wait for it.
    const s = await setup({ api: new FakeApi(), apiUrl: `http://127.0.0.1:${port}`, retryBaseMs: 3_600_000 });
    s.agent.start();
    await new Promise((r) => setTimeout(r, 50));
    await s.agent.stop();
    expect(await s.agent.registered).toBe(false);
  });
});

describe('retryDelayMs', () => {
  it('doubles from the base, caps, and jitters between half and all of the delay', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, 500, 10_000, () => 1))).toEqual([500, 1000, 2000, 4000, 8000, 10_000]);
    expect(retryDelayMs(3, 500, 10_000, () => 0)).toBe(1000);
    expect(retryDelayMs(1000, 500, 10_000, () => 0.5)).toBe(7500);
  });
});

describe('startSimulatedNodes', () => {
  it('registers N nodes with one node token each and the default capacity, and runs their replicas', async () => {
    const api = new FakeApi();
    await api.listen();
    cleanups.push(() => api.close());
    const sim = startSimulatedNodes({ apiUrl: api.url, tokenFor: mint, nodes: 3, heartbeatMs: 20, startDelayMs: 10, logger: pino({ level: 'silent' }) });
    cleanups.push(() => sim.stop());
    await sim.ready();
    expect([...api.nodes.keys()].sort()).toEqual(['sim-node-1', 'sim-node-2', 'sim-node-3']);
    expect(api.nodes.get('sim-node-2')?.body).toEqual({
      name: 'sim-node-2',
      cpu_cores: 4,
      memory_mb: 8192,
      gpu_units: 0,
      storage_gb: 100,
      labels: { simulated: 'true' },
    });
    const ids = ['sim-node-1', 'sim-node-3'].map((n) => api.addReplica(n));
    await waitFor(() => ids.every((id) => api.status(id) === 'running'));
    await sim.stop();
    expect(sim.nodes.map((n) => n.agent.passes).every((p) => p > 0)).toBe(true);
  });
});

describe('steady agent (runAgent in-process)', () => {
  it('mints a node token per node from JWT_SECRET, runs until stopped, exits 0', async () => {
    const api = new FakeApi();
    await api.listen();
    cleanups.push(() => api.close());
    const config = loadConfig({ JWT_SECRET: SECRET, STEADY_DATA_DIR: '/nonexistent' });
    const controller = new AbortController();
    const parsed = parseAgentArgs(['--simulate', '--api', api.url, '--nodes', '2', '--name-prefix', 'cli', '--start-delay', '10ms', '--heartbeat', '20ms', '--fail-rate', '0']);
    if (!parsed.ok) throw new Error(parsed.message);
    if (!('args' in parsed)) throw new Error('expected simulated nodes');
    const exit = runAgent(
      parsed.args,
      config,
      pino({ level: 'silent' }),
      { signal: controller.signal },
    );
    await waitFor(() => api.nodes.size === 2, PATIENCE_MS, 'two nodes');
    const id = api.addReplica('cli-2');
    await waitFor(() => api.status(id) === 'running');
    expect(api.requests.every((r) => r.code < 400)).toBe(true); // every node token matched its node
    controller.abort();
    expect(await exit).toBe(0);
  });
});
