import net from 'node:net';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEventHub } from '../../src/api/app.js';
import { EventHub } from '../../src/api/events/event-hub.js';
import { blockEnd, deleteExpiredEvents } from '../../src/db/queries/events.js';
import { describeBackends } from '../support/databases.js';
import { SseReader } from '../support/sse.js';
import { adminToken, bearer, createTestApp, nodeToken, userToken, type TestApp } from '../support/tokens.js';

const UNKNOWN_ID = '3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab';
const resources = { cpu_cores: 1, memory_mb: 512, storage_gb: 1 };

describeBackends('GET /api/events', (t) => {
  let api: TestApp;
  let hub: EventHub;
  let alice: string;
  let bob: string;
  const readers: SseReader[] = [];
  const db = () => t().database.db;

  beforeAll(async () => {
    api = createTestApp(t().database, { STEADY_EVENT_STREAMS: '3' });
    hub = createEventHub(api.ctx);
    api = createTestApp(t().database, { STEADY_EVENT_STREAMS: '3' }, { events: hub });
    alice = await userToken('events-alice');
    bob = await userToken('events-bob');
  });
  // A failed test must not leave its streams holding the caller's slots for the next ones.
  afterEach(async () => {
    await Promise.all(readers.splice(0).map((r) => r.close()));
  });
  afterAll(() => hub.close());

  const stream = async (token: string, query = '', headers: Record<string, string> = {}) => {
    const res = await api.call('GET', `/api/events${query}`, { token, headers });
    expect(res.status, await (res.status === 200 ? Promise.resolve('') : res.clone().text())).toBe(200);
    const reader = new SseReader(res);
    readers.push(reader);
    return reader;
  };
  const deploy = async (token: string, name: string, target = 1) => {
    const res = await api.call('POST', '/api/deployment/deploy', { token, body: { name, container_image: 'nginx:1.27', target_replicas: target, resources } });
    expect(res.status, await res.clone().text()).toBe(201);
    return ((await res.json()) as { deployment_id: string }).deployment_id;
  };
  const scale = async (token: string, id: string, target: number) => {
    const res = await api.call('POST', `/api/deployment/scale/${id}`, { token, body: { target_replicas: target } });
    expect(res.status, await res.clone().text()).toBe(200);
  };
  const ids = (r: SseReader) => r.events.map((e) => BigInt(e.id!));

  it('streams the caller’s deployment and history events, and nobody else’s', async () => {
    const a = await stream(alice);
    const b = await stream(bob);
    expect(a.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await a.until((r) => r.retry !== null && r.lastEventId !== null, 'the opening block');
    expect(a.retry).toBeGreaterThan(0);
    expect(a.controlBlocks[0]!.map(([f]) => f)).toEqual(['retry', 'id']);

    const id = await deploy(alice, 'web');
    const other = await deploy(bob, 'db');
    await a.until((r) => r.data('history').length >= 1 && r.data('deployment').length >= 1, "alice's events");
    await b.until((r) => r.data('deployment').length >= 1, "bob's events");

    expect(a.data('deployment')[0]).toEqual({
      deployment_id: id,
      name: 'web',
      status: 'pending',
      health: 'unhealthy',
      target_replicas: 1,
      running_replicas: 0,
      revision: 1,
      rollout: { state: 'progressing', revision: 1, updated_replicas: 0, available_replicas: 0, reason: null },
    });
    expect(a.data('history')[0]).toMatchObject({ deployment_id: id, name: 'web', old_status: expect.any(String), new_status: 'pending' });
    expect(a.data('history')[0]!.changed_at).toMatch(/Z$/);
    expect(a.events.every((e) => JSON.parse(e.data).deployment_id === id)).toBe(true);
    expect(b.events.every((e) => JSON.parse(e.data).deployment_id === other)).toBe(true);
    // Ids only grow.
    expect(ids(a)).toEqual([...ids(a)].sort((x, y) => (x < y ? -1 : 1)));
    expect(new Set(ids(a)).size).toBe(ids(a).length);
    await Promise.all([a.close(), b.close()]);
  });

  it('sends replica events and the counts that decide health', async () => {
    const nodeId = (await db().insertInto('nodes').values({ name: `ev-node-${t().backend}`, cpu_cores: 8, memory_mb: 8192, storage_gb: 100 }).returning('id').executeTakeFirstOrThrow()).id;
    const id = await deploy(alice, 'counted', 2);
    // From the start of this deployment (a live-only stream may also begin with events just before it).
    const a = await stream(alice, `?deployment_id=${id}&since=0`);
    const [r1, r2] = await db()
      .insertInto('deployment_replicas')
      .values([
        { deployment_id: id, node_id: nodeId, status: 'pending', revision: 1 },
        { deployment_id: id, node_id: nodeId, status: 'pending', revision: 1 },
      ])
      .returning('id')
      .execute();
    await db().updateTable('deployment_replicas').set({ status: 'running', started_at: sql`now()` }).where('id', '=', r1!.id).execute();
    await db().updateTable('deployment_replicas').set({ status: 'failed', reason: 'Error: exit code 1' }).where('id', '=', r2!.id).execute();
    await a.until((r) => r.data('replica').length >= 4 && r.data('deployment').length >= 4, 'replica and deployment events');
    const replica = { deployment_id: id, name: 'counted', node_id: nodeId, node_name: `ev-node-${t().backend}`, revision: 1 };
    expect(a.data('replica')).toEqual([
      { ...replica, replica_id: r1!.id, status: 'pending', reason: null },
      { ...replica, replica_id: r2!.id, status: 'pending', reason: null },
      { ...replica, replica_id: r1!.id, status: 'running', reason: null },
      { ...replica, replica_id: r2!.id, status: 'failed', reason: 'Error: exit code 1' },
    ]);
    // Created; two replicas of the desired template appear (updated); one runs (available); one fails.
    type Ev = { running_replicas: number; health: string; rollout: { updated_replicas: number; available_replicas: number } };
    const counts = (list: Ev[]) => list.map((d) => [d.running_replicas, d.health, d.rollout.updated_replicas, d.rollout.available_replicas]);
    expect(counts(a.data<Ev>('deployment'))).toEqual([
      [0, 'unhealthy', 0, 0],
      [0, 'unhealthy', 2, 0],
      [1, 'degraded', 2, 1],
      [1, 'degraded', 1, 1],
    ]);
    // A change nobody watches (the replaced flag) that changes no count sends nothing; one that does, does.
    await db().updateTable('deployment_replicas').set({ replaced: true }).where('id', '=', r2!.id).execute();
    await scale(alice, id, 1);
    await a.until((r) => r.data('deployment').length >= 6, 'the replaced and scale events');
    expect(a.data('deployment').slice(4).map((d) => [d.target_replicas, d.running_replicas, d.health])).toEqual([
      [2, 1, 'degraded'],
      [1, 1, 'healthy'],
    ]);
    await a.close();
  });

  it('carries the revision and the rollout: a new image, pause, resume and replicas of the new template each say so', async () => {
    const id = await deploy(alice, 'rolled', 1);
    const a = await stream(alice, `?deployment_id=${id}&since=0`);
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await api.call(method, path, { token: alice, ...(body === undefined ? {} : { body }) });
      expect(res.status, await res.clone().text()).toBe(200);
    };
    await call('PATCH', `/api/deployment/${id}`, { container_image: 'nginx:1.28' });
    await call('POST', `/api/deployment/${id}/pause`);
    await call('POST', `/api/deployment/${id}/resume`);
    const [replica] = await db().insertInto('deployment_replicas').values({ deployment_id: id, node_id: null, status: 'pending', revision: 2 }).returning('id').execute();
    await db().updateTable('deployment_replicas').set({ status: 'running', started_at: new Date(Date.now() - 1000) }).where('id', '=', replica!.id).execute();
    type Ev = { revision: number; rollout: { state: string; revision: number; updated_replicas: number; available_replicas: number; reason: string | null } };
    await a.until((r) => r.data<Ev>('deployment').some((d) => d.rollout.available_replicas === 1), 'the new replica available');
    const seen = a.data<Ev>('deployment').map((d) => [d.revision, d.rollout.state, d.rollout.revision, d.rollout.updated_replicas, d.rollout.available_replicas]);
    expect(seen).toEqual([
      [1, 'progressing', 1, 0, 0],
      [2, 'progressing', 2, 0, 0],
      [2, 'paused', 2, 0, 0],
      [2, 'progressing', 2, 0, 0],
      [2, 'progressing', 2, 1, 0],
      [2, 'progressing', 2, 1, 1],
    ]);
    expect(a.data('replica').map((r) => [r.status, r.revision])).toEqual([
      ['pending', 2],
      ['running', 2],
    ]);
    // The rollout's own state and reason, as the controller writes them.
    await db().updateTable('deployments').set({ rollout_state: 'failed', rollout_reason: 'ProgressDeadlineExceeded' }).where('id', '=', id).execute();
    await a.until((r) => r.data<Ev>('deployment').some((d) => d.rollout.state === 'failed'), 'the failed rollout');
    expect(a.data<Ev>('deployment').at(-1)!.rollout).toEqual({ state: 'failed', revision: 2, updated_replicas: 1, available_replicas: 1, reason: 'ProgressDeadlineExceeded' });
    await a.close();
  });

  it('sends node events to admins only: registered, status changes and deletion, not heartbeats', async () => {
    const admin = await stream(await adminToken('events-admin'));
    const user = await stream(alice);
    await Promise.all([admin, user].map((r) => r.until((x) => x.lastEventId !== null, 'the opening block')));
    const name = `ev-watched-${t().backend}`;
    const nodeId = (await db().insertInto('nodes').values({ name, cpu_cores: 2, memory_mb: 2048, storage_gb: 10 }).returning('id').executeTakeFirstOrThrow()).id;
    await db().updateTable('nodes').set({ last_heartbeat_at: new Date() }).where('id', '=', nodeId).execute();
    await db().updateTable('nodes').set({ status: 'cordoned' }).where('id', '=', nodeId).execute();
    await db().deleteFrom('nodes').where('id', '=', nodeId).execute();
    // A deployment event after them: once the user sees it, the node events (older) would have come too.
    const after = await deploy(alice, 'after-nodes');
    await admin.until((r) => r.data('node').some((n) => n.status === 'deleted'), 'the node events');
    expect(admin.data('node').filter((n) => n.node_id === nodeId)).toEqual([
      { node_id: nodeId, name, status: 'ready' },
      { node_id: nodeId, name, status: 'cordoned' },
      { node_id: nodeId, name, status: 'deleted' },
    ]);
    await user.until((r) => r.data('deployment').some((d) => d.deployment_id === after), "the user's own event");
    expect(user.events.filter((e) => e.event === 'node')).toEqual([]);
    // Nor in a replay, nor on a stream of one deployment.
    const replay = await stream(alice, '?since=0');
    const one = await stream(await adminToken('events-admin-2'), `?since=0`);
    await one.until((r) => r.data('node').length >= 3, "the admin's replay");
    await replay.until((r) => r.data('deployment').some((d) => d.deployment_id === after), "the user's replay");
    expect(replay.events.filter((e) => e.event === 'node')).toEqual([]);
    await Promise.all([admin, user, replay, one].map((r) => r.close()));
  });

  it('resumes after Last-Event-ID or ?since= with every later event once, in order', async () => {
    const a = await stream(alice);
    await a.until((r) => r.lastEventId !== null, 'the opening block');
    const id = await deploy(alice, 'resume');
    for (const target of [2, 3, 4]) await scale(alice, id, target);
    // Both rows of the last scale: a horizon may fall between two events of one transaction.
    await a.until(
      (r) => r.data('deployment').some((d) => d.target_replicas === 4) && r.data('history').some((h) => h.new_status === 'replicas:4'),
      'the last scale',
    );
    await a.close();
    const all = a.events;
    expect(all.length).toBeGreaterThanOrEqual(8);
    const cut = all[2]!.id!;

    const byHeader = await stream(alice, '', { 'Last-Event-ID': cut });
    const bySince = await stream(alice, `?since=${cut}`);
    const rest = all.slice(3).map((e) => [e.id, e.event, e.data]);
    for (const r of [byHeader, bySince]) {
      await r.until((x) => x.events.length >= rest.length, 'the replay');
      expect(r.events.map((e) => [e.id, e.event, e.data])).toEqual(rest);
      expect(r.controlBlocks[0]!.map(([f]) => f)).toEqual(['retry']);
    }
    // Then live.
    await scale(alice, id, 5);
    for (const r of [byHeader, bySince]) {
      await r.until((x) => x.data('deployment').some((d) => d.target_replicas === 5), 'a live event after the replay');
      expect(new Set(r.events.map((e) => e.id)).size).toBe(r.events.length);
      await r.close();
    }
    // The header wins over ?since=.
    const both = await stream(alice, `?since=0`, { 'Last-Event-ID': all[all.length - 2]!.id! });
    await both.until((r) => r.events.length >= 1, 'the replay');
    expect(both.events[0]!.id).toBe(all[all.length - 1]!.id);
    await both.close();
  });

  it("filters by deployment_id, and answers 404 for another user's, an unknown or a malformed id", async () => {
    const mine = await deploy(alice, 'filtered');
    const theirs = await deploy(bob, 'filtered');
    const a = await stream(alice, `?deployment_id=${mine}&since=0`);
    await a.until((r) => r.events.length >= 2, 'the replay of one deployment');
    expect(a.events.every((e) => JSON.parse(e.data).deployment_id === mine)).toBe(true);
    await a.close();
    for (const bad of [theirs, UNKNOWN_ID, 'not-a-uuid', '']) {
      const res = await api.call('GET', `/api/events?deployment_id=${bad}`, { token: alice });
      expect(res.status, bad).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
    }
  });

  it('refuses node tokens (403), missing tokens (401) and bad ids (422)', async () => {
    expect((await api.call('GET', '/api/events', { token: await nodeToken('node-x') })).status).toBe(403);
    expect((await api.call('GET', '/api/events')).status).toBe(401);
    for (const since of ['-1', 'abc', '1.5', '99999999999999999999', '9223372036854775808']) {
      const res = await api.call('GET', `/api/events?since=${since}`, { token: alice });
      expect(res.status, since).toBe(422);
    }
    expect((await api.call('GET', '/api/events', { token: alice, headers: { 'Last-Event-ID': 'x' } })).status).toBe(422);
    expect((await api.call('GET', '/api/events?foo=1', { token: alice })).status).toBe(422);
  });

  it('caps open streams per caller with 429, and frees a slot when a stream closes', async () => {
    const open = [await stream(alice), await stream(alice), await stream(alice)];
    const refused = await api.call('GET', '/api/events', { token: alice });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('too_many_streams');
    // Another caller is not affected.
    const other = await stream(bob);
    await open[0]!.close();
    const again = await stream(alice);
    await Promise.all([...open.slice(1), other, again].map((r) => r.close()));
  });

  it('says reset, then goes on live, for an id retention has deleted or that was never issued', async () => {
    const id = await deploy(alice, 'retained');
    const first = await stream(alice, `?deployment_id=${id}&since=0`);
    await first.until((r) => r.events.length >= 2, 'the replay');
    const oldest = first.events[0]!.id!;
    await first.close();
    // Everything written so far is older than a zero retention window.
    for (let n = 500; n === 500; ) n = await deleteExpiredEvents(db(), 0, 500);
    for (const query of [`?since=${oldest}`, `?since=${BigInt(oldest) - 1n}`, '?since=0', '?since=9223372036854775807']) {
      const r = await stream(alice, query);
      await r.until((x) => x.events.length >= 1, `reset for ${query}`);
      expect(r.events[0]!.event).toBe('reset');
      expect(JSON.parse(r.events[0]!.data)).toEqual({ reason: expect.any(String) });
      await scale(alice, id, 2 + readers.length);
      await r.until((x) => x.data('deployment').length >= 1, 'live events after the reset');
      expect(BigInt(r.events[1]!.id!)).toBeGreaterThan(BigInt(r.events[0]!.id!));
      await r.close();
    }
    // Nothing deleted after the mark (the last event of the last row deleted): resuming there is not a reset.
    const { rows } = await sql<{ through: string }>`SELECT deleted_through::text AS through FROM steady_events_retention`.execute(db());
    const fine = await stream(alice, `?since=${blockEnd(BigInt(rows[0]!.through))}`);
    await scale(alice, id, 50);
    await fine.until((x) => x.data('deployment').some((d) => d.target_replicas === 50), 'live events');
    expect(fine.events.some((e) => e.event === 'reset')).toBe(false);
    await fine.close();
  });

  describe('with pages of two events', () => {
    let paged: TestApp;
    let pagedHub: EventHub;
    beforeAll(() => {
      const base = createTestApp(t().database, { STEADY_EVENT_STREAMS: '3' });
      pagedHub = new EventHub(t().database, { logger: base.ctx.logger, streamsPerCaller: 3, pageSize: 2 });
      paged = createTestApp(t().database, { STEADY_EVENT_STREAMS: '3' }, { events: pagedHub });
    });
    afterAll(() => pagedHub.close());

    it('sends the replicas one statement wrote as one event each, and resumes after any of them', async () => {
      const open = async (query: string) => {
        const res = await paged.call('GET', `/api/events${query}`, { token: alice });
        expect(res.status).toBe(200);
        const reader = new SseReader(res);
        readers.push(reader);
        return reader;
      };
      const live = await open('');
      await live.until((r) => r.lastEventId !== null, 'the opening block');
      const id = await deploy(alice, 'one-statement');
      const rows = await db()
        .insertInto('deployment_replicas')
        .values([0, 1, 2, 3, 4].map(() => ({ deployment_id: id, node_id: null, status: 'pending' as const, revision: 1 })))
        .returning('id')
        .execute();
      await db()
        .updateTable('deployment_replicas')
        .set({ status: 'stopped' })
        .where('id', 'in', rows.slice(1, 4).map((r) => r.id))
        .execute();
      await live.until((r) => r.data('replica').length >= 8, 'eight replica events');
      await live.close();
      const replicaEvents = live.data<{ replica_id: string; status: string }>('replica');
      expect(replicaEvents.map((e) => [e.replica_id, e.status])).toEqual([
        ...rows.map((r) => [r.id, 'pending']),
        ...rows.slice(1, 4).map((r) => [r.id, 'stopped']),
      ]);
      // One row of the log per statement and deployment, whatever the number of replicas.
      const { rows: logged } = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM steady_events WHERE kind = 'replica' AND deployment_id = ${id}`.execute(db());
      expect(logged[0]!.n).toBe(2);

      const all = live.events.filter((e) => e.event !== 'reset').map((e) => [e.id, e.event, e.data]);
      const mine = all.filter(([, , data]) => JSON.parse(data!).deployment_id === id);
      const start = all.indexOf(mine[0]!);
      // Resuming after each event of this deployment, pages of two cutting rows anywhere: the rest, once.
      for (let k = start; k < all.length - 1; k++) {
        const r = await open(`?since=${all[k]![0]}`);
        const rest = all.slice(k + 1);
        await r.until((x) => x.events.length >= rest.length, `the replay after event ${k}`);
        expect(r.events.slice(0, rest.length).map((e) => [e.id, e.event, e.data])).toEqual(rest);
        await r.close();
      }
    });
  });

  describe('with short timers', () => {
    let quick: TestApp;
    let quickHub: EventHub;
    beforeAll(() => {
      const base = createTestApp(t().database, { STEADY_EVENT_STREAMS: '1' });
      quickHub = new EventHub(t().database, { logger: base.ctx.logger, streamsPerCaller: 1, pingMs: 50, maxBufferedBytes: 4096, stallMs: 600_000 });
      quick = createTestApp(t().database, { STEADY_EVENT_STREAMS: '1' }, { events: quickHub });
    });
    afterAll(() => quickHub.close());

    it('pings', async () => {
      const r = new SseReader(await quick.call('GET', '/api/events', { token: alice }));
      await r.until((x) => x.comments.filter((c) => c === 'ping').length >= 3, 'three pings');
      await r.close();
    });

    it('drops a client that does not read, and frees its slot', async () => {
      const res = await quick.call('GET', '/api/events', { token: alice });
      expect(res.status).toBe(200);
      // Nobody reads this body. Enough events to fill the body's 64 KiB and the 4 KiB backlog.
      const id = await deploy(alice, 'flood');
      const values = Array.from({ length: 600 }, () => ({ deployment_id: id, node_id: null, status: 'pending' as const, revision: 1 }));
      await db().insertInto('deployment_replicas').values(values).execute();
      let next: Response | null = null;
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
        next = await quick.call('GET', '/api/events', { token: alice });
        if (next.status === 200) break;
        expect(next.status).toBe(429);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(next?.status).toBe(200);
      // The dropped body ends in an error once what it held is read.
      const dropped = new SseReader(res);
      await dropped.until((x) => x.ended !== null, 'the dropped stream to end');
      expect(dropped.ended).toBeInstanceOf(Error);
      await new SseReader(next!).close();
    });

    it('stops writing to a socket whose client reads nothing, then drops it (real socket)', async (ctx) => {
      if (t().backend !== 'postgres') return ctx.skip('PostgreSQL only: the real-socket check runs once, against the PostgreSQL-backed app');
      const { serveApi } = await import('../../src/api/server.js');
      const server = await serveApi(quick.app, { host: '127.0.0.1', port: 0 });
      const socket = net.connect(server.port, '127.0.0.1');
      try {
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.write(`GET /api/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${alice}\r\n\r\n`);
        // The client reads its first bytes, then nothing more: TCP's window closes, the socket's buffer
        // fills, the server stops reading the body, and its backlog overflows.
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        socket.pause();
        const id = await deploy(alice, 'flood-socket');
        const reason = 'r'.repeat(480);
        for (let batch = 0; batch < 4; batch++) {
          await db()
            .insertInto('deployment_replicas')
            .values(Array.from({ length: 5000 }, () => ({ deployment_id: id, node_id: null, status: 'failed' as const, reason, revision: 1 })))
            .execute();
        }
        // Its slot frees when it is dropped (one stream per caller here).
        let status = 0;
        for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
          const res = await quick.call('GET', '/api/events', { token: alice });
          status = res.status;
          if (status === 200) {
            await res.body?.cancel();
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(status).toBe(200);
      } finally {
        socket.destroy();
        await server.close();
      }
    });

    it('ends open streams when the hub closes', async () => {
      const r = new SseReader(await quick.call('GET', '/api/events', { token: bob }));
      await r.until((x) => x.lastEventId !== null, 'the opening block');
      await quickHub.close();
      await r.until((x) => x.ended !== null, 'the end of the stream');
      expect(r.ended).toBe('done');
      expect((await quick.call('GET', '/api/events', { token: bob })).status).toBe(503);
    });
  });

  it('is served over a real socket to a fetch client with the Authorization header', async () => {
    const { serveApi } = await import('../../src/api/server.js');
    const server = await serveApi(api.app, { host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/events`, { headers: bearer(alice) });
      expect(res.status).toBe(200);
      const r = new SseReader(res);
      await r.until((x) => x.lastEventId !== null, 'the opening block');
      const id = await deploy(alice, 'over-http');
      await r.until((x) => x.data('deployment').some((d) => d.deployment_id === id), 'an event over HTTP');
      await r.close();
    } finally {
      await server.close();
    }
  });
});
