import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import type { Database } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { testContext } from '../support/context.js';
import { insertDeployment, insertNode, replicaCounts, setTarget } from '../support/fixtures.js';
import { PATIENCE_MS } from '../support/patience.js';

const LEASE = { STEADY_LEADER_ELECTION: 'true', STEADY_LEASE_DURATION: '2s', STEADY_LEASE_RENEW: '500ms', STEADY_LEASE_RETRY: '200ms' };

describe('leader election on PostgreSQL', () => {
  let testDb: TestDatabase;
  const members: { controller: Controller; database: Database }[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    for (let i = 0; i < 2; i++) {
      const database = testDb.openAnother(4);
      members.push({ controller: new Controller(testContext(database, LEASE)), database });
    }
    await Promise.all(members.map((m) => m.controller.start()));
  });

  afterAll(async () => {
    await Promise.all(members.map((m) => m.controller.stop().catch(() => undefined)));
    await testDb.destroy();
  });

  const leaders = () => members.filter((m) => m.controller.isLeader);
  const db = () => testDb.database.db;

  it('elects exactly one leader, which does the work', async () => {
    await expect.poll(() => leaders().length, { timeout: PATIENCE_MS }).toBe(1);
    await new Promise((r) => setTimeout(r, 1_200)); // a few renewals: still exactly one
    expect(leaders()).toHaveLength(1);
    const db = testDb.database.db;
    await insertNode(db);
    const id = await insertDeployment(db, { target: 2 });
    await expect.poll(async () => (await replicaCounts(db, id)).placed, { timeout: PATIENCE_MS }).toBe(2);
  });

  it('fails over when the leader loses its database: the old leader steps down first, and work continues', async () => {
    const db = testDb.database.db;
    const [leader] = leaders();
    const standby = members.find((m) => m !== leader)!;
    expect(leader).toBeDefined();
    const { rows } = await db.selectFrom('steady_leader').select(['leader_id', 'term']).execute().then((r) => ({ rows: r }));
    expect(rows).toEqual([{ leader_id: leader!.controller.identity, term: expect.anything() }]);
    const termBefore = Number(rows[0]!.term);

    // Watch both: the old leader must stop acting before the standby starts (no moment with two leaders).
    let steppedDownAt = Infinity;
    let tookOverAt = Infinity;
    const watch = setInterval(() => {
      const now = performance.now();
      if (!leader!.controller.isLeader) steppedDownAt = Math.min(steppedDownAt, now);
      if (standby.controller.isLeader) tookOverAt = Math.min(tookOverAt, now);
    }, 5);
    await leader!.database.close(); // the leader's connections are gone; it can neither renew nor work
    await expect.poll(() => standby.controller.isLeader, { timeout: PATIENCE_MS, interval: 50 }).toBe(true);
    clearInterval(watch);
    // The old leader stepped down on its own, before its lease could have been taken.
    expect(leader!.controller.isLeader).toBe(false);
    expect(steppedDownAt).toBeLessThanOrEqual(tookOverAt);
    const lease = await db.selectFrom('steady_leader').select(['leader_id', 'term']).executeTakeFirstOrThrow();
    expect(lease.leader_id).toBe(standby.controller.identity);
    expect(Number(lease.term)).toBe(termBefore + 1);

    const id = await insertDeployment(db, { target: 1, cpu: 0.5 });
    await expect.poll(async () => (await replicaCounts(db, id)).placed, { timeout: PATIENCE_MS }).toBe(1);
    await setTarget(db, id, 3);
    await expect.poll(async () => (await replicaCounts(db, id)).placed, { timeout: PATIENCE_MS }).toBe(3);
  });

  it('hands the lease over at once on a clean stop', async () => {
    const third = { database: testDb.openAnother(4), controller: null as unknown as Controller };
    third.controller = new Controller(testContext(third.database, LEASE));
    members.push(third);
    await third.controller.start();
    const [leader] = leaders();
    const { term } = await db().selectFrom('steady_leader').select('term').executeTakeFirstOrThrow();
    await leader!.controller.stop();
    // Released, not left to expire: the row has expired already, or the standby holds the next term.
    const { rows } = await sql<{ leader_id: string; term: string; expired: boolean }>`
      SELECT leader_id, term, expires_at <= now() AS expired FROM steady_leader`.execute(db());
    expect(rows[0]!.expired || (rows[0]!.leader_id === third.controller.identity && Number(rows[0]!.term) === Number(term) + 1)).toBe(true);
    await expect.poll(() => third.controller.isLeader, { timeout: PATIENCE_MS, interval: 20 }).toBe(true);
  });
});
