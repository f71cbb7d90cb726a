import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaStatus } from '../../src/domain/types.js';
import { describeBackends } from '../support/databases.js';
import { adminToken, createTestApp, nodeToken, userToken, type TestApp } from '../support/tokens.js';

const ISO_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UNKNOWN_ID = '3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab';

const spec = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  container_image: 'nginx:1.27',
  target_replicas: 3,
  resources: { cpu_cores: 2, memory_mb: 4096, gpu_units: 0, storage_gb: 50 },
  ...extra,
});

const SEED_FIELDS = ['created_at', 'deployment_id', 'health', 'name', 'recent_status_changes', 'replicas', 'resources', 'status', 'target_replicas', 'updated_at'];
/** DESIGN.md section 3's additive fields (revision, reason, rollout), the desired template and strategy, and the generations. */
const ADDED_FIELDS = ['revision', 'reason', 'rollout', 'container_image', 'command', 'env', 'strategy', 'generation', 'observed_generation'];

/** The seed's "After (Real)" object, field for field, plus the additive fields: exact key sets and value types. */
function expectSeedShape(body: Record<string, unknown>): void {
  expect(Object.keys(body).sort()).toEqual([...SEED_FIELDS, ...ADDED_FIELDS].sort());
  expect(Number.isInteger(body.revision)).toBe(true);
  expect(Number.isInteger(body.generation)).toBe(true);
  expect(Number.isInteger(body.observed_generation)).toBe(true);
  expect(body.observed_generation as number).toBeLessThanOrEqual(body.generation as number);
  expect(Object.keys(body.rollout as object).sort()).toEqual(['available_replicas', 'reason', 'revision', 'state', 'updated_replicas']);
  expect(['progressing', 'complete', 'paused', 'failed']).toContain((body.rollout as { state: string }).state);
  expect(body.deployment_id).toMatch(UUID);
  expect(typeof body.name).toBe('string');
  expect(typeof body.container_image).toBe('string');
  expect(['pending', 'scheduled', 'running', 'stopped', 'failed']).toContain(body.status);
  expect(['healthy', 'degraded', 'unhealthy']).toContain(body.health);
  expect(Number.isInteger(body.target_replicas)).toBe(true);
  expect(body.created_at).toMatch(ISO_Z);
  expect(body.updated_at).toMatch(ISO_Z);
  const resources = body.resources as Record<string, unknown>;
  expect(Object.keys(resources).sort()).toEqual(['cpu_cores', 'gpu_units', 'memory_mb', 'storage_gb']);
  for (const value of Object.values(resources)) expect(typeof value).toBe('number');
  for (const replica of body.replicas as Record<string, unknown>[]) {
    expect(Object.keys(replica).sort()).toEqual(['container_id', 'id', 'node_id', 'node_name', 'reason', 'revision', 'started_at', 'status', 'stopped_at']);
    expect(Number.isInteger(replica.revision)).toBe(true);
    expect(replica.id).toMatch(UUID);
    if (replica.node_id !== null) expect(replica.node_id).toMatch(UUID);
    // A node's name comes with its id, and only with it.
    expect(replica.node_name === null).toBe(replica.node_id === null);
    for (const key of ['started_at', 'stopped_at']) if (replica[key] !== null) expect(replica[key]).toMatch(ISO_Z);
    if (replica.container_id !== null) expect(typeof replica.container_id).toBe('string');
  }
  for (const change of body.recent_status_changes as Record<string, unknown>[]) {
    expect(Object.keys(change).sort()).toEqual(['changed_at', 'new_status', 'old_status', 'reason']);
    expect(change.changed_at).toMatch(ISO_Z);
    expect(typeof change.old_status).toBe('string');
    expect(typeof change.new_status).toBe('string');
  }
}

