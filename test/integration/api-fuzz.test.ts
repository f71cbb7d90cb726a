import fc from 'fast-check';
import { sql } from 'kysely';
import { beforeAll, expect, it } from 'vitest';
import { describeBackends } from '../support/databases.js';
import { adminToken, createTestApp, nodeToken, unsignedToken, userToken, type TestApp } from '../support/tokens.js';

/**
 * Hostile input at every route: random and malformed bodies, random ids and headers, every kind of
 * token. Whatever comes in: never a 5xx, always the error body on a 4xx, never a stack trace, and a
 * rejected request leaves the database exactly as it was.
 */

const ROUTES = [
  ['POST', '/api/deployment/deploy'],
  ['POST', '/api/deployment/scale/:id'],
  ['GET', '/api/deployment/status/:id'],
  ['GET', '/api/deployment/list'],
  ['DELETE', '/api/deployment/:id'],
  ['POST', '/api/deployment/:id/stop'],
  ['POST', '/api/deployment/:id/start'],
  ['PATCH', '/api/deployment/:id'],
  ['GET', '/api/deployment/:id/revisions'],
  ['POST', '/api/deployment/:id/rollback'],
  ['POST', '/api/deployment/:id/pause'],
  ['POST', '/api/deployment/:id/resume'],
  ['POST', '/api/nodes'],
  ['GET', '/api/nodes'],
  ['PATCH', '/api/nodes/:id'],
  ['POST', '/api/nodes/:id/heartbeat'],
  ['POST', '/api/replicas/:id/status'],
  ['GET', '/healthz'],
  ['GET', '/openapi.json'],
] as const;

interface Snapshot {
  [key: string]: unknown;
}

