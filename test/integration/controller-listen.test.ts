import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import type { Database } from '../../src/db/database.js';
import { openPostgres } from '../../src/db/postgres.js';
import { testContext } from '../support/context.js';
import { createTestDatabase, silentLogger, type TestDatabase } from '../support/databases.js';
import { insertDeployment, insertNode, replicaCounts } from '../support/fixtures.js';
import { PATIENCE_MS, until } from '../support/patience.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/**
 * A LISTEN that fails when leadership starts is tried again: reaction comes back to notification
 * speed for the rest of the leadership, not the resync period (here ten minutes, so that only a
 * notification can make the controller act within the test's patience).
 */
describe('notification listener [postgres]', () => {
  let testDb: TestDatabase | null = null;
  let proxy: TcpProxy | null = null;
  let database: Database | null = null;
  let controller: Controller | null = null;

  afterEach(async () => {
    await controller?.stop();
    await database?.close();
    await proxy?.close();
    await testDb?.destroy();
    controller = database = proxy = testDb = null;
  });

  it('retries a first LISTEN that failed, and then reacts to a notification', async () => {
    testDb = await createTestDatabase('postgres');
    const direct = testDb.database.db;
    const url = new URL(testDb.url!);
    proxy = await startTcpProxy(Number(url.port));
    url.port = String(proxy.port);
    database = openPostgres({ url: url.toString(), poolMax: 4, logger: silentLogger });
    // The pool's connections are open before the server stops taking new ones: reconciles still run,
    // only the listener's own connection is refused.
    await Promise.all([1, 2, 3, 4].map(() => sql`SELECT pg_sleep(0.2)`.execute(database!.db)));
    proxy.refuseNew();

    controller = new Controller(testContext(database, { STEADY_RESYNC_PERIOD: '10m', STEADY_LEASE_RETRY: '200ms' }));
    await controller.start();
    expect(controller.isLeader).toBe(true);
    const listening = async () =>
      (await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'steady-listener'`.execute(direct)).rows[0]!.n;
    expect(await listening()).toBe(0);

    proxy.restore();
    await until('the listener is back', async () => (await listening()) === 1);
    const node = await insertNode(direct);
    const id = await insertDeployment(direct, { target: 2 });
    await expect.poll(async () => (await replicaCounts(direct, id)).byNode[node], { timeout: PATIENCE_MS, interval: 50 }).toBe(2);
  });
});
