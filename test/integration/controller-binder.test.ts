import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Controller } from '../../src/controller/controller.js';
import { BACKENDS, createTestDatabase, type TestDatabase } from '../support/databases.js';
import { testContext } from '../support/context.js';
import { insertDeployment, insertNode, overcommittedNodes, replicaCounts } from '../support/fixtures.js';
import { PATIENCE_MS } from '../support/patience.js';

/**
 * The binder (replicas waiting for a node) reads every node on each pass: while something waits, a
 * storm of notifications must coalesce into at most one pass a second, and capacity that appears is
 * still used within about a second.
 */
const WAIT = { timeout: PATIENCE_MS, interval: 50 };

const binderPasses = async (ctx: Context): Promise<number> => (await ctx.metrics.binderPasses.get()).values[0]?.value ?? 0;

for (const backend of BACKENDS) {
  describe(`binder [${backend}]`, () => {
    let testDb: TestDatabase | null = null;
    let controller: Controller | null = null;

    afterEach(async () => {
      await controller?.stop();
      controller = null;
      if (testDb) expect(await overcommittedNodes(testDb.database.db)).toEqual([]);
      await testDb?.destroy();
      testDb = null;
    });

    it('runs at most once a second under a storm of notifications, and binds as soon as capacity appears', async () => {
      testDb = await createTestDatabase(backend);
      const db = testDb.database.db;
      await insertNode(db, { cpu: 1 });
      const waiting = await insertDeployment(db, { target: 1, cpu: 2 });
      const busy = await insertDeployment(db, { target: 1, cpu: 0.5 });
      const ctx = testContext(testDb.database, { STEADY_RESYNC_PERIOD: '10m' });
      controller = new Controller(ctx);
      await controller.start();
      await expect.poll(async () => (await replicaCounts(db, waiting)).active, WAIT).toBe(1);
      expect((await replicaCounts(db, waiting)).placed).toBe(0);
      await expect.poll(async () => (await replicaCounts(db, busy)).placed, WAIT).toBe(1);

      const before = await binderPasses(ctx);
      const started = performance.now();
      for (let i = 0; i < 300; i++) {
        await sql`UPDATE deployments SET updated_at = now() WHERE id = ${busy}`.execute(db);
        // Let the notification arrive (PGlite delivers it in this process).
        await new Promise((resolve) => setImmediate(resolve));
      }
      const passes = (await binderPasses(ctx)) - before;
      const seconds = (performance.now() - started) / 1000;
      expect(passes).toBeGreaterThanOrEqual(1);
      expect(passes).toBeLessThanOrEqual(Math.floor(seconds) + 2);

      const big = await insertNode(db, { cpu: 4 });
      await expect.poll(async () => (await replicaCounts(db, waiting)).byNode[big], WAIT).toBe(1);
    });
  });
}
