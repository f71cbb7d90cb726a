import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Controller } from '../../src/controller/controller.js';
import type { Database } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { testContext } from '../support/context.js';
import { PATIENCE_MS, until } from '../support/patience.js';

/**
 * Lease renewal under trouble (PostgreSQL only: PGlite has one session and no pool to wait for).
 * The leader must keep its lease through one failed renewal (it retries on the retry period, as
 * client-go does) and while every pooled connection is busy (the election has its own).
 */

interface Member {
  readonly controller: Controller;
  readonly database: Database;
  readonly logs: Record<string, unknown>[];
  /** Times this controller stopped leading. */
  readonly stepDowns: number;
}

function member(testDb: TestDatabase, env: Record<string, string>, poolMax: number): Member {
  const logs: Record<string, unknown>[] = [];
  let stepDowns = 0;
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'stopped leading') stepDowns++;
      },
    },
  );
  const database = testDb.openAnother(poolMax);
  const ctx: Context = { ...testContext(database, { STEADY_LEADER_ELECTION: 'true', ...env }), logger };
  return {
    controller: new Controller(ctx),
    database,
    logs,
    get stepDowns() {
      return stepDowns;
    },
  };
}

describe('lease renewal [postgres]', () => {
  let testDb: TestDatabase | null = null;
  let m: Member | null = null;

  afterEach(async () => {
    await m?.controller.stop();
    m = null;
    await testDb?.destroy();
    testDb = null;
  });

  const renewedAt = async (): Promise<number> =>
    (await sql<{ t: Date }>`SELECT renewed_at AS t FROM steady_leader`.execute(testDb!.database.db)).rows[0]!.t.getTime();

  it('keeps the lease through a failed renewal: the next try comes on the retry period', async () => {
    testDb = await createTestDatabase('postgres');
    // Kubernetes' proportions: a failed renewal retried a whole renew period later is past the deadline (lease − 1 s).
    m = member(testDb, { STEADY_LEASE_DURATION: '20s', STEADY_LEASE_RENEW: '12s', STEADY_LEASE_RETRY: '1s' }, 4);
    await m.controller.start();
    await until('leading', () => m!.controller.isLeader);
    const elected = await renewedAt();
    // The first renewal fails: its table is away for that moment only.
    await sql`ALTER TABLE steady_leader RENAME TO steady_leader_away`.execute(testDb.database.db);
    await until('a failed renewal', () => m!.logs.some((l) => l.msg === 'leader election attempt failed'), PATIENCE_MS, 50);
    await sql`ALTER TABLE steady_leader_away RENAME TO steady_leader`.execute(testDb.database.db);
    await until('a renewal after the failed one', async () => (await renewedAt()) > elected || m!.stepDowns > 0, PATIENCE_MS, 100);
    expect(m.stepDowns).toBe(0);
    expect(m.controller.isLeader).toBe(true);
  });

  it('renews while every pooled connection is busy: the election has a connection of its own', async () => {
    testDb = await createTestDatabase('postgres');
    m = member(testDb, { STEADY_LEASE_DURATION: '6s', STEADY_LEASE_RENEW: '2s', STEADY_LEASE_RETRY: '500ms' }, 2);
    await m.controller.start();
    await until('leading', () => m!.controller.isLeader);
    // Both pooled connections held for longer than the lease (a burst of slow requests would do the same).
    const busy = Array.from({ length: 2 }, () =>
      m!.database.db.transaction().execute(async (tx) => {
        await sql`SELECT pg_sleep(9)`.execute(tx);
      }),
    );
    const from = await renewedAt();
    await until('two renewals while the pool is busy', async () => (await renewedAt()) > from + 3_000 || m!.stepDowns > 0, PATIENCE_MS, 100);
    await Promise.all(busy);
    expect(m.stepDowns).toBe(0);
    expect(m.controller.isLeader).toBe(true);
  });
});
