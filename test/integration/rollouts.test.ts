import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { BACKENDS, createTestDatabase, type TestDatabase } from '../support/databases.js';
import { testContext } from '../support/context.js';
import { driftedAllocations, insertNode, overcommittedNodes } from '../support/fixtures.js';
import { createTestApp, userToken, type TestApp } from '../support/tokens.js';

// Generous: the machine may be loaded; a test waits for conditions, never for a time.
const WAIT = { timeout: 90_000, interval: 25 };
const SLOW = { timeout: 300_000 };

interface Status {
  deployment_id: string;
  status: string;
  revision: number;
  reason: string | null;
  rollout: { state: string; revision: number; updated_replicas: number; available_replicas: number; reason: string | null };
  replicas: { id: string; status: string; revision: number; reason: string | null; node_id: string | null }[];
  recent_status_changes: { old_status: string; new_status: string; reason: string | null }[];
  resources: Record<string, number>;
}

for (const backend of BACKENDS) {
  describe(`rollouts [${backend}]`, () => {
    let testDb: TestDatabase | null = null;
    let controller: Controller | null = null;
    let api: TestApp;
    let token: string;

    const setUp = async (env: Record<string, string> = {}) => {
      testDb = await createTestDatabase(backend);
      controller = new Controller(testContext(testDb.database, env));
      await controller.start();
      api = createTestApp(testDb.database);
      token = await userToken(`rollout-${backend}`);
      return testDb.database.db;
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

    const call = async (method: string, path: string, body?: unknown) => {
      const res = await api.call(method, path, { token, ...(body !== undefined && { body }) });
      return { status: res.status, json: (await res.json()) as Status & Record<string, unknown> };
    };
    const deploy = async (body: Record<string, unknown>) => {
      const res = await call('POST', '/api/deployment/deploy', {
        name: 'web',
        container_image: 'web:1',
        target_replicas: 4,
        resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 },
        ...body,
      });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
      return res.json.deployment_id;
    };
    const status = async (id: string) => (await call('GET', `/api/deployment/status/${id}`)).json;
    /** The agents, once: placed replicas of a good image run, of an image tagged `fail` fail; stopping ones stop. */
    const agents = async () => {
      const db = testDb!.database.db;
      await sql`UPDATE deployment_replicas r SET status = CASE WHEN rev.container_image LIKE '%:fail' THEN 'failed'::replicastatus ELSE 'running'::replicastatus END,
                  started_at = now(), updated_at = now(), reason = CASE WHEN rev.container_image LIKE '%:fail' THEN 'ErrImagePull: no such image' END
                FROM deployment_revisions rev
                WHERE rev.deployment_id = r.deployment_id AND rev.revision = r.revision AND r.status IN ('pending', 'starting') AND r.node_id IS NOT NULL`.execute(db);
      await sql`UPDATE deployment_replicas SET status = 'stopped', stopped_at = now(), updated_at = now() WHERE status = 'stopping'`.execute(db);
    };
    /** Runs the agents until `done` holds, checking `each` after every tick. */
    const drive = async (done: () => Promise<boolean>, each: () => Promise<void> = async () => {}) => {
      const deadline = Date.now() + WAIT.timeout;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error('did not converge');
        await agents();
        await each();
        await new Promise((r) => setTimeout(r, 40));
      }
    };
    const running = async (id: string) =>
      (await sql<{ revision: number; n: number }>`
        SELECT revision, count(*)::int AS n FROM deployment_replicas WHERE deployment_id = ${id} AND status = 'running' GROUP BY revision ORDER BY revision`.execute(
        testDb!.database.db,
      )).rows;

    it('rolls a new image and new resources out, never below N − 25 % running, with node allocation exact at every step', SLOW, async () => {
      const db = await setUp();
      for (let i = 0; i < 3; i++) await insertNode(db, { cpu: 8, memoryMb: 16384 });
      const id = await deploy({});
      await drive(async () => (await status(id)).rollout.state === 'complete');
      expect((await status(id)).recent_status_changes.find((c) => c.new_status === 'rollout:complete')).toMatchObject({
        old_status: 'rollout:progressing',
        reason: 'Rollout complete',
      });

      const patched = await call('PATCH', `/api/deployment/${id}`, { container_image: 'web:2', resources: { cpu_cores: 0.5553, memory_mb: 1024, storage_gb: 2 } });
      expect(patched.status).toBe(200);
      expect(patched.json).toMatchObject({ revision: 2, rollout: { state: 'progressing', revision: 2 }, resources: { cpu_cores: 0.5553, memory_mb: 1024 } });
      // The controller may have written a row after the PATCH already: look the change up.
      expect(patched.json.recent_status_changes.find((c) => c.new_status === 'revision:2')).toMatchObject({
        old_status: 'revision:1',
        new_status: 'revision:2',
        reason: 'Rollout started: image web:1 → web:2; cpu 1 → 0.5553; memory 512 MB → 1024 MB; storage 1 GB → 2 GB',
      });
      let minRunning = Infinity;
      let maxActive = 0;
      await drive(
        async () => (await status(id)).rollout.state === 'complete',
        async () => {
          const counts = await running(id);
          minRunning = Math.min(minRunning, counts.reduce((a, c) => a + c.n, 0));
          const { rows } = await sql<{ n: number }>`
            SELECT count(*)::int AS n FROM deployment_replicas WHERE deployment_id = ${id} AND status IN ('pending', 'starting', 'running')`.execute(db);
          maxActive = Math.max(maxActive, rows[0]!.n);
          expect(await driftedAllocations(db)).toEqual([]);
        },
      );
      // N = 4: surge 25 % → 1, unavailable 25 % → 1.
      expect(minRunning).toBeGreaterThanOrEqual(3);
      expect(maxActive).toBeLessThanOrEqual(5);
      expect(await running(id)).toEqual([{ revision: 2, n: 4 }]);
      const final = await status(id);
      expect(final.rollout).toEqual({ state: 'complete', revision: 2, updated_replicas: 4, available_replicas: 4, reason: null });
      expect(final.replicas.filter((r) => r.status === 'running').every((r) => r.revision === 2)).toBe(true);
      // Each node holds exactly what its replicas' own revisions say: 0.5553 cores is 556 millicores.
      const { rows: nodes } = await sql<{ m: string }>`SELECT allocated_cpu_millicores::text AS m FROM nodes`.execute(db);
      expect(nodes.reduce((a, n) => a + Number(n.m), 0)).toBe(4 * 556);

      const revisions = (await call('GET', `/api/deployment/${id}/revisions`)).json as unknown as { items: Record<string, unknown>[] };
      expect(revisions.items.map((r) => [r.revision, r.container_image, r.active_replicas])).toEqual([
        [2, 'web:2', 4],
        [1, 'web:1', 0],
      ]);

      // Scaling alone makes no revision.
      const scaled = await call('PATCH', `/api/deployment/${id}`, { target_replicas: 5 });
      expect(scaled.json.revision).toBe(2);
      await drive(async () => (await running(id)).reduce((a, c) => a + c.n, 0) === 5);
    });

    it('rolls a bad image back by itself while the old replicas keep serving, and never loops', SLOW, async () => {
      const db = await setUp({ STEADY_BACKOFF_BASE: '50ms', STEADY_BACKOFF_MAX: '100ms' });
      for (let i = 0; i < 2; i++) await insertNode(db, { cpu: 8, memoryMb: 16384 });
      const id = await deploy({ strategy: { max_unavailable: 0, max_surge: 1 } });
      await drive(async () => (await status(id)).rollout.state === 'complete');

      await call('PATCH', `/api/deployment/${id}`, { container_image: 'web:fail' });
      let minRunning = Infinity;
      await drive(
        async () => {
          const s = await status(id);
          return s.revision === 3 && s.rollout.state === 'complete';
        },
        async () => {
          minRunning = Math.min(minRunning, (await running(id)).reduce((a, c) => a + c.n, 0));
        },
      );
      // max_unavailable 0: the four old replicas served throughout.
      expect(minRunning).toBe(4);
      const s = await status(id);
      // Revision 3 has revision 1's template: the old replicas are up to date and kept, not replaced.
      expect(s.rollout).toMatchObject({ state: 'complete', revision: 3, updated_replicas: 4, available_replicas: 4 });
      expect(await running(id)).toEqual([{ revision: 1, n: 4 }]);
      const history = (await db.selectFrom('deployment_status_history').select(['old_status', 'new_status', 'reason', 'changed_by']).where('deployment_id', '=', id).orderBy('changed_at').execute())
        .filter((h) => h.old_status.startsWith('r'));
      expect(history.map((h) => [h.old_status, h.new_status])).toEqual([
        ['rollout:progressing', 'rollout:complete'],
        ['revision:1', 'revision:2'],
        ['rollout:progressing', 'rollout:failed'],
        ['revision:2', 'revision:3'],
        ['rollout:progressing', 'rollout:complete'],
      ]);
      expect(history[2]!.reason).toMatch(/^Rollout failed: CrashLoopBackOff: \d+ replicas of revision 2 failed and none became available$/);
      expect(history[3]).toMatchObject({ reason: 'Rolled back to revision 1 (template of revision 1)', changed_by: null });
      expect((await call('GET', `/api/deployment/${id}/revisions`)).json.items).toHaveLength(3);
    });

    it('rolls back by hand (422 for an unknown revision, 409 for the current template), pauses and resumes', SLOW, async () => {
      const db = await setUp();
      for (let i = 0; i < 2; i++) await insertNode(db, { cpu: 8, memoryMb: 16384 });
      const id = await deploy({ target_replicas: 2 });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      expect((await call('POST', `/api/deployment/${id}/rollback`, {})).status).toBe(422);

      const paused = await call('POST', `/api/deployment/${id}/pause`);
      expect(paused.status).toBe(200);
      expect(paused.json.rollout.state).toBe('paused');
      await call('PATCH', `/api/deployment/${id}`, { container_image: 'web:2', target_replicas: 3 });
      // Paused: it scales (with the template that runs), but makes no step.
      await drive(async () => (await running(id)).reduce((a, c) => a + c.n, 0) === 3);
      await new Promise((r) => setTimeout(r, 300));
      expect(await running(id)).toEqual([{ revision: 1, n: 3 }]);
      // None of the three runs the desired template (revision 2's): none is updated, none counts as available.
      expect((await status(id)).rollout).toEqual({ state: 'paused', revision: 2, updated_replicas: 0, available_replicas: 0, reason: null });

      const resumed = await call('POST', `/api/deployment/${id}/resume`);
      expect(resumed.json.rollout.state).toBe('progressing');
      await drive(async () => (await status(id)).rollout.state === 'complete');
      expect(await running(id)).toEqual([{ revision: 2, n: 3 }]);

      expect((await call('POST', `/api/deployment/${id}/rollback`, { revision: 9 })).status).toBe(422);
      expect((await call('POST', `/api/deployment/${id}/rollback`, { revision: 2 })).status).toBe(409);
      const undone = await call('POST', `/api/deployment/${id}/rollback`, {});
      expect(undone.status).toBe(200);
      expect(undone.json).toMatchObject({ revision: 3, rollout: { state: 'progressing', revision: 3 } });
      expect(undone.json.recent_status_changes.find((c) => c.new_status === 'revision:3')).toMatchObject({ old_status: 'revision:2', new_status: 'revision:3', reason: 'Rolled back to revision 1 (template of revision 1)' });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      expect(await running(id)).toEqual([{ revision: 3, n: 3 }]);
      const changes = (await status(id)).recent_status_changes.map((c) => c.reason);
      expect(changes).toEqual(expect.arrayContaining(['Rollout paused', 'Rollout resumed']));
    });

    it('recreate stops every old replica before it starts a new one', SLOW, async () => {
      const db = await setUp();
      await insertNode(db, { cpu: 8, memoryMb: 16384 });
      const id = await deploy({ target_replicas: 3, strategy: { type: 'recreate' } });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      await call('PATCH', `/api/deployment/${id}`, { env: { MODE: 'b' } });
      await drive(
        async () => (await status(id)).rollout.state === 'complete',
        async () => {
          const { rows } = await sql<{ revisions: number }>`
            SELECT count(DISTINCT revision)::int AS revisions FROM deployment_replicas
            WHERE deployment_id = ${id} AND status IN ('pending', 'starting', 'running', 'stopping')`.execute(db);
          expect(rows[0]!.revisions).toBeLessThanOrEqual(1);
        },
      );
      expect(await running(id)).toEqual([{ revision: 2, n: 3 }]);
    });

    it('serialises concurrent PATCHes of one deployment: each template change is a revision of its own, none lost', SLOW, async () => {
      const db = await setUp();
      await insertNode(db, { cpu: 8, memoryMb: 16384 });
      const id = await deploy({ target_replicas: 1 });
      const images = Array.from({ length: 12 }, (_, i) => `web:${i + 2}`);
      const answers = await Promise.all(images.map((image) => call('PATCH', `/api/deployment/${id}`, { container_image: image })));
      expect(answers.map((a) => a.status)).toEqual(images.map(() => 200));
      // Every PATCH took the row lock in turn: one unbroken chain revision:1 → … → revision:13, one
      // revision per request, each naming the image its request set.
      // (Row ids come from a sequence taken before the lock: order by revision, not by id.)
      const chain = (
        await db
          .selectFrom('deployment_status_history')
          .select(['old_status', 'new_status', 'reason'])
          .where('deployment_id', '=', id)
          .where('old_status', 'like', 'revision:%')
          .execute()
      ).sort((x, y) => Number(x.old_status.slice(9)) - Number(y.old_status.slice(9)));
      expect(chain.map((c) => [c.old_status, c.new_status])).toEqual(Array.from({ length: 12 }, (_, i) => [`revision:${i + 1}`, `revision:${i + 2}`]));
      const set = chain.map((c) => /→ (web:\d+)$/.exec(c.reason ?? '')?.[1]);
      expect([...set].sort()).toEqual([...images].sort());
      // Retention keeps the last 10 (and revision 1, which still has the replica), each with the image its row names.
      const kept = await db.selectFrom('deployment_revisions').select(['revision', 'container_image']).where('deployment_id', '=', id).execute();
      for (const k of kept.filter((r) => r.revision > 1)) expect(k.container_image).toBe(set[k.revision - 2]);
      const last = { revision: 13 };
      await drive(async () => (await status(id)).rollout.state === 'complete');
      expect((await status(id)).replicas.filter((r) => r.status === 'running').map((r) => r.revision)).toEqual([last.revision]);
    });

    it('counts the progress deadline from a start, not from before the deployment was stopped', SLOW, async () => {
      const db = await setUp();
      // No node yet: the first rollout cannot progress.
      const id = await deploy({ target_replicas: 2 });
      await expect.poll(async () => (await status(id)).status, WAIT).toBe('pending');
      expect((await call('POST', `/api/deployment/${id}/stop`)).status).toBe(200);
      // Stopped for an hour, far past the deadline of 600 s.
      await sql`UPDATE deployments SET rollout_progress_at = now() - interval '1 hour' WHERE id = ${id}`.execute(db);
      expect((await call('POST', `/api/deployment/${id}/start`)).status).toBe(200);
      await insertNode(db, { cpu: 8, memoryMb: 16384 });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      const failed = await db.selectFrom('deployment_status_history').select('reason').where('deployment_id', '=', id).where('new_status', '=', 'rollout:failed').execute();
      expect(failed).toEqual([]);
    });

    it('proceeds by replacement when the surge fits nowhere and max_unavailable allows', SLOW, async () => {
      const db = await setUp();
      await insertNode(db, { cpu: 3, memoryMb: 16384 });
      const id = await deploy({ target_replicas: 3, strategy: { max_surge: 1, max_unavailable: 1 } });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      await call('PATCH', `/api/deployment/${id}`, { container_image: 'web:2' });
      let minRunning = Infinity;
      await drive(
        async () => (await status(id)).rollout.state === 'complete',
        async () => {
          minRunning = Math.min(minRunning, (await running(id)).reduce((a, c) => a + c.n, 0));
        },
      );
      // One old replica at a time made room for one new: never below N − 1 running, never blocked.
      expect(minRunning).toBeGreaterThanOrEqual(2);
      expect(await running(id)).toEqual([{ revision: 2, n: 3 }]);
      const blocked = await db.selectFrom('deployment_status_history').select('reason').where('deployment_id', '=', id).where('new_status', '=', 'rollout:blocked').execute();
      expect(blocked).toEqual([]);
    });

    it('says RolloutBlocked, once, when the surge fits nowhere and max_unavailable is 0', SLOW, async () => {
      const db = await setUp();
      await insertNode(db, { cpu: 3, memoryMb: 16384 });
      const id = await deploy({ target_replicas: 3, strategy: { max_surge: 1, max_unavailable: 0 } });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      await call('PATCH', `/api/deployment/${id}`, { container_image: 'web:2' });
      await expect.poll(async () => (await status(id)).rollout.reason, WAIT).toMatch(/^RolloutBlocked: Unschedulable: 0\/1 nodes are available: 1 insufficient cpu$/);
      await agents();
      await new Promise((r) => setTimeout(r, 300));
      expect(await running(id)).toEqual([{ revision: 1, n: 3 }]);
      const blocked = await db.selectFrom('deployment_status_history').select('reason').where('deployment_id', '=', id).where('new_status', '=', 'rollout:blocked').execute();
      expect(blocked).toHaveLength(1);
      // Room appears: the rollout goes on by itself and the reason clears.
      await insertNode(db, { cpu: 8, memoryMb: 16384 });
      await drive(async () => (await status(id)).rollout.state === 'complete');
      expect((await status(id)).rollout.reason).toBeNull();
    });
  });
}
