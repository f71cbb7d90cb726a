import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { deploymentsNeedingWork } from '../../src/db/controller/sweeps.js';
import type { Tables } from '../../src/db/tables.js';
import { BACKENDS, createTestDatabase, type TestDatabase } from '../support/databases.js';
import { testContext } from '../support/context.js';
import { agentsTick, insertDeployment, insertNode, overcommittedNodes, replicaCounts, setDeploymentStatus } from '../support/fixtures.js';
import { PATIENCE_MS } from '../support/patience.js';

/**
 * Level-triggered (DESIGN.md §2): whatever a notification can start, the periodic resync finds too,
 * so a notification lost in a failover or a reconnect never leaves work undone; and what the
 * controller settles, the resync stops finding.
 */

const WAIT = { timeout: PATIENCE_MS, interval: 50 };

/** A change made with the notification triggers off: what a notification lost on the way looks like. */
async function withoutNotifications(db: Kysely<Tables>, change: (tx: Kysely<Tables>) => Promise<unknown>): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await sql`SET LOCAL session_replication_role = replica`.execute(tx);
    await change(tx);
  });
}

for (const backend of BACKENDS) {
  describe(`resync [${backend}]`, () => {
    let testDb: TestDatabase | null = null;
    let controller: Controller | null = null;

    afterEach(async () => {
      await controller?.stop();
      controller = null;
      if (testDb) expect(await overcommittedNodes(testDb.database.db)).toEqual([]);
      await testDb?.destroy();
      testDb = null;
    });

    it('finds the replicas of a draining node, and the resync alone drains it when the notification was lost', async () => {
      testDb = await createTestDatabase(backend);
      const db = testDb.database.db;
      const a = await insertNode(db);
      const id = await insertDeployment(db, { target: 2, cpu: 0.5 });
      controller = new Controller(testContext(testDb.database, { STEADY_RESYNC_PERIOD: '1s' }));
      await controller.start();
      await expect.poll(async () => (await replicaCounts(db, id)).byNode[a], WAIT).toBe(2);
      await agentsTick(db);
      await expect.poll(async () => (await sql<{ s: string }>`SELECT status::text AS s FROM deployments WHERE id = ${id}`.execute(db)).rows[0]!.s, WAIT).toBe('running');
      await controller.idle();
      expect(await deploymentsNeedingWork(db)).not.toContain(id);

      const b = await insertNode(db);
      await withoutNotifications(db, (tx) => tx.updateTable('nodes').set({ status: 'draining' }).where('id', '=', a).execute());
      await expect.poll(async () => (await replicaCounts(db, id)).byNode[b], WAIT).toBe(2);
      expect((await replicaCounts(db, id)).byNode[a]).toBeUndefined();
    });

    it('the draining branch on its own: a converged deployment on a node drained without a notification', async () => {
      testDb = await createTestDatabase(backend);
      const db = testDb.database.db;
      const a = await insertNode(db);
      const id = await insertDeployment(db, { target: 1 });
      // Converged: running at its target, its first rollout complete.
      await sql`UPDATE deployments SET status = 'running', rollout_state = 'complete' WHERE id = ${id}`.execute(db);
      await db.insertInto('deployment_replicas').values({ deployment_id: id, node_id: a, status: 'running', revision: 1 }).execute();
      expect(await deploymentsNeedingWork(db)).toEqual([]);
      await withoutNotifications(db, (tx) => tx.updateTable('nodes').set({ status: 'draining' }).where('id', '=', a).execute());
      expect(await deploymentsNeedingWork(db)).toEqual([id]);
    });

    it('settles the failures of a stopped deployment once: the resync stops finding them, a start counts none', async () => {
      testDb = await createTestDatabase(backend);
      const db = testDb.database.db;
      const a = await insertNode(db);
      const id = await insertDeployment(db, { target: 1 });
      await setDeploymentStatus(db, id, 'stopped');
      await sql`UPDATE deployments SET status = 'stopped' WHERE id = ${id}`.execute(db);
      // A replica that crashed while its deployment was being stopped.
      await db.insertInto('deployment_replicas').values({ deployment_id: id, node_id: a, status: 'failed', reason: 'Crashed', revision: 1 }).execute();
      expect(await deploymentsNeedingWork(db)).toEqual([id]);

      controller = new Controller(testContext(testDb.database, { STEADY_RESYNC_PERIOD: '1s' }));
      await controller.start();
      await expect.poll(async () => deploymentsNeedingWork(db), WAIT).toEqual([]);
      const failed = await db.selectFrom('deployment_replicas').select(['status', 'replaced']).where('deployment_id', '=', id).execute();
      expect(failed).toEqual([{ status: 'failed', replaced: true }]);

      await setDeploymentStatus(db, id, 'pending');
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(1);
      const { restart_count, backoff_until } = await db.selectFrom('deployments').select(['restart_count', 'backoff_until']).where('id', '=', id).executeTakeFirstOrThrow();
      expect({ restart_count, backoff_until }).toEqual({ restart_count: 0, backoff_until: null });
    });
  });
}
