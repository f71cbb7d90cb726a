import { Hono } from 'hono';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { AgentClient, ApiRejectedError, ApiUnavailableError } from '../../src/agent/client.js';

/** A client whose fetch goes straight into a Hono app, no socket. */
function clientFor(app: Hono, options: { apiUrl?: string; token?: string | (() => string) } = {}): AgentClient {
  return new AgentClient({
    apiUrl: options.apiUrl ?? 'http://api.test',
    token: options.token ?? 'tok',
    timeoutMs: 200,
    fetch: (input, init) => Promise.resolve(app.request(input instanceof URL ? input.href : (input as string), init)),
  });
}

const capacity = { cpuCores: 4, memoryMb: 8192, gpuUnits: 1, storageGb: 100 };

describe('AgentClient', () => {
  it('registers with the wire names, bearer token and JSON, and maps the answer', async () => {
    const app = new Hono();
    let seen: { auth?: string; type?: string; body?: unknown } = {};
    app.post('/api/nodes', async (c) => {
      seen = { auth: c.req.header('authorization'), type: c.req.header('content-type'), body: await c.req.json() };
      return c.json({ node_id: 'n-1', name: 'a', status: 'ready', cpu_cores: 4 }, 201);
    });
    const node = await clientFor(app).registerNode({ name: 'a', capacity, labels: { zone: 'z1' } });
    expect(node).toEqual({ nodeId: 'n-1', name: 'a', status: 'ready' });
    expect(seen).toEqual({
      auth: 'Bearer tok',
      type: 'application/json',
      body: { name: 'a', cpu_cores: 4, memory_mb: 8192, gpu_units: 1, storage_gb: 100, labels: { zone: 'z1' } },
    });
  });

  it('maps heartbeat assignments (revision, command and env when sent), and answers null for an unknown node', async () => {
    const app = new Hono();
    app.post('/api/nodes/n-1/heartbeat', (c) =>
      c.json({
        replicas: [
          { replica_id: 'r1', deployment_id: 'd1', container_image: 'nginx', resources: { cpu_cores: 0.5, memory_mb: 512, gpu_units: null, storage_gb: 1 }, desired: 'run', revision: 3, command: ['sh', '-c', 'x'], env: { A: '1' } },
          { replica_id: 'r2', deployment_id: 'd1', container_image: 'nginx', resources: { cpu_cores: '1.5', memory_mb: 512, storage_gb: 1 }, desired: 'stop' },
        ],
      }),
    );
    app.post('/api/nodes/:id/heartbeat', (c) => c.json({ error: { code: 'not_found', message: 'no node' } }, 404));
    const client = clientFor(app);
    expect(await client.heartbeat('n-1')).toEqual([
      { replicaId: 'r1', deploymentId: 'd1', image: 'nginx', resources: { cpuCores: 0.5, memoryMb: 512, gpuUnits: 0, storageGb: 1 }, desired: 'run', revision: 3, command: ['sh', '-c', 'x'], env: { A: '1' } },
      { replicaId: 'r2', deploymentId: 'd1', image: 'nginx', resources: { cpuCores: 1.5, memoryMb: 512, gpuUnits: 0, storageGb: 1 }, desired: 'stop', revision: null, command: null, env: null },
    ]);
    expect(await client.heartbeat('n-2')).toBeNull();
  });

  it('returns 409 and 404 on a report as outcomes, and sends only the fields given', async () => {
    const app = new Hono();
    const bodies: unknown[] = [];
    app.post('/api/replicas/:id/status', async (c) => {
      bodies.push(await c.req.json());
      const id = c.req.param('id');
      if (id === 'late') return c.json({ error: { code: 'conflict', message: 'stopping → running' } }, 409);
      if (id === 'gone') return c.json({ error: { code: 'not_found', message: 'not on this node' } }, 404);
      return c.json({ ok: true });
    });
    const client = clientFor(app);
    expect(await client.reportStatus('ok', { status: 'running', containerId: 'c1' })).toEqual({ outcome: 'accepted' });
    expect(await client.reportStatus('late', { status: 'running' })).toEqual({ outcome: 'conflict', message: 'stopping → running' });
    expect(await client.reportStatus('gone', { status: 'failed', reason: 'Boom: x' })).toEqual({ outcome: 'not_found', message: 'not on this node' });
    expect(bodies).toEqual([{ status: 'running', container_id: 'c1' }, { status: 'running' }, { status: 'failed', reason: 'Boom: x' }]);
    await client.reportStatus('ok', { status: 'failed', reason: `Boom: ${'x'.repeat(600)}` });
    expect((bodies.at(-1) as { reason: string }).reason).toHaveLength(500);
  });

  it('throws ApiRejectedError (not retryable) for other 4xx, with the API error code', async () => {
    const app = new Hono();
    app.post('/api/nodes', (c) => c.json({ error: { code: 'forbidden', message: 'node token for b' } }, 403));
    const err = await clientFor(app).registerNode({ name: 'a', capacity }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiRejectedError);
    expect(err).toMatchObject({ status: 403, code: 'forbidden', retryable: false, message: 'POST /api/nodes: 403 node token for b' });
  });

  it('throws ApiUnavailableError (retryable) for 5xx, 429 and an answer it cannot read', async () => {
    const app = new Hono();
    app.post('/api/nodes', (c) => c.json({ error: { code: 'unavailable', message: 'database unavailable' } }, 503));
    app.post('/api/nodes/busy/heartbeat', (c) => c.text('slow down', 429));
    app.post('/api/nodes/odd/heartbeat', (c) => c.json({ replicas: [{ replica_id: 'r1' }] }));
    const client = clientFor(app);
    await expect(client.registerNode({ name: 'a', capacity })).rejects.toMatchObject({ name: 'ApiUnavailableError', status: 503, code: 'unavailable', retryable: true });
    await expect(client.heartbeat('busy')).rejects.toMatchObject({ status: 429, code: 'http_429', retryable: true });
    await expect(client.heartbeat('odd')).rejects.toMatchObject({ code: 'bad_answer', retryable: true });
  });

  it('times out a call that gets no answer', async () => {
    const client = new AgentClient({
      apiUrl: 'http://api.test',
      token: 'tok',
      timeoutMs: 50,
      fetch: (_input, init) =>
        new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error))),
    });
    const err = await client.heartbeat('n').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnavailableError);
    expect(err).toMatchObject({ code: 'timeout', message: 'POST /api/nodes/n/heartbeat: no answer within 50 ms' });
  });

  it('classifies a refused connection as retryable, with the socket error code', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new AgentClient({ apiUrl: `http://127.0.0.1:${port}`, token: 'tok' });
    await expect(client.heartbeat('n')).rejects.toMatchObject({ name: 'ApiUnavailableError', code: 'ECONNREFUSED', retryable: true });
  });

  it('asks a token function before every request, and keeps a base path', async () => {
    const app = new Hono();
    const auth: (string | undefined)[] = [];
    app.post('/steady/api/nodes/:id/heartbeat', (c) => {
      auth.push(c.req.header('authorization'));
      return c.json({ replicas: [] });
    });
    let n = 0;
    const client = clientFor(app, { apiUrl: 'http://api.test/steady', token: () => `t${++n}` });
    await client.heartbeat('a/b');
    await client.heartbeat('x');
    expect(auth).toEqual(['Bearer t1', 'Bearer t2']);
  });
});
