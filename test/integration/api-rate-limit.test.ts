import { beforeAll, describe, expect, it } from 'vitest';
import { describeBackends } from '../support/databases.js';
import { createTestApp, nodeToken, userToken, type TestApp } from '../support/tokens.js';

const spec = (name: string) => ({
  name,
  container_image: 'nginx:1.27',
  target_replicas: 1,
  resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 },
});

describeBackends('API rate limit', (t) => {
  // The limiter's clock stands still unless a test moves it, so "quick" requests are quick however
  // slow the database or the machine is.
  let now = 0;
  const clock = () => now;
  let api: TestApp;
  let alice: string;
  let bob: string;
  let node: string;

  beforeAll(async () => {
    api = createTestApp(t().database, { STEADY_RATE_LIMIT: '2', STEADY_RATE_BURST: '3' }, { rateLimitNow: clock });
    alice = await userToken('limited-alice');
    bob = await userToken('limited-bob');
    node = await nodeToken('limited-node');
  });

  const list = (token: string) => api.call('GET', '/api/deployment/list', { token });

  it('answers the 4th quick request of one caller 429 with Retry-After and the error body; others are unaffected', async () => {
    for (let i = 0; i < 3; i++) expect((await list(alice)).status).toBe(200);
    const refused = await list(alice);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('Retry-After')).toBe('1');
    expect(await refused.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });

    expect((await list(bob)).status).toBe(200);
    const registered = await api.call('POST', '/api/nodes', {
      token: node,
      body: { name: 'limited-node', cpu_cores: 4, memory_mb: 8192, gpu_units: 0, storage_gb: 100 },
    });
    expect(registered.status).toBe(201);
  });

  it('refuses before the handler runs: a refused deploy creates nothing', async () => {
    const res = await api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('never-made') });
    expect(res.status).toBe(429);
    const row = await t().database.db.selectFrom('deployments').select('id').where('name', '=', 'never-made').executeTakeFirst();
    expect(row).toBeUndefined();
  });

  it('gives a caller back a request per 1/STEADY_RATE_LIMIT seconds', async () => {
    now += 500;
    expect((await list(alice)).status).toBe(200);
    expect((await list(alice)).status).toBe(429);
  });

  it('answers an unauthenticated flood 401 from authentication, not 429', async () => {
    for (let i = 0; i < 10; i++) expect((await api.call('GET', '/api/deployment/list')).status).toBe(401);
    for (let i = 0; i < 10; i++) expect((await list('garbage')).status).toBe(401);
  });

  it('leaves routes outside /api alone', async () => {
    for (let i = 0; i < 10; i++) expect((await api.call('GET', '/healthz')).status).toBe(200);
  });

  it('counts refusals by route in the HTTP metrics and in steady_http_rate_limited_total', async () => {
    const text = await (await api.call('GET', '/metrics')).text();
    expect(text).toContain('steady_http_requests_total{method="GET",route="/api/deployment/list",status="429"} 2');
    expect(text).toContain('steady_http_requests_total{method="POST",route="/api/deployment/deploy",status="429"} 1');
    expect(text).toContain('steady_http_rate_limited_total 3');
  });

  it('documents 429 on every /api route', async () => {
    const doc = (await (await api.call('GET', '/openapi.json')).json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const operation of Object.values(methods)) {
        if (path.startsWith('/api/')) expect(operation.responses['429'], path).toBeDefined();
      }
    }
  });

  it('gives node agents ten times a user\'s budget, and limits them too', async () => {
    const agent = await nodeToken('busy-node');
    const register = () =>
      api.call('POST', '/api/nodes', { token: agent, body: { name: 'busy-node', cpu_cores: 4, memory_mb: 8192, gpu_units: 0, storage_gb: 100 } });
    for (let i = 0; i < 30; i++) expect((await register()).status, `request ${i + 1}`).toBeLessThan(300);
    expect((await register()).status).toBe(429);
  });

  describe('with STEADY_RATE_LIMIT=0', () => {
    it('limits nothing', async () => {
      const off = createTestApp(t().database, { STEADY_RATE_LIMIT: '0', STEADY_RATE_BURST: '1' }, { rateLimitNow: clock });
      for (let i = 0; i < 20; i++) expect((await off.call('GET', '/api/deployment/list', { token: alice })).status).toBe(200);
    });
  });
});
