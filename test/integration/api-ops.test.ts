import { PassThrough } from 'node:stream';
import { beforeAll, expect, it } from 'vitest';
import { createApp } from '../../src/api/app.js';
import { loadConfig } from '../../src/config.js';
import { systemClock } from '../../src/context.js';
import { openPostgres } from '../../src/db/postgres.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { describeBackends, silentLogger } from '../support/databases.js';
import { TEST_SECRET, adminToken, createTestApp, userToken, type TestApp } from '../support/tokens.js';

const deadDatabase = () => openPostgres({ url: 'postgres://postgres@127.0.0.1:1/steady', poolMax: 1, logger: silentLogger });

describeBackends('API operations', (t, backend) => {
  let api: TestApp;

  beforeAll(() => {
    api = createTestApp(t().database);
  });

  it('/healthz answers without the database', async () => {
    const res = await createTestApp(deadDatabase()).call('GET', '/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz is 200 when the database answers and migrations are current', async () => {
    const res = await api.call('GET', '/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready' });
  });

  it('/readyz is 503 with the reason when migrations are behind, and never hangs', async () => {
    const behind = createTestApp(t().database, {}, { readiness: { isCurrent: async () => false } });
    const res = await behind.call('GET', '/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', reason: expect.stringContaining('migrations') });

    const stuck = createTestApp(t().database, {}, { readiness: { isCurrent: () => new Promise(() => undefined) }, readinessTimeoutMs: 200 });
    // The check never answers: that /readyz answers at all is the timeout's doing.
    const slow = await stuck.call('GET', '/readyz');
    expect(slow.status).toBe(503);
    expect(((await slow.json()) as { reason: string }).reason).toMatch(/did not answer/);
  });

  // A pool pointed at a dead server exists only on PostgreSQL; PGlite has no server to lose.
  if (backend === 'postgres') it('/readyz is 503 when the database is unreachable or its pool closed; API routes are 503', async () => {
    const dead = createTestApp(deadDatabase());
    const res = await dead.call('GET', '/readyz');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { reason: string }).reason).toMatch(/unreachable/);
    const deploy = await dead.call('GET', '/api/deployment/list', { token: await userToken('offline') });
    expect(deploy.status).toBe(503);
    expect(deploy.headers.get('retry-after')).toBe('1');
    expect(await deploy.json()).toEqual({ error: { code: 'service_unavailable', message: expect.any(String) } });

    const closedDb = t().openAnother(1);
    await closedDb.close();
    const closed = createTestApp(closedDb);
    expect((await closed.call('GET', '/readyz')).status).toBe(503);
    expect((await closed.call('GET', '/api/nodes', { token: await adminToken() })).status).toBe(503);
  });

  it('/metrics exposes HTTP counts and latency by route pattern, never raw paths', async () => {
    const token = await userToken('metrics-user');
    await api.call('GET', '/api/deployment/status/3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab', { token });
    await api.call('GET', '/api/deployment/list', { token });
    await api.call('GET', '/no/such/route');
    const res = await api.call('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toContain('steady_http_requests_total{method="GET",route="/api/deployment/status/:id",status="404"} 1');
    expect(text).toContain('steady_http_requests_total{method="GET",route="/api/deployment/list",status="200"} 1');
    expect(text).toContain('route="unmatched",status="404"');
    expect(text).toMatch(/steady_http_request_duration_seconds_bucket\{[^}]*route="\/api\/deployment\/list"/);
    expect(text).not.toContain('3f1c2a9e');
  });

  it('/openapi.json is OpenAPI 3.1 with the bearer scheme and every route', async () => {
    const res = await api.call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, unknown> };
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    expect(routes.sort()).toEqual(
      [
        'POST /api/deployment/deploy',
        'POST /api/deployment/scale/{id}',
        'GET /api/deployment/status/{id}',
        'GET /api/deployment/list',
        'DELETE /api/deployment/{id}',
        'POST /api/deployment/{id}/stop',
        'POST /api/deployment/{id}/start',
        'PATCH /api/deployment/{id}',
        'GET /api/deployment/{id}/revisions',
        'POST /api/deployment/{id}/rollback',
        'POST /api/deployment/{id}/pause',
        'POST /api/deployment/{id}/resume',
        'POST /api/nodes',
        'GET /api/nodes',
        'PATCH /api/nodes/{id}',
        'DELETE /api/nodes/{id}',
        'POST /api/nodes/{id}/heartbeat',
        'POST /api/replicas/{id}/status',
        'GET /api/events',
        'GET /healthz',
        'GET /readyz',
        'GET /metrics',
      ].sort(),
    );
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const operation of Object.values(methods)) {
        if (path.startsWith('/api/')) {
          expect(operation.security).toEqual([{ bearerAuth: [] }]);
          expect(operation.responses['401']).toBeDefined();
        }
      }
    }
    const deploy = doc.paths['/api/deployment/deploy']!.post as unknown as { requestBody: { content: Record<string, { schema: unknown }> } };
    expect(JSON.stringify(deploy.requestBody)).toContain('CreateDeployment');
  });

  it('answers unknown routes with the error body', async () => {
    const res = await api.call('GET', '/api/nothing-here', { token: await userToken('lost') });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
  });

  it('logs one line per change or refusal with method, route, status, duration and user, reads at debug, never the token', async () => {
    const lines: Record<string, unknown>[] = [];
    const appAt = (level: 'info' | 'debug') => {
      const stream = new PassThrough();
      stream.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push({ ...(JSON.parse(line) as Record<string, unknown>), at: level });
      });
      return createApp({
        config: loadConfig({ JWT_SECRET: TEST_SECRET }),
        database: t().database,
        logger: createLogger({ level, format: 'json', destination: stream }),
        metrics: createMetrics({ defaultMetrics: false }),
        clock: systemClock,
      });
    };
    const token = await userToken('logged-user');
    const auth = { Authorization: `Bearer ${token}` };
    for (const level of ['info', 'debug'] as const) {
      const app = appAt(level);
      await app.request('/api/deployment/list?limit=5', { headers: auth });
      await app.request('/api/deployment/list', { headers: { Authorization: 'Bearer garbage' } });
      await app.request('/api/deployment/deploy', {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `logged-${level}`, container_image: 'nginx:1.27', target_replicas: 1, resources: { cpu_cores: 1, memory_mb: 512, gpu_units: 0, storage_gb: 1 } }),
      });
    }
    await new Promise((resolve) => setImmediate(resolve));
    const requests = (level: string) => lines.filter((l) => l.msg === 'request' && l.at === level);
    // At info: the change and the refusal, not the successful read.
    expect(requests('info')).toMatchObject([
      { method: 'GET', status: 401, user: null, level: 30 },
      { method: 'POST', route: '/api/deployment/deploy', status: 201, user: 'logged-user', level: 30 },
    ]);
    expect(requests('debug')).toHaveLength(3);
    expect(requests('debug')[0]).toMatchObject({ method: 'GET', route: '/api/deployment/list', status: 200, user: 'logged-user', duration_ms: expect.any(Number), level: 20 });
    const all = JSON.stringify(lines);
    expect(all).not.toContain(token);
    expect(all).not.toContain('garbage');
    expect(all).not.toContain('limit=5');
  });
});
