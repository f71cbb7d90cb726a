import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Controller } from '../../src/controller/controller.js';
import { Migrator } from '../../src/db/migrator.js';
import { BACKENDS, createTestDatabase, type TestDatabase } from '../support/databases.js';
import { testContext } from '../support/context.js';
import {
  agentsTick,
  deploymentStatus,
  driftedAllocations,
  heartbeat,
  insertDeployment,
  insertNode,
  overcommittedNodes,
  replicaCounts,
  setDeploymentStatus,
  setTarget,
  softDelete,
} from '../support/fixtures.js';
import { PATIENCE_MS } from '../support/patience.js';

const WAIT = { timeout: PATIENCE_MS, interval: 20 };

for (const backend of BACKENDS) {
  describe(`controller [${backend}]`, () => {
    let testDb: TestDatabase | null = null;
    let controller: Controller | null = null;

    const setUp = async (env: Record<string, string> = {}, options: { migrateInSession?: boolean } = {}): Promise<Context> => {
      testDb = await createTestDatabase(backend, { migrated: !options.migrateInSession });
      if (options.migrateInSession) await new Migrator(testDb.database).up();
      const ctx = testContext(testDb.database, env);
      controller = new Controller(ctx);
      await controller.start();
      return ctx;
    };

    afterEach(async () => {
      await controller?.stop();
      controller = null;
      if (testDb) {
        expect(await overcommittedNodes(testDb.database.db)).toEqual([]);
        expect(await driftedAllocations(testDb.database.db)).toEqual([]);
        await testDb.destroy();
      }
      testDb = null;
    });

    it('scales 0 → 3 → 5 → 2 → 4 through NOTIFY, spreading replicas and recording each status', async () => {
      const { database } = await setUp();
      const db = database.db;
      const nodes = [await insertNode(db), await insertNode(db), await insertNode(db)];
      const id = await insertDeployment(db, { target: 3 });

      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(3);
      expect(Object.values((await replicaCounts(db, id)).byNode).sort()).toEqual([1, 1, 1]);
      expect((await deploymentStatus(db, id)).status).toBe('scheduled');
      await agentsTick(db);
      await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('running');

      for (const target of [5, 2, 4]) {
        await setTarget(db, id, target);
        await expect.poll(async () => (await replicaCounts(db, id)).active, WAIT).toBe(target);
        await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(target);
        await agentsTick(db);
        await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('running');
        const counts = await replicaCounts(db, id);
        expect(counts.running).toBe(target);
        const perNode = nodes.map((n) => counts.byNode[n] ?? 0);
        expect(Math.max(...perNode) - Math.min(...perNode)).toBeLessThanOrEqual(1);
      }
      const history = await db
        .selectFrom('deployment_status_history')
        .select(['old_status', 'new_status', 'changed_by'])
        .where('deployment_id', '=', id)
        .orderBy('changed_at')
        .execute();
      expect(history[0]).toMatchObject({ old_status: 'none', new_status: 'pending' });
      expect(history.slice(1, 3).map((h) => `${h.old_status}→${h.new_status}`)).toEqual(['pending→scheduled', 'scheduled→running']);
      expect(history.every((h) => h.changed_by === null || h.old_status === 'none')).toBe(true);
    });

    it('records the generation each reconcile acted on, with its actions, never ahead of the spec', async () => {
      const { database } = await setUp();
      const db = database.db;
      await insertNode(db);
      await insertNode(db);
      const id = await insertDeployment(db, { target: 2 });
      const generations = async () =>
        db.selectFrom('deployments').select(['generation', 'observed_generation']).where('id', '=', id).executeTakeFirstOrThrow();
      await expect.poll(async () => (await generations()).observed_generation, WAIT).toBe(1);
      expect((await replicaCounts(db, id)).active).toBe(2);
      for (const target of [5, 1, 3]) {
        await setTarget(db, id, target);
        const { generation } = await generations();
        await expect.poll(async () => (await generations()).observed_generation, WAIT).toBe(generation);
        // Observed in the same transaction as the plan for it: the replicas are already there.
        expect((await replicaCounts(db, id)).active).toBe(target);
      }
      // Later reconciles (the agents' reports) leave the observed generation where it is.
      await agentsTick(db);
      await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('running');
      expect(await generations()).toEqual({ generation: 4, observed_generation: 4 });
    });

    it('writes one deployment event per reconcile, with the counts that reconcile leaves', async () => {
      const { database } = await setUp();
      const db = database.db;
      await insertNode(db);
      await insertNode(db);
      const id = await insertDeployment(db, { target: 3 });
      const events = async () =>
        (
          await sql<{ status: string; target_replicas: number; running_replicas: number; updated_replicas: number }>`
            SELECT status, target_replicas, running_replicas, updated_replicas FROM steady_events
            WHERE kind = 'deployment' AND deployment_id = ${id} ORDER BY id`.execute(db)
        ).rows.map((e) => [e.status, e.target_replicas, e.running_replicas, e.updated_replicas]);
      await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('scheduled');
      // Created; then placed and scheduled in one transaction: one event, never the placement alone.
      expect(await events()).toEqual([
        ['pending', 3, 0, 0],
        ['scheduled', 3, 0, 3],
      ]);
      await agentsTick(db);
      await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('running');
      // A scale-down leaves the status as it is: the reconcile that stops a replica still reports the count it changed.
      const seen = (await events()).length;
      await setTarget(db, id, 2);
      await expect.poll(async () => (await replicaCounts(db, id)).active, WAIT).toBe(2);
      await expect.poll(async () => (await events()).slice(seen), WAIT).toEqual([
        ['running', 2, 3, 3],
        ['running', 2, 2, 2],
      ]);
    });

    it('wakes the event readers after its writing reconciles commit, never from inside them', async () => {
      const { database } = await setUp();
      const db = database.db;
      await insertNode(db);
      const heard: string[] = [];
      const listener = await database.listen(['steady_events'], { onNotification: (n) => heard.push(n.payload) });
      try {
        // The test's own writes wake no one (migration 0015): what the readers hear comes from the controller.
        const id = await insertDeployment(db, { target: 2, silentEvents: true });
        await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('scheduled');
        await db.transaction().execute(async (trx) => {
          await sql`SELECT set_config('steady.events_wake', 'after_commit', true)`.execute(trx);
          await agentsTick(trx);
        });
        await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('running');
        await controller!.idle();
        await sql`SELECT pg_notify('steady_events', 'marker')`.execute(db);
        await expect.poll(() => heard.includes('marker'), WAIT).toBe(true);
        // Two reconciles wrote (placed, then running): a wake after each, or one for both when the
        // second came while the first was being sent; never one more from inside a transaction.
        const before = heard.slice(0, heard.indexOf('marker'));
        expect(before.every((p) => p === '')).toBe(true);
        expect(before.length).toBeGreaterThanOrEqual(1);
        expect(before.length).toBeLessThanOrEqual(2);
      } finally {
        await listener.close();
      }
    });

    it('stops every replica of a stopped deployment, brings them back on start, and stops them on delete', async () => {
      // Migrated in this very session, as `steady dev` does on a new data directory: enum array types
      // created after the database opened must not break any statement.
      const { database } = await setUp({}, { migrateInSession: true });
      const db = database.db;
      await insertNode(db);
      await insertNode(db);
      const id = await insertDeployment(db, { target: 4 });
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(4);
      await agentsTick(db);

      await setDeploymentStatus(db, id, 'stopped');
      await expect.poll(async () => (await replicaCounts(db, id)).active, WAIT).toBe(0);
      expect((await replicaCounts(db, id)).stopping).toBe(4);
      await agentsTick(db);
      expect((await replicaCounts(db, id)).stopping).toBe(0);

      await setDeploymentStatus(db, id, 'pending');
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(4);
      await agentsTick(db);
      await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('running');

      await softDelete(db, id);
      await expect.poll(async () => (await replicaCounts(db, id)).active, WAIT).toBe(0);
      expect((await deploymentStatus(db, id)).status).toBe('deleted');
    });

    it('replaces failed replicas after a back-off, and fails a deployment that never runs', async () => {
      const { database } = await setUp({ STEADY_BACKOFF_BASE: '300ms', STEADY_FAILURE_THRESHOLD: '3' });
      const db = database.db;
      await insertNode(db);
      const id = await insertDeployment(db, { target: 1 });
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(1);

      const failActive = async () => {
        const failedAt = Date.now();
        await sql`UPDATE deployment_replicas SET status = 'failed', reason = 'exit 1' WHERE deployment_id = ${id} AND status = 'pending'`.execute(db);
        return failedAt;
      };
      let failedAt = await failActive();
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(1);
      const firstDelay = Date.now() - failedAt;
      expect(firstDelay).toBeGreaterThanOrEqual(250);
      expect((await deploymentStatus(db, id)).status).toBe('scheduled');

      failedAt = await failActive();
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(1);
      expect(Date.now() - failedAt).toBeGreaterThanOrEqual(550); // doubled

      await failActive();
      await expect.poll(async () => (await deploymentStatus(db, id)).status, WAIT).toBe('failed');
      expect((await deploymentStatus(db, id)).status_reason).toMatch(/CrashLoopBackOff/);
      expect((await replicaCounts(db, id)).active).toBe(0);
    });

    it('leaves replicas unscheduled with a reason when nothing fits, and binds them when a node arrives', async () => {
      const { database } = await setUp();
      const db = database.db;
      await insertNode(db, { memoryMb: 2048 });
      const id = await insertDeployment(db, { target: 3, memoryMb: 1024 });
      await expect.poll(async () => (await replicaCounts(db, id)).active, WAIT).toBe(3);
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(2);
      const { status, status_reason } = await deploymentStatus(db, id);
      expect(status).toBe('pending');
      expect(status_reason).toMatch(/^Unschedulable: 0\/1 nodes are available: 1 insufficient memory/);
      const reasons = await db.selectFrom('deployment_status_history').select('reason').where('deployment_id', '=', id).execute();
      expect(reasons.filter((r) => r.reason?.startsWith('Unschedulable')).length).toBeLessThanOrEqual(1);

      await insertNode(db, { memoryMb: 4096 });
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(3);
      expect((await deploymentStatus(db, id)).status).toBe('scheduled');
    });

    it('marks a silent node not_ready, then moves its replicas after the eviction timeout', async () => {
      const { database } = await setUp({ STEADY_NODE_GRACE_PERIOD: '600ms', STEADY_NODE_EVICTION_TIMEOUT: '600ms' });
      const db = database.db;
      const alive = await insertNode(db, { name: 'alive' });
      const doomed = await insertNode(db, { name: 'doomed' });
      const id = await insertDeployment(db, { target: 2 });
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(2);
      await agentsTick(db);
      const keepAlive = setInterval(() => void heartbeat(db, [alive]).catch(() => undefined), 100);
      try {
        const nodeStatus = async () => (await db.selectFrom('nodes').select('status').where('id', '=', doomed).executeTakeFirstOrThrow()).status;
        await expect.poll(nodeStatus, WAIT).toBe('not_ready');
        await expect.poll(async () => (await replicaCounts(db, id)).byNode[alive], WAIT).toBe(2);
        const lost = await db.selectFrom('deployment_replicas').select(['status', 'reason', 'stopped_at']).where('node_id', '=', doomed).execute();
        expect(lost).toMatchObject([{ status: 'failed', reason: 'NodeLost' }]);
        // Not before the eviction timeout: measured on the database's clock, like the controller does.
        const { last_heartbeat_at } = await db.selectFrom('nodes').select('last_heartbeat_at').where('id', '=', doomed).executeTakeFirstOrThrow();
        expect(lost[0]!.stopped_at!.getTime() - last_heartbeat_at!.getTime()).toBeGreaterThanOrEqual(1_200);
        expect((await db.selectFrom('deployments').select('restart_count').where('id', '=', id).executeTakeFirstOrThrow()).restart_count).toBe(0);

        await heartbeat(db, [doomed]);
        expect(await nodeStatus()).toBe('ready');
      } finally {
        clearInterval(keepAlive);
      }
    });

    it('moves replicas off a draining node and places nothing on a cordoned one', async () => {
      const { database } = await setUp();
      const db = database.db;
      const a = await insertNode(db);
      const b = await insertNode(db);
      const id = await insertDeployment(db, { target: 4, cpu: 0.5 });
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(4);
      await db.updateTable('nodes').set({ status: 'draining' }).where('id', '=', a).execute();
      await expect.poll(async () => (await replicaCounts(db, id)).byNode[b], WAIT).toBe(4);
      expect((await replicaCounts(db, id)).byNode[a]).toBeUndefined();
      // The replacements were placed as they were created, never left waiting for a node.
      const waited = await db
        .selectFrom('deployment_status_history')
        .select(['old_status', 'new_status', 'reason'])
        .where('deployment_id', '=', id)
        .where('new_status', '=', 'pending')
        .where('old_status', '<>', 'none')
        .execute();
      expect(waited).toEqual([]);

      await db.updateTable('nodes').set({ status: 'cordoned' }).where('id', '=', a).execute();
      await setTarget(db, id, 6);
      await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(6);
      expect((await replicaCounts(db, id)).byNode[a]).toBeUndefined();
    });

    it('works through a backlog in batches: every deployment placed exactly, capacity and spreading kept', async () => {
      const ctx = await setUp({ STEADY_RECONCILE_BATCH: '16' });
      const db = ctx.database.db;
      await controller!.stop();
      // 30 nodes of 6 cores for 60 × 3 one-core replicas, exactly full: plans of one batch that did not
      // see each other's placements would pile onto the same emptiest nodes (the database refuses that, ST001).
      for (let i = 0; i < 30; i++) await insertNode(db, { cpu: 6, memoryMb: 65_536 });
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) ids.push(await insertDeployment(db, { target: 3 }));
      controller = new Controller(ctx);
      await controller.start(); // the first resync finds all 60 at once
      await expect.poll(async () => (await db.selectFrom('deployment_replicas').select('id').where('node_id', 'is not', null).execute()).length, WAIT).toBe(180);
      for (const id of ids) {
        const counts = await replicaCounts(db, id);
        expect(counts.placed).toBe(3);
        expect(Object.values(counts.byNode)).toEqual([1, 1, 1]);
      }
      const moves = await db.selectFrom('deployment_status_history').select(['old_status', 'new_status']).where('old_status', '=', 'pending').execute();
      expect(moves).toHaveLength(60);
      const batches = (await ctx.metrics.reconcileBatchSize.get()).values;
      const count = batches.find((v) => v.metricName === 'steady_reconcile_batch_size_count')?.value ?? 0;
      const sum = batches.find((v) => v.metricName === 'steady_reconcile_batch_size_sum')?.value ?? 0;
      expect(sum).toBeGreaterThanOrEqual(60);
      expect(count).toBeLessThan(sum / 2); // batches of several, not one transaction each
      // The nodes were read in full once; every later placement read only those changed since.
      const reads = (await ctx.metrics.nodeReads.get()).values;
      const full = reads.find((v) => v.labels.kind === 'full')?.value ?? 0;
      const changed = reads.find((v) => v.labels.kind === 'changed')?.value ?? 0;
      expect(full).toBe(1);
      expect(changed).toBeGreaterThan(0);
      const rows = (await ctx.metrics.nodeRowsRead.get()).values[0]?.value ?? 0;
      expect(rows).toBeLessThan((full + changed) * 30);
    });

    it('reconciles the rest of a batch when one deployment in it keeps failing', async () => {
      const ctx = await setUp({ STEADY_RECONCILE_BATCH: '20' });
      const db = ctx.database.db;
      await controller!.stop();
      await insertNode(db, { cpu: 64, memoryMb: 65_536 });
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push(await insertDeployment(db, { target: 2 }));
      const poisoned = ids[4]!;
      await sql
        .raw(
          `CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.deployment_id = '${poisoned}' THEN RAISE EXCEPTION 'poisoned deployment'; END IF; RETURN NEW; END $$`,
        )
        .execute(db);
      await sql`CREATE TRIGGER poison BEFORE INSERT ON deployment_replicas FOR EACH ROW EXECUTE FUNCTION poison()`.execute(db);
      controller = new Controller(ctx);
      await controller.start();
      for (const id of ids.filter((i) => i !== poisoned)) await expect.poll(async () => (await replicaCounts(db, id)).placed, WAIT).toBe(2);
      expect((await replicaCounts(db, poisoned)).active).toBe(0);
      const errors = (await ctx.metrics.reconciles.get()).values.find((v) => v.labels.outcome === 'error')?.value ?? 0;
      expect(errors).toBeGreaterThan(0);
      // A failed placing transaction makes the next read of the nodes a full one (NodeCache.abandon).
      await expect.poll(async () => (await ctx.metrics.nodeReads.get()).values.find((v) => v.labels.kind === 'full')?.value ?? 0, WAIT).toBeGreaterThan(1);
    });

    it('deletes terminal replica rows past the retention window, and nothing else', async () => {
      const { database } = await setUp();
      const db = database.db;
      const id = await insertDeployment(db, { target: 1 });
      await setDeploymentStatus(db, id, 'stopped');
      const old = new Date(Date.now() - 25 * 3_600_000);
      const inserted = await db
        .insertInto('deployment_replicas')
        .values([
          { deployment_id: id, status: 'stopped', updated_at: old, revision: 1 },
          { deployment_id: id, status: 'failed', updated_at: old, replaced: true, revision: 1 },
          { deployment_id: id, status: 'stopped', updated_at: new Date(Date.now() - 23 * 3_600_000), revision: 1 },
          { deployment_id: id, status: 'running', updated_at: old, revision: 1 },
        ])
        .returning('id')
        .execute();
      await controller!.stop();
      controller = new Controller(testContext(database));
      await controller.start(); // retention runs at start, then every minute
      const remaining = async () =>
        (await db.selectFrom('deployment_replicas').select('id').where('id', 'in', inserted.map((r) => r.id)).execute()).map((r) => r.id);
      await expect.poll(remaining, WAIT).toHaveLength(2);
      expect((await remaining()).sort()).toEqual([inserted[2]!.id, inserted[3]!.id].sort());
    });
  });
}
