import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createEventHub } from '../../src/api/app.js';
import type { EventHub } from '../../src/api/events/event-hub.js';
import type { Database } from '../../src/db/database.js';
import type { Tables } from '../../src/db/tables.js';
import { describeBackends } from '../support/databases.js';
import { insertDeployment, insertUser } from '../support/fixtures.js';
import { SseReader } from '../support/sse.js';
import { createTestApp, userToken, type TestApp } from '../support/tokens.js';

/**
 * Ids come from a sequence, which is not commit-ordered: these writers commit out of id order on
 * purpose (one draws an id and holds its transaction open while others draw later ids and commit).
 * A stream that follows the log live, and one that keeps reconnecting with Last-Event-ID, must each
 * see every event exactly once, in id order.
 */
describeBackends('event stream under concurrent writers', (t, backend) => {
  let api: TestApp;
  let hub: EventHub;
  let token: string;
  let userId: string;
  const writers: Database[] = [];

  beforeAll(async () => {
    const subject = `concurrent-${backend}`;
    token = await userToken(subject);
    userId = await insertUser(t().database.db, subject);
    api = createTestApp(t().database);
    hub = createEventHub(api.ctx);
    api = createTestApp(t().database, {}, { events: hub });
    if (backend === 'postgres') for (let i = 0; i < 4; i++) writers.push(t().openAnother(2));
    else writers.push(t().database);
  });
  afterAll(() => hub.close());

  const open = async (lastEventId?: string) => {
    const res = await api.call('GET', '/api/events', { token, headers: lastEventId ? { 'Last-Event-ID': lastEventId } : {} });
    expect(res.status).toBe(200);
    const reader = new SseReader(res);
    await reader.until((r) => r.retry !== null, 'the opening block');
    return reader;
  };

  /** One transaction: a few replicas, a pause with the transaction open, a status change, commit. */
  const write = async (db: Kysely<Tables>, deploymentId: string, holdMs: number): Promise<void> => {
    await db.transaction().execute(async (tx) => {
      const rows = await tx
        .insertInto('deployment_replicas')
        .values([1, 2, 3].map(() => ({ deployment_id: deploymentId, node_id: null, status: 'pending' as const, revision: 1 })))
        .returning('id')
        .execute();
      if (holdMs > 0) await sql`SELECT pg_sleep(${holdMs / 1000})`.execute(tx);
      await tx.updateTable('deployment_replicas').set({ status: 'stopped' }).where('id', '=', rows[0]!.id).execute();
    });
  };

  const waitFor = async (condition: () => boolean, what: string, timeoutMs = 120_000): Promise<void> => {
    for (const deadline = Date.now() + timeoutMs; !condition(); ) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  it('delivers every event once, in order, live and across reconnections', async () => {
    const live = await open();
    // Reconnects every few events, resuming from the last id it got.
    const resumed: string[] = [];
    let finalId: string | null = null;
    let reader = await open();
    const reconnecting = (async () => {
      let lastId: string | null = reader.lastEventId;
      for (;;) {
        const current = reader;
        await waitFor(() => current.events.length >= 5 || (finalId !== null && (current.events.at(-1)?.id ?? lastId) === finalId), 'a few events');
        await current.close();
        for (const e of current.events) resumed.push(e.id!);
        lastId = resumed.at(-1) ?? lastId;
        if (finalId !== null && lastId === finalId) return;
        reader = await open(lastId ?? undefined);
      }
    })();

    const deployments = await Promise.all([1, 2, 3, 4].map(() => insertDeployment(t().database.db, { userId })));
    const rounds = backend === 'postgres' ? 12 : 20;
    await Promise.all(
      writers.map(async (writer, w) => {
        for (let round = 0; round < rounds; round++) {
          // Writer 0 holds its transactions open longest: its ids commit after later ones.
          const holdMs = w === 0 ? 150 : round % 3 === 0 ? 0 : 10 + ((round * 7 + w * 13) % 40);
          await write(writer.db, deployments[(w + round) % deployments.length]!, backend === 'postgres' ? holdMs : 0);
        }
      }),
    );
    // A row of replica events is one event per replica, `id + k` (migration 0011).
    const { rows } = await sql<{ id: string }>`
      SELECT (e.id + k)::text AS id FROM steady_events e JOIN deployments d ON d.id = e.deployment_id
      CROSS JOIN generate_series(0, coalesce(cardinality(e.replica_ids), 1) - 1) k
      WHERE d.user_id = ${userId} ORDER BY e.id + k`.execute(t().database.db);
    const expected = rows.map((r) => r.id);
    expect(expected.length).toBeGreaterThan(rounds * writers.length * 4);
    finalId = expected.at(-1)!;
    await live.until((r) => r.events.length >= expected.length, `all ${expected.length} events live`, 120_000);
    await reconnecting;
    await live.close();

    expect(live.events.map((e) => e.id)).toEqual(expected);
    // Each reconnection resumed where the last one stopped: together, every event once, in order.
    expect(resumed).toEqual(expected);
  });
});