describeBackends('API deployments', (t, backend) => {
  let api: TestApp;
  let alice: string;
  let bob: string;
  const db = () => t().database.db;

  beforeAll(async () => {
    api = createTestApp(t().database);
    alice = await userToken('alice');
    bob = await userToken('bob');
  });

  const deploy = async (token: string, name: string, extra: Record<string, unknown> = {}) => {
    const res = await api.call('POST', '/api/deployment/deploy', { token, body: spec(name, extra) });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Record<string, unknown> & { deployment_id: string };
  };
  const status = async (token: string, id: string) => api.call('GET', `/api/deployment/status/${id}`, { token });
  const insertReplicas = async (deploymentId: string, statuses: readonly ReplicaStatus[], extra: Record<string, unknown> = {}) => {
    if (statuses.length === 0) return;
    await db()
      .insertInto('deployment_replicas')
      .values(statuses.map((s) => ({ deployment_id: deploymentId, status: s, revision: 1, ...extra })))
      .execute();
  };
  const historyOf = (id: string) =>
    db().selectFrom('deployment_status_history').selectAll().where('deployment_id', '=', id).orderBy('changed_at').execute();
  const rowOf = (id: string) => db().selectFrom('deployments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  describe('deploy', () => {
    it('creates the deployment, its resources and the first history row in one go; 201 with the status object', async () => {
      const res = await api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('web', { resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 } }) });
      expect(res.status).toBe(201);
      const body = (await res.json()) as Record<string, unknown> & { deployment_id: string };
      expectSeedShape(body);
      expect(res.headers.get('location')).toBe(`/api/deployment/status/${body.deployment_id}`);
      expect(body).toMatchObject({
        name: 'web',
        status: 'pending',
        health: 'unhealthy',
        target_replicas: 3,
        replicas: [],
        resources: { cpu_cores: 0.5, memory_mb: 512, gpu_units: 0, storage_gb: 1 },
        recent_status_changes: [{ old_status: 'none', new_status: 'pending', reason: 'Deployment created' }],
        revision: 1,
        reason: null,
        rollout: { state: 'progressing', revision: 1, updated_replicas: 0, available_replicas: 0, reason: null },
        container_image: 'nginx:1.27',
        command: null,
        env: null,
        strategy: { type: 'rolling', max_surge: '25%', max_unavailable: '25%', min_ready_seconds: 0, progress_deadline_seconds: 600, auto_rollback: true },
      });
      const user = await db().selectFrom('users').select('id').where('subject', '=', 'alice').executeTakeFirstOrThrow();
      const [history] = await historyOf(body.deployment_id);
      expect(history).toMatchObject({ old_status: 'none', new_status: 'pending', changed_by: user.id });
      const row = await rowOf(body.deployment_id);
      expect(row).toMatchObject({ user_id: user.id, container_image: 'nginx:1.27', generation: 1, deleted_at: null });
    });

    it('409s a second live deployment of the same name, and frees the name on delete', async () => {
      const first = await deploy(alice, 'dup');
      const again = await api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('dup') });
      expect(again.status).toBe(409);
      expect(await again.json()).toEqual({ error: { code: 'conflict', message: expect.stringContaining('dup') } });
      await deploy(bob, 'dup'); // another user's namespace
      expect((await api.call('DELETE', `/api/deployment/${first.deployment_id}`, { token: alice })).status).toBe(204);
      await deploy(alice, 'dup');
    });

    it('gives one 201 and one 409 to two concurrent creates of one name', async () => {
      const results = await Promise.all([0, 1].map(() => api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('race') })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
      const rows = await db().selectFrom('deployments').select('id').where('name', '=', 'race').execute();
      expect(rows).toHaveLength(1);
    });

    it('validates with the seed ranges: 422 with field paths, unknown fields rejected', async () => {
      const bad = [
        [{ name: '' }, 'name'],
        [{ name: 'x'.repeat(101) }, 'name'],
        [{ name: 'has space' }, 'name'],
        [{ container_image: '' }, 'container_image'],
        [{ container_image: 'a b' }, 'container_image'],
        [{ container_image: 'x'.repeat(501) }, 'container_image'],
        [{ target_replicas: 0 }, 'target_replicas'],
        [{ target_replicas: 101 }, 'target_replicas'],
        [{ target_replicas: 1.5 }, 'target_replicas'],
        [{ target_replicas: '3' }, 'target_replicas'],
        [{ resources: { cpu_cores: 0.4, memory_mb: 512, storage_gb: 1 } }, 'resources.cpu_cores'],
        [{ resources: { cpu_cores: 33, memory_mb: 512, storage_gb: 1 } }, 'resources.cpu_cores'],
        [{ resources: { cpu_cores: 1, memory_mb: 511, storage_gb: 1 } }, 'resources.memory_mb'],
        [{ resources: { cpu_cores: 1, memory_mb: 65537, storage_gb: 1 } }, 'resources.memory_mb'],
        [{ resources: { cpu_cores: 1, memory_mb: 512, gpu_units: 9, storage_gb: 1 } }, 'resources.gpu_units'],
        [{ resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 0 } }, 'resources.storage_gb'],
        [{ resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1001 } }, 'resources.storage_gb'],
        [{ resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1, disk: 3 } }, 'resources'],
        [{ extra: true }, ''],
      ] as const;
      for (const [override, path] of bad) {
        const res = await api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('valid-name', override) });
        expect(res.status, JSON.stringify(override)).toBe(422);
        const body = (await res.json()) as { error: { code: string; details: { path: string }[] } };
        expect(body.error.code).toBe('validation_failed');
        expect(body.error.details.map((d) => d.path)).toContain(path);
      }
      const missing = await api.call('POST', '/api/deployment/deploy', { token: alice, body: {} });
      expect(missing.status).toBe(422);
      expect(await db().selectFrom('deployments').select('id').where('name', '=', 'valid-name').execute()).toEqual([]);
    });

    it('answers 400 for malformed JSON, 415 for another media type, 413 over 64 KiB', async () => {
      const malformed = await api.call('POST', '/api/deployment/deploy', { token: alice, body: '{"name": ', headers: { 'Content-Type': 'application/json' } });
      expect(malformed.status).toBe(400);
      expect(await malformed.json()).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
      const text = await api.call('POST', '/api/deployment/deploy', { token: alice, body: JSON.stringify(spec('t')), headers: { 'Content-Type': 'text/plain' } });
      expect(text.status).toBe(415);
      expect(((await text.json()) as { error: { code: string } }).error.code).toBe('unsupported_media_type');
      const huge = await api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('big', { container_image: 'x'.repeat(70_000) }) });
      expect(huge.status).toBe(413);
      expect(((await huge.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    });

    it('refuses node-only tokens on deployment routes (403) but lets admins deploy', async () => {
      const res = await api.call('POST', '/api/deployment/deploy', { token: await nodeToken('node-x'), body: spec('from-node') });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('forbidden');
      await deploy(await adminToken('ops'), 'from-admin');
    });
  });

  describe('scale', () => {
    it('updates the target, bumps generation and writes the seed history row', async () => {
      const d = await deploy(alice, 'scaler');
      const res = await api.call('POST', `/api/deployment/scale/${d.deployment_id}`, { token: alice, body: { target_replicas: 5 } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expectSeedShape(body);
      expect(body.target_replicas).toBe(5);
      expect((body.recent_status_changes as unknown[])[0]).toMatchObject({ old_status: 'replicas:3', new_status: 'replicas:5', reason: 'User-initiated scaling' });
      const row = await rowOf(d.deployment_id);
      expect(row.generation).toBe(2);
      // No controller runs here: the answer says the scale is not acted on yet.
      expect(body).toMatchObject({ generation: 2, observed_generation: row.observed_generation });
      expect(d).toMatchObject({ generation: 1, observed_generation: 0 });
      expect(row.updated_at.getTime()).toBeGreaterThan(new Date(d.updated_at as string).getTime() - 1);
      const history = await historyOf(d.deployment_id);
      expect(history.at(-1)).toMatchObject({ old_status: 'replicas:3', new_status: 'replicas:5', changed_by: row.user_id });

      const same = await api.call('POST', `/api/deployment/scale/${d.deployment_id}`, { token: alice, body: { target_replicas: 5 } });
      expect(same.status).toBe(200);
      expect(await historyOf(d.deployment_id)).toHaveLength(history.length);
      expect((await rowOf(d.deployment_id)).generation).toBe(2);
    });

    it('serialises concurrent scales: each change is recorded once, from the target the one before it left', async () => {
      const d = await deploy(alice, 'scale-race');
      const targets = [4, 7, 4, 9, 2, 7, 5, 5, 8, 3];
      const answers = await Promise.all(
        targets.map((target_replicas) => api.call('POST', `/api/deployment/scale/${d.deployment_id}`, { token: alice, body: { target_replicas } })),
      );
      expect(answers.map((r) => r.status)).toEqual(targets.map(() => 200));
      const changes = (await historyOf(d.deployment_id)).filter((h) => h.reason === 'User-initiated scaling');
      // A chain from the deployed 3 to the final target: no change lost, none recorded from a stale target.
      let at = 'replicas:3';
      for (const change of changes) {
        expect(change.old_status).toBe(at);
        expect(change.new_status).not.toBe(at);
        at = change.new_status;
      }
      const row = await rowOf(d.deployment_id);
      expect(at).toBe(`replicas:${row.target_replicas}`);
      expect(row.generation).toBe(1 + changes.length);
    });

    it('answers 404 for a deployment of another user and leaves it as it was', async () => {
      const d = await deploy(alice, 'not-bobs');
      const res = await api.call('POST', `/api/deployment/scale/${d.deployment_id}`, { token: bob, body: { target_replicas: 9 } });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
      expect(await rowOf(d.deployment_id)).toMatchObject({ target_replicas: 3, generation: 1 });
    });

    it('validates the target like deploy does', async () => {
      const d = await deploy(alice, 'scale-bad');
      for (const body of [{ target_replicas: 0 }, { target_replicas: 101 }, { target_replicas: 2, x: 1 }, {}]) {
        const res = await api.call('POST', `/api/deployment/scale/${d.deployment_id}`, { token: alice, body });
        expect(res.status, JSON.stringify(body)).toBe(422);
      }
    });
  });

  describe('status', () => {
    it('follows the seed health table', async () => {
      const rows: [string, ReplicaStatus[], number, string][] = [
        ['all target replicas running, no failures', ['running', 'running', 'running'], 3, 'healthy'],
        ['some replicas failed', ['running', 'running', 'failed'], 2, 'degraded'],
        ['running < target replicas', ['running', 'pending', 'starting'], 3, 'degraded'],
        ['all replicas failed', ['failed', 'failed'], 2, 'unhealthy'],
        ['no running replicas', ['pending', 'starting'], 2, 'unhealthy'],
        ['no replicas exist', [], 1, 'unhealthy'],
      ];
      for (const [i, [row, statuses, target, health]] of rows.entries()) {
        const d = await deploy(alice, `health-${i}`, { target_replicas: target });
        await insertReplicas(d.deployment_id, statuses);
        const body = (await (await status(alice, d.deployment_id)).json()) as Record<string, unknown>;
        expect(body.health, row).toBe(health);
        expect((body.replicas as unknown[]).length).toBe(statuses.length);
        const listed = (await (await api.call('GET', '/api/deployment/list?limit=100', { token: alice })).json()) as { items: { deployment_id: string; health: string }[] };
        expect(listed.items.find((item) => item.deployment_id === d.deployment_id)?.health, `list: ${row}`).toBe(health);
      }
    });

    it('leaves stopping/stopped replicas and replaced failures out of health', async () => {
      const d = await deploy(alice, 'health-history', { target_replicas: 2 });
      await insertReplicas(d.deployment_id, ['running', 'running', 'stopping', 'stopped', 'stopped']);
      await insertReplicas(d.deployment_id, ['failed'], { replaced: true });
      const body = (await (await status(alice, d.deployment_id)).json()) as Record<string, unknown>;
      expect(body.health).toBe('healthy');
      await insertReplicas(d.deployment_id, ['failed']);
      expect(((await (await status(alice, d.deployment_id)).json()) as Record<string, unknown>).health).toBe('degraded');
    });

    it('bounds the replica list: every active replica and the 10 most recent terminal ones', async () => {
      const d = await deploy(alice, 'bounded', { target_replicas: 2 });
      const node = await db().insertInto('nodes').values({ name: `n-bounded-${backend}`, cpu_cores: 8, memory_mb: 8192, storage_gb: 100 }).returning('id').executeTakeFirstOrThrow();
      await insertReplicas(d.deployment_id, Array<ReplicaStatus>(15).fill('stopped'), { stopped_at: new Date('2025-01-01T00:00:00Z'), updated_at: new Date('2025-01-01T00:00:00Z') });
      await insertReplicas(d.deployment_id, ['stopped'], { stopped_at: new Date(), container_id: 'c-latest' });
      await insertReplicas(d.deployment_id, ['running', 'stopping'], { node_id: node.id, container_id: 'docker-1', started_at: new Date() });
      const res = await status(alice, d.deployment_id);
      const body = (await res.json()) as Record<string, unknown> & { replicas: Record<string, unknown>[] };
      expectSeedShape(body);
      expect(body.replicas).toHaveLength(12);
      expect(body.replicas.slice(0, 2).map((r) => r.status).sort()).toEqual(['running', 'stopping']);
      expect(body.replicas[0]).toMatchObject({ node_id: node.id, node_name: `n-bounded-${backend}`, container_id: 'docker-1', stopped_at: null });
      expect(body.container_image).toBe('nginx:1.27');
      expect(body.replicas[2]).toMatchObject({ status: 'stopped', container_id: 'c-latest' });
    });

    it('shows the last 10 status changes, newest first', async () => {
      const d = await deploy(alice, 'history');
      for (let target = 4; target <= 15; target++) {
        await db()
          .insertInto('deployment_status_history')
          .values({ deployment_id: d.deployment_id, old_status: `replicas:${target - 1}`, new_status: `replicas:${target}`, changed_at: new Date(Date.now() + target * 1000) })
          .execute();
      }
      const body = (await (await status(alice, d.deployment_id)).json()) as { recent_status_changes: { new_status: string; changed_at: string }[] };
      expect(body.recent_status_changes).toHaveLength(10);
      expect(body.recent_status_changes.map((c) => c.new_status)).toEqual(Array.from({ length: 10 }, (_, i) => `replicas:${15 - i}`));
    });

    it('is 404 for an unknown id and a malformed id, with the same body', async () => {
      const unknown = await status(alice, UNKNOWN_ID);
      const malformed = await status(alice, 'not-a-uuid');
      expect(unknown.status).toBe(404);
      expect(malformed.status).toBe(404);
      expect(await malformed.json()).toEqual(await unknown.json());
    });
  });

  describe('list', () => {
    it('walks every page without dupes or gaps, newest first, and never shows another user', async () => {
      const carol = await userToken('carol');
      const created: string[] = [];
      for (let i = 0; i < 7; i++) created.push((await deploy(carol, `page-${i}`)).deployment_id);
      await deploy(bob, 'bobs-only');
      // Same created_at for several rows: the id tie-break must still give a total order.
      await sql`UPDATE deployments SET created_at = '2025-06-01T00:00:00.000001Z' WHERE id IN (${sql.join(created.slice(2, 5))})`.execute(db());
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const path: string = `/api/deployment/list?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const res = await api.call('GET', path, { token: carol });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { items: Record<string, unknown>[]; next_cursor: string | null };
        for (const item of body.items) {
          expect(Object.keys(item).sort()).toEqual([
            'container_image', 'created_at', 'deployment_id', 'health', 'name', 'revision', 'rollout', 'running_replicas', 'status', 'target_replicas', 'total_replicas',
          ]);
          expect(item.created_at).toMatch(ISO_Z);
          // The rollout as the status object shows it.
          const one = (await (await api.call('GET', `/api/deployment/status/${item.deployment_id as string}`, { token: carol })).json()) as Record<string, unknown>;
          expect([item.revision, item.rollout]).toEqual([one.revision, one.rollout]);
          expect(item.container_image).toBe('nginx:1.27');
          seen.push(item.deployment_id as string);
        }
        cursor = body.next_cursor;
        pages++;
      } while (cursor !== null && pages < 10);
      expect(pages).toBe(3);
      expect(new Set(seen).size).toBe(seen.length);
      expect([...seen].sort()).toEqual([...created].sort());
      const rows = await db().selectFrom('deployments').select(['id', 'created_at']).where('id', 'in', created).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
      expect(seen).toEqual(rows.map((r) => r.id));
    });

    it('counts running and total replicas in the same page', async () => {
      const dave = await userToken('dave');
      const d = await deploy(dave, 'counted');
      await insertReplicas(d.deployment_id, ['running', 'running', 'pending', 'stopped', 'failed']);
      const body = (await (await api.call('GET', '/api/deployment/list', { token: dave })).json()) as { items: Record<string, unknown>[]; next_cursor: null };
      expect(body).toEqual({
        items: [expect.objectContaining({ deployment_id: d.deployment_id, running_replicas: 2, total_replicas: 4, health: 'degraded', status: 'pending', target_replicas: 3 })],
        next_cursor: null,
      });
    });

    it('with ?name= answers only the caller\'s live deployment of that name, with its counts', async () => {
      const erin = await userToken('erin');
      const frank = await userToken('frank');
      const gone = await deploy(erin, 'named');
      await api.call('DELETE', `/api/deployment/${gone.deployment_id}`, { token: erin });
      const live = await deploy(erin, 'named');
      await deploy(erin, 'named-too');
      await deploy(frank, 'named');
      await insertReplicas(live.deployment_id, ['running', 'pending']);
      const named = async (token: string, name: string) =>
        (await (await api.call('GET', `/api/deployment/list?name=${encodeURIComponent(name)}`, { token })).json()) as { items: Record<string, unknown>[]; next_cursor: null };
      expect(await named(erin, 'named')).toEqual({
        items: [expect.objectContaining({ deployment_id: live.deployment_id, name: 'named', running_replicas: 1, total_replicas: 2 })],
        next_cursor: null,
      });
      expect(await named(erin, 'nam')).toEqual({ items: [], next_cursor: null });
      // Outside the name alphabet (quotes, spaces): refused with the rule, as a name in a body is.
      expect((await api.call('GET', `/api/deployment/list?name=${encodeURIComponent("x' OR '1'='1")}`, { token: erin })).status).toBe(422);
      expect((await api.call('GET', `/api/deployment/list?name=`, { token: erin })).status).toBe(422);
      expect((await api.call('GET', `/api/deployment/list?name=${'a'.repeat(101)}`, { token: erin })).status).toBe(422);
    });

    it('422s a bad limit, cursor or name (a NUL included: PostgreSQL stores none)', async () => {
      for (const query of ['limit=0', 'limit=101', 'limit=abc', 'limit=2.5', 'cursor=%24%24%24', 'cursor=dGhpcyBpcyBub3Q', 'cursor=djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk6eA', 'unknown=1', 'name=%00', 'name=a.b', 'name=', 'cursor=%00']) {
        const res = await api.call('GET', `/api/deployment/list?${query}`, { token: alice });
        expect(res.status, query).toBe(422);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('validation_failed');
      }
    });
  });

  describe('delete, stop, start', () => {
    it('soft-deletes: 204, row kept with status deleted, generation+1, history; then 404 everywhere', async () => {
      const d = await deploy(alice, 'doomed');
      const res = await api.call('DELETE', `/api/deployment/${d.deployment_id}`, { token: alice });
      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');
      const row = await rowOf(d.deployment_id);
      expect(row).toMatchObject({ status: 'deleted', generation: 2 });
      expect(row.deleted_at).toBeInstanceOf(Date);
      expect((await historyOf(d.deployment_id)).at(-1)).toMatchObject({ old_status: 'pending', new_status: 'deleted', changed_by: row.user_id });
      expect((await status(alice, d.deployment_id)).status).toBe(404);
      expect((await api.call('DELETE', `/api/deployment/${d.deployment_id}`, { token: alice })).status).toBe(404);
      expect((await api.call('POST', `/api/deployment/${d.deployment_id}/start`, { token: alice })).status).toBe(404);
      const list = (await (await api.call('GET', '/api/deployment/list?limit=100', { token: alice })).json()) as { items: { deployment_id: string }[] };
      expect(list.items.map((i) => i.deployment_id)).not.toContain(d.deployment_id);
    });

    it('stops idempotently and starts again with CrashLoopBackOff state reset', async () => {
      const d = await deploy(alice, 'toggle');
      const stopped = await api.call('POST', `/api/deployment/${d.deployment_id}/stop`, { token: alice });
      expect(stopped.status).toBe(200);
      const body = (await stopped.json()) as Record<string, unknown>;
      expectSeedShape(body);
      expect(body.status).toBe('stopped');
      expect((body.recent_status_changes as unknown[])[0]).toMatchObject({ old_status: 'pending', new_status: 'stopped', reason: 'Stopped by user' });
      expect((await rowOf(d.deployment_id)).generation).toBe(2);
      const again = await api.call('POST', `/api/deployment/${d.deployment_id}/stop`, { token: alice });
      expect(again.status).toBe(200);
      expect((await rowOf(d.deployment_id)).generation).toBe(2);

      await db().updateTable('deployments').set({ status: 'failed', restart_count: 7, backoff_until: new Date(Date.now() + 60_000) }).where('id', '=', d.deployment_id).execute();
      const started = await api.call('POST', `/api/deployment/${d.deployment_id}/start`, { token: alice });
      expect(started.status).toBe(200);
      const startedBody = (await started.json()) as Record<string, unknown>;
      expect(startedBody.status).toBe('pending');
      expect((startedBody.recent_status_changes as unknown[])[0]).toMatchObject({ old_status: 'failed', new_status: 'pending', reason: 'Started by user' });
      expect(await rowOf(d.deployment_id)).toMatchObject({ status: 'pending', restart_count: 0, backoff_until: null, generation: 3 });
      const live = await api.call('POST', `/api/deployment/${d.deployment_id}/start`, { token: alice });
      expect(live.status).toBe(200);
      expect((await rowOf(d.deployment_id)).generation).toBe(3);
    });
  });

  describe('isolation', () => {
    it("gives user B a 404 on every route for A's deployment, and changes nothing", async () => {
      const d = await deploy(alice, 'private');
      const before = await rowOf(d.deployment_id);
      const historyBefore = await historyOf(d.deployment_id);
      const attempts: [string, string, unknown?][] = [
        ['GET', `/api/deployment/status/${d.deployment_id}`],
        ['POST', `/api/deployment/scale/${d.deployment_id}`, { target_replicas: 9 }],
        ['POST', `/api/deployment/${d.deployment_id}/stop`],
        ['POST', `/api/deployment/${d.deployment_id}/start`],
        ['PATCH', `/api/deployment/${d.deployment_id}`, { container_image: 'evil:1' }],
        ['GET', `/api/deployment/${d.deployment_id}/revisions`],
        ['POST', `/api/deployment/${d.deployment_id}/rollback`, { revision: 1 }],
        ['POST', `/api/deployment/${d.deployment_id}/pause`],
        ['POST', `/api/deployment/${d.deployment_id}/resume`],
        ['DELETE', `/api/deployment/${d.deployment_id}`],
      ];
      const unknown = await (await status(bob, UNKNOWN_ID)).json();
      for (const [method, path, body] of attempts) {
        const res = await api.call(method, path, { token: bob, body });
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(await res.json()).toEqual(unknown);
      }
      expect(await rowOf(d.deployment_id)).toEqual(before);
      expect(await historyOf(d.deployment_id)).toEqual(historyBefore);
      const list = (await (await api.call('GET', '/api/deployment/list?limit=100', { token: bob })).json()) as { items: { name: string }[] };
      expect(list.items.map((i) => i.name)).not.toContain('private');
    });

    it('validates PATCH, create and rollback bodies with a 422 and details, changing nothing', async () => {
      const d = await deploy(alice, 'validated', { command: ['run', '--fast'], env: { MODE: 'a' }, strategy: { max_surge: 2, type: 'recreate' } });
      expect(d).toMatchObject({ command: ['run', '--fast'], env: { MODE: 'a' }, strategy: { type: 'recreate', max_surge: 2, max_unavailable: '25%' } });
      const before = await rowOf(d.deployment_id);
      const cases: [unknown, string][] = [
        [{}, ''],
        [{ container_image: 'a b' }, 'container_image'],
        [{ command: Array(65).fill('x') }, 'command'],
        [{ command: ['x'.repeat(4097)] }, 'command.0'],
        [{ command: ['nul\u0000'] }, 'command.0'],
        [{ env: { '1BAD': 'x' } }, 'env.1BAD'],
        [{ env: { OK: 'é'.repeat(2049) } }, 'env.OK'],
        [{ env: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`V${i}`, 'x'])) }, 'env'],
        [{ strategy: { max_surge: '101%' } }, 'strategy.max_surge'],
        [{ strategy: { max_unavailable: -1 } }, 'strategy.max_unavailable'],
        [{ strategy: { min_ready_seconds: 30, progress_deadline_seconds: 30 } }, 'strategy.progress_deadline_seconds'],
        [{ strategy: { kind: 'rolling' } }, 'strategy'],
        [{ resources: { cpu_cores: 0.1 } }, 'resources.cpu_cores'],
        [{ replicas: 3 }, ''],
      ];
      for (const [body, path] of cases) {
        const res = await api.call('PATCH', `/api/deployment/${d.deployment_id}`, { token: alice, body });
        expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(422);
        const error = ((await res.json()) as { error: { code: string; details?: { path: string }[] } }).error;
        expect(error.code).toBe('validation_failed');
        expect(error.details?.map((x) => x.path), JSON.stringify(body).slice(0, 80)).toContain(path);
      }
      expect(await rowOf(d.deployment_id)).toEqual(before);
      const create = await api.call('POST', '/api/deployment/deploy', { token: alice, body: spec('bad-strategy', { strategy: { min_ready_seconds: 700, progress_deadline_seconds: 600 } }) });
      expect(create.status).toBe(422);
      const rollback = await api.call('POST', `/api/deployment/${d.deployment_id}/rollback`, { token: alice, body: { revision: 0 } });
      expect(rollback.status).toBe(422);
    });

    it('PATCH: a template change is a revision, scaling or strategy alone is not; partial resources keep the rest', async () => {
      const d = await deploy(alice, 'patched');
      const patch = async (body: unknown) => {
        const res = await api.call('PATCH', `/api/deployment/${d.deployment_id}`, { token: alice, body });
        expect(res.status).toBe(200);
        return (await res.json()) as { revision: number; target_replicas: number; resources: Record<string, number>; strategy: Record<string, unknown> };
      };
      expect((await patch({ target_replicas: 5 })).revision).toBe(1);
      expect((await patch({ strategy: { max_unavailable: 0 } })).strategy).toMatchObject({ max_unavailable: 0, max_surge: '25%' });
      expect((await patch({ container_image: 'nginx:1.27' })).revision).toBe(1);
      const changed = await patch({ resources: { memory_mb: 8192 } });
      expect(changed).toMatchObject({ revision: 2, target_replicas: 5, resources: { cpu_cores: 2, memory_mb: 8192, gpu_units: 0, storage_gb: 50 } });
      const history = await historyOf(d.deployment_id);
      expect(history.map((h) => [h.old_status, h.new_status, h.reason])).toEqual([
        ['none', 'pending', 'Deployment created'],
        ['replicas:3', 'replicas:5', 'User-initiated scaling'],
        ['revision:1', 'revision:2', 'Rollout started: memory 4096 MB → 8192 MB'],
      ]);
      const revisions = (await (await api.call('GET', `/api/deployment/${d.deployment_id}/revisions`, { token: alice })).json()) as { items: { revision: number }[] };
      expect(revisions.items.map((r) => r.revision)).toEqual([2, 1]);
      // Twelve more template changes: the last 10 revisions and the desired one are kept.
      for (let i = 0; i < 12; i++) await patch({ env: { N: String(i) } });
      const kept = (await (await api.call('GET', `/api/deployment/${d.deployment_id}/revisions`, { token: alice })).json()) as { items: { revision: number }[] };
      expect(kept.items.map((r) => r.revision)).toEqual([14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
    });

    it('takes an empty command or env as none: no revision, no rollout of a template that runs the same', async () => {
      const d = await deploy(alice, 'empty-template', { command: [], env: {} });
      expect(d).toMatchObject({ revision: 1, command: null, env: null });
      const patch = async (body: unknown) => {
        const res = await api.call('PATCH', `/api/deployment/${d.deployment_id}`, { token: alice, body });
        expect(res.status).toBe(200);
        return (await res.json()) as { revision: number; command: unknown; env: unknown };
      };
      expect(await patch({ command: [], env: {} })).toMatchObject({ revision: 1, command: null, env: null });
      expect(await patch({ command: null, env: null })).toMatchObject({ revision: 1 });
      expect(await patch({ command: ['sh', '-c', 'true'], env: { A: '1' } })).toMatchObject({ revision: 2, command: ['sh', '-c', 'true'], env: { A: '1' } });
      expect(await patch({ command: [], env: {} })).toMatchObject({ revision: 3, command: null, env: null });
      expect(await patch({ env: null })).toMatchObject({ revision: 3 });
      const history = await historyOf(d.deployment_id);
      expect(history.map((h) => h.reason)).toEqual(['Deployment created', 'Rollout started: command changed; env A changed', 'Rollout started: command changed; env A changed']);
    });

    it('answers list pages read together (one statement) exactly as when read alone', async () => {
      for (let i = 0; i < 5; i++) await deploy(alice, `page-a-${i}`);
      for (let i = 0; i < 3; i++) await deploy(bob, `page-b-${i}`);
      const get = async (token: string, query: string) => {
        const res = await api.call('GET', `/api/deployment/list${query}`, { token });
        expect(res.status).toBe(200);
        return (await res.json()) as { items: { deployment_id: string }[]; next_cursor: string | null };
      };
      const aliceFirst = await get(alice, '?limit=2');
      const requests: [string, string][] = [
        [alice, '?limit=2'],
        [bob, '?limit=2'],
        [alice, `?limit=2&cursor=${aliceFirst.next_cursor}`],
        [bob, '?limit=100'],
        [alice, '?limit=2'],
      ];
      const alone: unknown[] = [];
      for (const [token, query] of requests) alone.push(await get(token, query));
      const together = await Promise.all(requests.map(([token, query]) => get(token, query)));
      expect(together).toEqual(alone);
      const bobIds = new Set((together[3] as { items: { deployment_id: string }[] }).items.map((i) => i.deployment_id));
      for (const item of together[0]!.items) expect(bobIds.has(item.deployment_id)).toBe(false);
    });

    it('keeps users apart when their status reads share one batched statement', async () => {
      // Users of their own: alice's and bob's rate-limit buckets may be spent by the tests before this one.
      const carol = await userToken('batched-carol');
      const dave = await userToken('batched-dave');
      const mine = await deploy(carol, 'batched-a');
      const theirs = await deploy(dave, 'batched-b');
      // Issued in the same turn, these are answered by one statement: each caller must still see only their own.
      const pairs: [string, string][] = [
        [carol, mine.deployment_id],
        [dave, theirs.deployment_id],
        [carol, theirs.deployment_id],
        [dave, mine.deployment_id],
      ];
      const reads = await Promise.all(
        Array.from({ length: 12 }, (_, i) => {
          const [token, id] = pairs[i % 4]!;
          return status(token, id).then(async (res) => ({ code: res.status, body: (await res.json()) as { name?: string } }));
        }),
      );
      expect(reads.map((r) => r.code)).toEqual(Array.from({ length: 12 }, (_, i) => (i % 4 < 2 ? 200 : 404)));
      expect(reads.filter((r) => r.code === 200).map((r) => r.body.name)).toEqual(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? 'batched-a' : 'batched-b')));
    });
  });
});
