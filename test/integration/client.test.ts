import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/client/api-error.js';
import { SteadyClient } from '../../src/client/client.js';
import type { SteadyEvent } from '../../src/client/types.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { describeBackends } from '../support/databases.js';
import { freePort } from '../support/postgres-server.js';

const spec = (name: string) => ({ name, container_image: 'nginx:1.27', target_replicas: 2, resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 } });

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected the call to fail');
}

describeBackends('typed client against a real server', (db) => {
  let cluster: TestCluster;
  let client: SteadyClient;
  beforeAll(async () => {
    cluster = await startTestCluster(db());
    client = new SteadyClient({ baseUrl: `${cluster.url}/`, token: await cluster.token('client-user') });
  });
  afterAll(() => cluster?.stop());

  it('deploys, reads, scales, lists, finds by name or id, stops, starts and deletes', async () => {
    const created = await client.deploy(spec('web'));
    expect(created).toMatchObject({ name: 'web', target_replicas: 2, resources: { cpu_cores: 1, memory_mb: 512, gpu_units: 0, storage_gb: 1 } });
    const id = created.deployment_id;
    await expect.poll(async () => (await client.status(id)).status, { timeout: 30_000, interval: 100 }).toBe('running');
    expect((await client.scale(id, 3)).target_replicas).toBe(3);
    expect((await client.allDeployments()).map((d) => d.name)).toContain('web');
    expect((await client.findDeployment('web'))?.deployment_id).toBe(id);
    expect((await client.findDeployment(id))?.name).toBe('web');
    expect(await client.findDeployment('absent')).toBeNull();
    expect(await client.findDeployment('3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab')).toBeNull();
    expect((await client.stop(id)).status).toBe('stopped');
    expect((await client.start(id)).deployment_id).toBe(id);
    await client.deleteDeployment(id);
    expect(await client.findDeployment(id)).toBeNull();
  }, 60_000);

  it("answers refusals as ApiError with the API's code, message, details and status", async () => {
    const invalid = await rejection(client.deploy({ ...spec('bad'), target_replicas: 0 }));
    expect(invalid).toMatchObject({ status: 422, code: 'validation_failed' });
    expect(invalid.details.map((d) => d.path)).toContain('target_replicas');
    expect(invalid.retryable).toBe(false);
    await client.deploy(spec('taken'));
    expect(await rejection(client.deploy(spec('taken')))).toMatchObject({ status: 409 });
    expect(await rejection(client.status('3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab'))).toMatchObject({ status: 404, code: 'not_found' });
    const anonymous = new SteadyClient({ baseUrl: cluster.url, token: 'not-a-jwt' });
    expect(await rejection(anonymous.allDeployments())).toMatchObject({ status: 401 });
    // A user token may not list nodes: 403 from the API, not a thrown fetch detail.
    expect(await rejection(client.nodes())).toMatchObject({ status: 403 });
    const admin = new SteadyClient({ baseUrl: cluster.url, token: () => cluster.token('root', ['admin']) });
    const nodes = await admin.nodes();
    expect(nodes.length).toBe(2);
    expect((await admin.setNodeStatus(nodes[0]!.node_id, 'cordoned')).status).toBe('cordoned');
    expect((await admin.setNodeStatus(nodes[0]!.node_id, 'ready')).status).toBe('ready');
    expect((await admin.readiness()).ready).toBe(true);
  }, 60_000);

  it("waits out the API's 429 as its Retry-After says and sends again: a caller over its rate is slowed, not failed", async () => {
    const limited = await startTestCluster(db(), { nodes: 0, env: { STEADY_RATE_LIMIT: '2', STEADY_RATE_BURST: '2' } });
    try {
      const refused: number[] = [];
      const counting: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (res.status === 429) refused.push(res.status);
        return res;
      };
      const slowed = new SteadyClient({ baseUrl: limited.url, token: await limited.token('eager'), fetch: counting });
      const created = await slowed.deploy(spec('eager'));
      // Four reads at once from a caller allowed two a second (one left after the create): each one
      // answered, after waiting its turn, in at most three waits of the five allowed.
      const reads = await Promise.all(Array.from({ length: 4 }, () => slowed.status(created.deployment_id)));
      expect(reads.map((r) => r.name)).toEqual(Array(4).fill('eager'));
      expect(refused.length).toBeGreaterThan(0);
    } finally {
      await limited.stop();
    }
  }, 60_000);
});