describeBackends('API under hostile input (property)', (t) => {
  let api: TestApp;
  const ids: string[] = [];
  const tokens: (string | null)[] = [];

  beforeAll(async () => {
    // Rate limit off: the property sends a few hundred requests in seconds from a handful of subjects,
    // and requests refused with 429 would never reach the handlers it is here to probe.
    api = createTestApp(t().database, { STEADY_RATE_LIMIT: '0' });
    const alice = await userToken('fuzz-alice');
    const bob = await userToken('fuzz-bob');
    const node = await nodeToken('fuzz-node');
    const admin = await adminToken('fuzz-admin');
    tokens.push(alice, bob, node, admin, null, 'garbage', unsignedToken({ sub: 'fuzz-alice', roles: ['admin', 'node'] }));
    // Every subject used below exists before the property runs: a user's first request creates its row.
    for (const token of [alice, bob, admin]) await api.call('GET', '/api/deployment/list', { token });
    const spec = { container_image: 'nginx:1.27', target_replicas: 2, resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 } };
    const d = (await (await api.call('POST', '/api/deployment/deploy', { token: alice, body: { name: 'fuzz-web', ...spec } })).json()) as { deployment_id: string };
    const n = (await (await api.call('POST', '/api/nodes', { token: node, body: { name: 'fuzz-node', cpu_cores: 32, memory_mb: 65536, gpu_units: 0, storage_gb: 1000 } })).json()) as { node_id: string };
    const replicas = await t()
      .database.db.insertInto('deployment_replicas')
      .values(['pending', 'running', 'stopping'].map((status) => ({ deployment_id: d.deployment_id, node_id: n.node_id, status: status as 'pending', revision: 1 })))
      .returning('id')
      .execute();
    ids.push(d.deployment_id, n.node_id, ...replicas.map((r) => r.id));
  });

  const rightToken = (template: string) =>
    template.startsWith('/api/deployment') ? tokens[0] : template === '/api/nodes' || template === '/api/nodes/:id' ? tokens[3] : tokens[2];

  const snapshot = async (): Promise<Snapshot> => {
    const { rows } = await sql<Snapshot>`
      SELECT (SELECT count(*)::int FROM users) AS users,
             (SELECT count(*)::int FROM deployments) AS deployments,
             (SELECT coalesce(sum(generation), 0)::int FROM deployments) AS generations,
             (SELECT max(updated_at)::text FROM deployments) AS deployments_updated,
             (SELECT count(*)::int FROM deployments WHERE deleted_at IS NOT NULL) AS deleted,
             (SELECT count(*)::int FROM deployment_resources) AS resources,
             (SELECT count(*)::int FROM deployment_status_history) AS history,
             (SELECT count(*)::int FROM deployment_replicas) AS replicas,
             (SELECT max(updated_at)::text FROM deployment_replicas) AS replicas_updated,
             (SELECT string_agg(status::text, ',' ORDER BY id) FROM deployment_replicas) AS replica_statuses,
             (SELECT count(*)::int FROM nodes) AS nodes,
             (SELECT max(updated_at)::text FROM nodes) AS nodes_updated,
             (SELECT string_agg(status::text, ',' ORDER BY id) FROM nodes) AS node_statuses
    `.execute(t().database.db);
    return rows[0]!;
  };

  const validishBody = fc.oneof(
    fc.record({ target_replicas: fc.oneof(fc.integer({ min: -5, max: 120 }), fc.double(), fc.string()) }, { requiredKeys: [] }),
    fc.record(
      {
        name: fc.oneof(fc.string({ maxLength: 120 }), fc.constant('fuzz-web'), fc.integer()),
        container_image: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('nginx')),
        target_replicas: fc.integer({ min: -1, max: 101 }),
        resources: fc.oneof(
          fc.record({ cpu_cores: fc.double({ min: -1, max: 40 }), memory_mb: fc.integer({ min: 0, max: 70000 }), storage_gb: fc.integer({ min: -1, max: 1001 }) }),
          fc.jsonValue(),
        ),
        status: fc.constantFrom('pending', 'starting', 'running', 'stopping', 'stopped', 'failed', 'ready', 'cordoned', 'draining', 'nope'),
        // Any code point, NUL and control characters included: PostgreSQL stores no NUL in text.
        reason: fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), fc.constant('Error\u0000')),
        container_id: fc.string({ unit: 'binary', maxLength: 30 }),
        command: fc.array(fc.string({ unit: 'binary', maxLength: 10 }), { maxLength: 3 }),
        env: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 10 }), { maxKeys: 2 }),
        labels: fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(fc.string({ maxLength: 70 }), fc.integer())),
        cpu_cores: fc.double(),
        extra: fc.anything(),
      },
      { requiredKeys: [] },
    ),
  );
  const rawBody = fc.oneof(
    { arbitrary: validishBody.map((b) => JSON.stringify(b)), weight: 6 },
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 200 }),
    fc.constantFrom('{', '{"name": ', 'null', '[]', '"x"', '1e999', '{"__proto__": {"admin": true}}', '\u0000', ''),
    fc.integer({ min: 1, max: 30_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
    fc.integer({ min: 1, max: 5_000 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
    fc.constant(JSON.stringify({ name: 'x'.repeat(70_000) })),
  );
  const id = fc.oneof(
    // Real ids (filled in by beforeAll, read at generation time), so requests reach the handlers.
    fc.integer({ min: 0, max: 4 }).map((i) => ids[i] ?? 'x'),
    fc.uuid(),
    fc.string({ maxLength: 40 }).map(encodeURIComponent),
    fc.constantFrom('%ZZ', '..', '%2e%2e', '00000000-0000-0000-0000-000000000000', "1' OR '1'='1", '%00'),
  );
  const headerName = fc.stringMatching(/^x-[a-z]{1,10}$/);
  const headerValue = fc.stringMatching(/^[ -~]{0,40}$/).map((s) => s.trim());
  const request = fc.record({
    route: fc.constantFrom(...ROUTES),
    id,
    body: fc.option(rawBody, { nil: undefined }),
    contentType: fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 4 },
      fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', null, 'garbage/<>'),
    ),
    // -1: the token the route is meant for, so that requests get past authentication and reach handlers.
    tokenIndex: fc.oneof({ arbitrary: fc.constant(-1), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 6 }), weight: 2 }),
    headers: fc.dictionary(headerName, headerValue, { maxKeys: 3 }),
    query: fc.oneof(
      fc.constantFrom('', '?limit=5', '?limit=-1', '?limit=abc', '?cursor=abc', '?limit=1&limit=2', '?x=%ZZ', '?name=%00', '?cursor=%00', '?name=fuzz-web'),
      fc.tuple(fc.constantFrom('name', 'cursor'), fc.string({ unit: 'binary', maxLength: 20 })).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
    ),
  });

  it('never answers 5xx, always the error body on 4xx, never changes the database when rejecting', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const method: string = r.route[0];
        const template: string = r.route[1];
        const path = template.replace(':id', r.id) + (template === '/api/deployment/list' ? r.query : '');
        const headers: Record<string, string> = { ...r.headers };
        const token = r.tokenIndex >= 0 ? tokens[r.tokenIndex] : rightToken(template);
        if (token) headers.Authorization = `Bearer ${token}`;
        if (r.contentType) headers['Content-Type'] = r.contentType;
        const before = await snapshot();
        const res = await api.app.request(path, { method, headers, ...(r.body !== undefined && method !== 'GET' ? { body: r.body } : {}) });
        const text = await res.text();
        expect(res.status, `${method} ${path} → ${text.slice(0, 200)}`).toBeLessThan(500);
        expect(text).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
        if (res.status >= 400) {
          const body = JSON.parse(text) as { error: { code: unknown; message: unknown; details?: unknown } };
          expect(Object.keys(body)).toEqual(['error']);
          expect(typeof body.error.code).toBe('string');
          expect(typeof body.error.message).toBe('string');
          expect(await snapshot()).toEqual(before);
        }
      }),
      { numRuns: 150 },
    );
  }, 120_000);
});
