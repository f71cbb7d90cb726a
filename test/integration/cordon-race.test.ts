import { sql } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { setNodeStatus } from '../../src/db/queries/nodes.js';
import { testContext } from '../support/context.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { driftedAllocations, insertDeployment, insertNode, overcommittedNodes, replicaCounts } from '../support/fixtures.js';
import { PATIENCE_MS, until } from '../support/patience.js';

/**
 * Cordon and drain serialise with placement (DESIGN.md §2): the controller reads the nodes, a cordon
 * commits, then the controller inserts. The insert's allocation trigger waits on the node row the
 * cordon holds, sees the node is no longer ready and refuses; the reconcile retries on a fresh read.
 * The interleaving is forced: the cordon's transaction holds the node row while the controller
 * reads and plans, and commits only once the controller's insert waits for that row.
 */
const WAIT = { timeout: PATIENCE_MS, interval: 50 };

describe('cordon and drain against placement [postgres]', () => {
  let testDb: TestDatabase | null = null;
  let controller: Controller | null = null;
  let operator: pg.Client | null = null;

  afterEach(async () => {
    await controller?.stop();
    await operator?.end().catch(() => undefined);
    if (testDb) {
      expect(await overcommittedNodes(testDb.database.db)).toEqual([]);
      expect(await driftedAllocations(testDb.database.db)).toEqual([]);
    }
    await testDb?.destroy();
    controller = operator = testDb = null;
  });

  for (const status of ['cordoned', 'draining'] as const) {
    it(`no replica is placed on a node after its change to ${status} commits`, async () => {
      testDb = await createTestDatabase('postgres');
      const db = testDb.database.db;
      const node = await insertNode(db);
      controller = new Controller(testContext(testDb.database, { STEADY_RESYNC_PERIOD: '10m' }));
      await controller.start();

      operator = new pg.Client({ connectionString: testDb.url!, application_name: 'operator' });
      await operator.connect();
      await operator.query('BEGIN');
      // The row lock is taken; the change is not visible to anyone until COMMIT.
      await operator.query(`UPDATE nodes SET status = $1, updated_at = now() WHERE id = $2`, [status, node]);

      const id = await insertDeployment(db, { target: 3 });
      await until('the controller waits for the node row', async () => {
        const { rows } = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'steady' AND wait_event_type = 'Lock'`.execute(db);
        return rows[0]!.n > 0;
      });
      await operator.query('COMMIT');

      await expect.poll(async () => (await replicaCounts(db, id)).active, WAIT).toBe(3);
      const placed = await db.selectFrom('deployment_replicas').select(['id']).where('node_id', '=', node).execute();
      expect(placed).toEqual([]);
      expect((await replicaCounts(db, id)).placed).toBe(0);
    });
  }

  it('the operator path too: setNodeStatus against a placement waiting on the same row', async () => {
    testDb = await createTestDatabase('postgres');
    const db = testDb.database.db;
    const node = await insertNode(db);
    const id = await insertDeployment(db, { target: 1 });
    // A placement that read the node as ready, made while a cordon runs: whichever commits first, the
    // other sees it. Here the cordon commits first, and the placement is refused.
    await setNodeStatus(db, node, 'cordoned');
    await expect(
      sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${id}, ${node}, 'pending', 1)`.execute(db),
    ).rejects.toMatchObject({ code: 'ST003' });
    await setNodeStatus(db, node, 'ready');
    await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${id}, ${node}, 'pending', 1)`.execute(db);
    expect((await replicaCounts(db, id)).byNode[node]).toBe(1);
  });
});