describe('typed client without a server', () => {
  it('maps a refused connection to a network_error ApiError naming the server', async () => {
    const port = await freePort();
    const client = new SteadyClient({ baseUrl: `http://127.0.0.1:${port}`, token: 't' });
    const error = await rejection(client.allDeployments());
    expect(error).toMatchObject({ status: 0, code: 'network_error' });
    expect(error.message).toContain(`cannot reach steady at http://127.0.0.1:${port}`);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.retryable).toBe(true);
  });

  it('gives up on 429 after five waits, and at once when its signal aborts the wait', async () => {
    let requests = 0;
    const server = await listen((_req, res) => {
      requests++;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' }).end(JSON.stringify({ error: { code: 'rate_limited', message: 'too many requests' } }));
    });
    try {
      const client = new SteadyClient({ baseUrl: server.url, token: 't' });
      expect(await rejection(client.listDeployments())).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(requests).toBe(6);
      // A wait of a second (Retry-After absent), cut short by the caller.
      server.server.removeAllListeners('request');
      server.server.on('request', (_req, res) => res.writeHead(429).end());
      const stop = new AbortController();
      const pending = rejection(client.listDeployments({}, { signal: stop.signal }));
      setTimeout(() => stop.abort(), 50);
      expect(await pending).toMatchObject({ status: 429 });
    } finally {
      await server.close();
    }
  });

  it('maps a server that does not answer in time to a timeout, and a non-steady answer to bad_answer', async () => {
    const server = await listen((req, res) => {
      if (req.url?.startsWith('/api/deployment/list')) {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>');
      } // anything else: never answered
    });
    try {
      const slow = new SteadyClient({ baseUrl: server.url, token: 't', timeoutMs: 200 });
      expect(await rejection(slow.status('x'))).toMatchObject({ status: 0, code: 'timeout' });
      expect(await rejection(slow.listDeployments())).toMatchObject({ status: 200, code: 'bad_answer' });
    } finally {
      await server.close();
    }
  });
});

/** A small SSE server: each connection is handed to `script` with the Last-Event-ID it sent. */
async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('the event stream reader', () => {
  it('parses id, event, data and retry across split chunks and CRLF, skips comments and unknown types, and resumes with Last-Event-ID', async () => {
    const seen: { auth: string | undefined; lastEventId: string | undefined; query: string }[] = [];
    const server = await listen((req, res) => {
      seen.push({ auth: req.headers.authorization, lastEventId: req.headers['last-event-id'] as string | undefined, query: req.url ?? '' });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (seen.length === 1) {
        res.write('retry: 20\n: ping\n\n');
        res.write('id: 1\nevent: deployment\ndata: {"deployment_id":"d1","na');
        res.write('me":"web"}\n\n');
        res.write('id: 2\r\nevent: surprise\r\ndata: {}\r\n\r\n');
        res.write('id: 3\nevent: replica\ndata: {"replica_id":"r1",\ndata: "status":"running"}\n\n');
        res.end(); // the server goes away: the client must come back with Last-Event-ID 3
      } else {
        res.write('id: 4\nevent: history\ndata: {"reason":"scaled"}\n\n');
      }
    });
    const abort = new AbortController();
    const client = new SteadyClient({ baseUrl: server.url, token: 'tok' });
    const events: SteadyEvent[] = [];
    const reconnects: (string | null)[] = [];
    try {
      for await (const event of client.events({ deploymentId: 'd1', signal: abort.signal, onReconnect: (i) => reconnects.push(i.lastEventId) })) {
        events.push(event);
        if (events.length === 3) abort.abort();
      }
    } finally {
      await server.close();
    }
    expect(events).toEqual([
      { type: 'deployment', id: '1', data: { deployment_id: 'd1', name: 'web' } },
      { type: 'replica', id: '3', data: { replica_id: 'r1', status: 'running' } },
      { type: 'history', id: '4', data: { reason: 'scaled' } },
    ]);
    expect(seen[0]).toEqual({ auth: 'Bearer tok', lastEventId: undefined, query: '/api/events?deployment_id=d1' });
    expect(seen[1]?.lastEventId).toBe('3');
    expect(reconnects).toEqual(['3']);
  });

  it('waits out 503s with a growing delay, then ends with the ApiError of a refusal that retrying cannot fix', async () => {
    const times: number[] = [];
    const server = await listen((_req, res) => {
      times.push(Date.now());
      if (times.length <= 3) res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"unavailable","message":"database unavailable"}}');
      else res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"token expired"}}');
    });
    const client = new SteadyClient({ baseUrl: server.url, token: 'tok' });
    const delays: number[] = [];
    try {
      const error = await rejection((async () => {
        for await (const _ of client.events({ onReconnect: (i) => delays.push(i.delayMs) })) {
          // no events
        }
      })());
      expect(error).toMatchObject({ status: 401, code: 'unauthorized', message: 'token expired' });
    } finally {
      await server.close();
    }
    expect(delays).toEqual([1000, 2000, 4000]);
    expect(times[3]! - times[2]!).toBeGreaterThanOrEqual(3_900);
  }, 30_000);
});
