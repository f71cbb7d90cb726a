import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaStatus } from '../../src/domain/types.js';
import { describeBackends } from '../support/databases.js';
import { adminToken, createTestApp, nodeToken, userToken, type TestApp } from '../support/tokens.js';

const UNKNOWN_ID = '3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab';
const ISO_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const capacity = { cpu_cores: 32, memory_mb: 65536, gpu_units: 1, storage_gb: 1000 };

describeBackends('API nodes and replicas', (t) => {
  let api: TestApp;
  let admin: string;
  let user: string;
  const db = () => t().database.db;

  beforeAll(async () => {
    api = createTestApp(t().database);
    admin = await adminToken();
    user = await userToken('alice');
  });

  const register = async (name: string, token?: string, extra: Record<string, unknown> = {}) => {
    const res = await api.call('POST', '/api/nodes', { token: token ?? (await nodeToken(name)), body: { name, ...capacity, ...extra } });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as Record<string, unknown> & { node_id: string };
  };
  /** A deployment of alice's with replicas in the given statuses on `nodeId`. */
  const deploymentWith = async (name: string, nodeId: string | null, statuses: readonly ReplicaStatus[]) => {
    const res = await api.call('POST', '/api/deployment/deploy', {
      token: user,
      body: { name, container_image: 'nginx:1.27', target_replicas: 1, resources: { cpu_cores: 1.5, memory_mb: 1024, storage_gb: 10 } },
    });
    const { deployment_id } = (await res.json()) as { deployment_id: string };
    const replicas = await db()
      .insertInto('deployment_replicas')
      .values(statuses.map((status) => ({ deployment_id, node_id: nodeId, status, revision: 1 })))
      .returning(['id', 'status'])
      .execute();
    return { deploymentId: deployment_id, replicas };
  };
  const replica = (id: string) => db().selectFrom('deployment_replicas').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  describe('register', () => {
    it('registers idempotently by name and updates capacity and labels', async () => {
      const first = await register('node-a', undefined, { labels: { zone: 'a' } });
      expect(Object.keys(first).sort()).toEqual(
        ['cpu_cores', 'created_at', 'evicted_replicas', 'gpu_units', 'labels', 'last_heartbeat_at', 'memory_mb', 'name', 'node_id', 'status', 'storage_gb', 'updated_at'].sort(),
      );
      expect(first).toMatchObject({ name: 'node-a', status: 'ready', ...capacity, labels: { zone: 'a' } });
      expect(first.last_heartbeat_at).toMatch(ISO_Z);
      const again = await register('node-a', undefined, { cpu_cores: 16 });
      expect(again.node_id).toBe(first.node_id);
      expect(again).toMatchObject({ cpu_cores: 16, labels: { zone: 'a' } });
      expect(await db().selectFrom('nodes').select('id').where('name', '=', 'node-a').execute()).toHaveLength(1);
    });

    it('lets a node register only itself, an admin any node, and nobody else', async () => {
      const other = await api.call('POST', '/api/nodes', { token: await nodeToken('node-b'), body: { name: 'node-c', ...capacity } });
      expect(other.status).toBe(403);
      expect((await api.call('POST', '/api/nodes', { token: user, body: { name: 'node-c', ...capacity } })).status).toBe(403);
      await register('node-c', admin);
    });

    it('brings a not_ready node back, keeps cordoned and draining', async () => {
      const n = await register('node-lifecycle');
      await db().updateTable('nodes').set({ status: 'not_ready' }).where('id', '=', n.node_id).execute();
      expect((await register('node-lifecycle')).status).toBe('ready');
      await db().updateTable('nodes').set({ status: 'draining' }).where('id', '=', n.node_id).execute();
      expect((await register('node-lifecycle')).status).toBe('draining');
    });

    it('validates the body', async () => {
      const token = await nodeToken('node-v');
      for (const body of [
        { name: 'node-v', ...capacity, cpu_cores: -1 },
        { name: 'node-v', ...capacity, memory_mb: 1.5 },
        { name: 'node v', ...capacity },
        { name: 'node-v', ...capacity, labels: { 'bad key!': 'x' } },
        { name: 'node-v', ...capacity, labels: { k: 7 } },
        { name: 'node-v', ...capacity, extra: 1 },
        { name: 'node-v' },
      ]) {
        expect((await api.call('POST', '/api/nodes', { token, body })).status, JSON.stringify(body)).toBe(422);
      }
    });
  });

  describe('heartbeat', () => {
    it('records the heartbeat and returns what to run and what to stop', async () => {
      const n = await register('node-hb');
      const other = await register('node-hb-other');
      const { deploymentId, replicas } = await deploymentWith('hb', n.node_id, ['pending', 'starting', 'running', 'stopping', 'stopped', 'failed']);
      await deploymentWith('hb-elsewhere', other.node_id, ['running']);
      await db().updateTable('nodes').set({ status: 'not_ready', last_heartbeat_at: new Date('2025-01-01T00:00:00Z') }).where('id', '=', n.node_id).execute();

      const res = await api.call('POST', `/api/nodes/${n.node_id}/heartbeat`, { token: await nodeToken('node-hb') });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { replicas: Record<string, unknown>[] };
      const byId = new Map(replicas.map((r) => [r.id, r.status]));
      expect(body.replicas).toHaveLength(4);
      for (const a of body.replicas) {
        expect(Object.keys(a).sort()).toEqual(['command', 'container_image', 'deployment_id', 'desired', 'env', 'replica_id', 'resources', 'revision', 'status']);
        expect(a).toMatchObject({
          deployment_id: deploymentId,
          revision: 1,
          container_image: 'nginx:1.27',
          resources: { cpu_cores: 1.5, memory_mb: 1024, gpu_units: 0, storage_gb: 10 },
          command: null,
          env: null,
        });
        expect(a.desired).toBe(byId.get(a.replica_id as string) === 'stopping' ? 'stop' : 'run');
      }
      const node = await db().selectFrom('nodes').selectAll().where('id', '=', n.node_id).executeTakeFirstOrThrow();
      expect(node.status).toBe('ready');
      expect(node.last_heartbeat_at!.getTime()).toBeGreaterThan(Date.now() - 60_000);

      // A replica of a newer revision gets its own template; the older ones keep theirs.
      await db()
        .insertInto('deployment_revisions')
        .values({
          deployment_id: deploymentId,
          revision: 2,
          template_revision: 2,
          container_image: 'nginx:1.28',
          cpu_cores: 0.5553,
          memory_mb: 512,
          gpu_units: 0,
          storage_gb: 1,
          command: ['nginx', '-g', 'daemon off;'],
          env: JSON.stringify({ MODE: 'canary' }),
        })
        .execute();
      const newer = await db()
        .insertInto('deployment_replicas')
        .values({ deployment_id: deploymentId, node_id: n.node_id, status: 'pending', revision: 2 })
        .returning('id')
        .executeTakeFirstOrThrow();
      const again = (await (await api.call('POST', `/api/nodes/${n.node_id}/heartbeat`, { token: await nodeToken('node-hb') })).json()) as {
        replicas: Record<string, unknown>[];
      };
      expect(again.replicas.find((a) => a.replica_id === newer.id)).toEqual({
        replica_id: newer.id,
        deployment_id: deploymentId,
        status: 'pending',
        revision: 2,
        container_image: 'nginx:1.28',
        resources: { cpu_cores: 0.5553, memory_mb: 512, gpu_units: 0, storage_gb: 1 },
        command: ['nginx', '-g', 'daemon off;'],
        env: { MODE: 'canary' },
        desired: 'run',
      });
      expect(again.replicas.filter((a) => a.revision === 1)).toHaveLength(4);
      expect(again.replicas.filter((a) => a.revision === 1).every((a) => a.container_image === 'nginx:1.27')).toBe(true);
      // Allocation counts each replica by its own revision: 0.5553 cores is 556 millicores, exactly.
      const overview = (await (await api.call('GET', '/api/nodes', { token: admin })).json()) as { items: { node_id: string; allocated: Record<string, number> }[] };
      expect(overview.items.find((o) => o.node_id === n.node_id)!.allocated).toEqual({ cpu_cores: 6.556, memory_mb: 4 * 1024 + 512, gpu_units: 0, storage_gb: 41 });
    });

    it("is 404 for another node's id, an unknown id and a malformed id; 403 without the node role", async () => {
      const mine = await register('node-own');
      const theirs = await register('node-theirs');
      const token = await nodeToken('node-own');
      for (const id of [theirs.node_id, UNKNOWN_ID, 'nope']) {
        const res = await api.call('POST', `/api/nodes/${id}/heartbeat`, { token });
        expect(res.status, id).toBe(404);
        expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'node not found' } });
      }
      expect((await api.call('POST', `/api/nodes/${mine.node_id}/heartbeat`, { token: admin })).status).toBe(403);
    });
  });

  describe('replica status reports', () => {
    it('applies every legal transition and sets the timestamps', async () => {
      const n = await register('node-rs');
      const token = await nodeToken('node-rs');
      const legal: [ReplicaStatus, ReplicaStatus][] = [
        ['pending', 'starting'],
        ['pending', 'running'],
        ['starting', 'running'],
        ['pending', 'failed'],
        ['starting', 'failed'],
        ['running', 'failed'],
        ['stopping', 'stopped'],
        ['stopping', 'failed'],
      ];
      const { deploymentId, replicas } = await deploymentWith('rs', n.node_id, legal.map(([from]) => from));
      for (const [i, [from, to]] of legal.entries()) {
        const id = replicas[i]!.id;
        const res = await api.call('POST', `/api/replicas/${id}/status`, { token, body: { status: to, container_id: `c-${i}`, reason: `${from}->${to}` } });
        expect(res.status, `${from} → ${to}`).toBe(200);
        const body = (await res.json()) as Record<string, unknown>;
        expect(body).toMatchObject({ replica_id: id, deployment_id: deploymentId, node_id: n.node_id, status: to, container_id: `c-${i}`, reason: `${from}->${to}` });
        const row = await replica(id);
        expect(row.status).toBe(to);
        if (to === 'running') expect(row.started_at).toBeInstanceOf(Date);
        if (to === 'stopped' || to === 'failed') expect(row.stopped_at).toBeInstanceOf(Date);
        else expect(row.stopped_at).toBeNull();
      }
      const d = await db().selectFrom('deployments').select('ever_running').where('id', '=', deploymentId).executeTakeFirstOrThrow();
      expect(d.ever_running).toBe(true);
    });

    it('keeps the container id a report leaves out, and the start time of a replica already running', async () => {
      const n = await register('node-keep');
      const token = await nodeToken('node-keep');
      const { replicas } = await deploymentWith('keep', n.node_id, ['pending']);
      const id = replicas[0]!.id;
      const report = (body: Record<string, unknown>) => api.call('POST', `/api/replicas/${id}/status`, { token, body });
      expect((await report({ status: 'starting', container_id: 'c-keep' })).status).toBe(200);
      expect((await report({ status: 'running' })).status).toBe(200);
      const running = await replica(id);
      expect(running).toMatchObject({ status: 'running', container_id: 'c-keep', reason: null, stopped_at: null });
      // A reason PostgreSQL could not store (a NUL in it) is the agent's error to read, not a 500.
      const nul = await report({ status: 'failed', reason: 'exec: \u0000' });
      expect(nul.status).toBe(422);
      expect(await nul.json()).toMatchObject({ error: { code: 'validation_failed', details: [{ path: 'reason', message: 'no NUL characters' }] } });
      expect((await replica(id)).status).toBe('running');
      expect((await report({ status: 'failed', reason: 'OOMKilled' })).status).toBe(200);
      expect(await replica(id)).toMatchObject({ status: 'failed', container_id: 'c-keep', reason: 'OOMKilled', started_at: running.started_at });
    });

    it('treats a repeated report as an idempotent 200 and refuses illegal transitions with 409 and the reason', async () => {
      await register('node-ill');
      const n = await db().selectFrom('nodes').select('id').where('name', '=', 'node-ill').executeTakeFirstOrThrow();
      const token = await nodeToken('node-ill');
      const illegal: [ReplicaStatus, ReplicaStatus][] = [
        ['running', 'starting'],
        ['running', 'pending'],
        ['running', 'stopped'],
        ['stopped', 'running'],
        ['failed', 'running'],
        ['pending', 'stopping'],
        ['stopping', 'running'],
        ['pending', 'stopped'],
      ];
      const { replicas } = await deploymentWith('ill', n.id, illegal.map(([from]) => from));
      for (const [i, [from, to]] of illegal.entries()) {
        const id = replicas[i]!.id;
        const before = await replica(id);
        const res = await api.call('POST', `/api/replicas/${id}/status`, { token, body: { status: to } });
        expect(res.status, `${from} → ${to}`).toBe(409);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('conflict');
        expect(body.error.message).toContain(from);
        expect(await replica(id)).toEqual(before);
      }
      const running = replicas[0]!.id;
      const before = await replica(running);
      const same = await api.call('POST', `/api/replicas/${running}/status`, { token, body: { status: 'running' } });
      expect(same.status).toBe(200);
      expect(await replica(running)).toEqual(before);
    });

    it("is 404 for a replica on another node, an unknown and a malformed id; 403 without the node role", async () => {
      const a = await register('node-ra');
      await register('node-rb');
      const { replicas } = await deploymentWith('other-node', a.node_id, ['pending']);
      const id = replicas[0]!.id;
      const tokenB = await nodeToken('node-rb');
      for (const target of [id, UNKNOWN_ID, 'bogus']) {
        const res = await api.call('POST', `/api/replicas/${target}/status`, { token: tokenB, body: { status: 'running' } });
        expect(res.status, target).toBe(404);
      }
      expect((await replica(id)).status).toBe('pending');
      expect((await api.call('POST', `/api/replicas/${id}/status`, { token: admin, body: { status: 'running' } })).status).toBe(403);
      const bad = await api.call('POST', `/api/replicas/${id}/status`, { token: await nodeToken('node-ra'), body: { status: 'exploded' } });
      expect(bad.status).toBe(422);
    });
  });

  describe('admin views', () => {
    it('lists every node with capacity, allocation and replica counts', async () => {
      const n = await register('node-list');
      await deploymentWith('alloc', n.node_id, ['pending', 'running', 'stopping', 'stopped', 'failed']);
      const res = await api.call('GET', '/api/nodes', { token: admin });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { items: Record<string, unknown>[] };
      const item = body.items.find((i) => i.name === 'node-list')!;
      expect(item).toMatchObject({
        node_id: n.node_id,
        status: 'ready',
        ...capacity,
        allocated: { cpu_cores: 4.5, memory_mb: 3072, gpu_units: 0, storage_gb: 30 },
        replica_counts: { pending: 1, starting: 0, running: 1, stopping: 1, stopped: 1, failed: 1 },
      });
      expect(body.items.map((i) => i.name)).toEqual([...body.items.map((i) => i.name as string)].sort());
      expect((await api.call('GET', '/api/nodes', { token: user })).status).toBe(403);
      expect((await api.call('GET', '/api/nodes', { token: await nodeToken('node-list') })).status).toBe(403);
    });

    it('cordons, drains and uncordons a node', async () => {
      const n = await register('node-patch');
      for (const status of ['cordoned', 'draining', 'ready']) {
        const res = await api.call('PATCH', `/api/nodes/${n.node_id}`, { token: admin, body: { status } });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { status: string }).status).toBe(status);
      }
      expect((await api.call('PATCH', `/api/nodes/${n.node_id}`, { token: admin, body: { status: 'not_ready' } })).status).toBe(422);
      expect((await api.call('PATCH', `/api/nodes/${UNKNOWN_ID}`, { token: admin, body: { status: 'ready' } })).status).toBe(404);
      expect((await api.call('PATCH', `/api/nodes/${n.node_id}`, { token: await nodeToken('node-patch'), body: { status: 'ready' } })).status).toBe(403);
    });
  });

  describe('delete', () => {
    const remove = (id: string, token = admin) => api.call('DELETE', `/api/nodes/${id}`, { token });
    const exists = async (id: string) => (await db().selectFrom('nodes').select('id').where('id', '=', id).execute()).length === 1;

    it('deletes a node whose replicas are all finished (204), keeping them without a node', async () => {
      const n = await register('node-del-a');
      const { replicas } = await deploymentWith('del-a', n.node_id, ['stopped', 'failed']);
      const res = await remove(n.node_id);
      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');
      expect(await exists(n.node_id)).toBe(false);
      for (const r of replicas) expect((await replica(r.id)).node_id).toBeNull();
      expect((await remove(n.node_id)).status).toBe(404);
    });

    it.each(['pending', 'starting', 'running', 'stopping'] as const)('refuses a node with a %s replica (409)', async (status) => {
      const n = await register(`node-del-${status}`);
      await deploymentWith(`del-${status}`, n.node_id, ['stopped', status]);
      const res = await remove(n.node_id);
      expect(res.status).toBe(409);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('conflict');
      expect(body.error.message).toMatch(/1 replica .*drain it first/);
      expect(await exists(n.node_id)).toBe(true);
    });

    it('answers 404 for an unknown or malformed id, and 403 to users and nodes', async () => {
      expect((await remove(UNKNOWN_ID)).status).toBe(404);
      expect((await remove('not-a-uuid')).status).toBe(404);
      const n = await register('node-del-auth');
      expect((await remove(n.node_id, user)).status).toBe(403);
      expect((await remove(n.node_id, await nodeToken('node-del-auth'))).status).toBe(403);
      expect(await exists(n.node_id)).toBe(true);
    });

    it('waits for a placement in flight on the node, then refuses', async (ctx) => {
      if (t().backend !== 'postgres') return ctx.skip('PostgreSQL only: PGlite has one connection, so a placement cannot be in flight beside the delete');
      const n = await register('node-del-race');
      const { deploymentId } = await deploymentWith('del-race', n.node_id, ['stopped']);
      const other = t().openAnother(1);
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      let inserted = (): void => undefined;
      const placed = new Promise<void>((resolve) => (inserted = resolve));
      const placement = other.db.transaction().execute(async (tx) => {
        await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${deploymentId}, ${n.node_id}, 'pending', 1)`.execute(tx);
        inserted();
        await held;
      });
      await placed;
      const deleting = remove(n.node_id);
      // The delete waits for the placement's lock on the node; let the placement commit.
      await new Promise((resolve) => setTimeout(resolve, 200));
      release();
      await placement;
      expect((await deleting).status).toBe(409);
      expect(await exists(n.node_id)).toBe(true);
      await other.close();
    });
  });
});
