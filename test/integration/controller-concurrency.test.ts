import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import type { Database } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { seededRandom } from '../support/chaos-cluster.js';
import { testContext } from '../support/context.js';
import {
  agentsTick,
  driftedAllocations,
  heartbeat,
  insertDeployment,
  insertNode,
  insertUser,
  overcommittedNodes,
  setDeploymentStatus,
  setTarget,
} from '../support/fixtures.js';
import { changeDeployment } from '../../src/db/queries/rollout-commands.js';
import { NotFoundError } from '../../src/domain/errors.js';
import { PATIENCE_MS } from '../support/patience.js';

const DEPLOYMENTS = 40;
const OPERATIONS = 400;

describe('three controllers against one PostgreSQL, all acting at once', () => {
  let testDb: TestDatabase;
  const controllers: Controller[] = [];
  const pools: Database[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    for (let i = 0; i < 3; i++) {
      const database = testDb.openAnother(6);
      pools.push(database);
      const controller = new Controller(testContext(database, { STEADY_CONCURRENCY: '4', STEADY_RESYNC_PERIOD: '1s' }));
      controllers.push(controller);
      await controller.start();
    }
  });

  afterAll(async () => {
    await Promise.all(controllers.map((c) => c.stop()));
    await testDb.destroy();
  });

  it('converges every deployment exactly, never overcommits a node, and records every status change', async () => {
    const seed = Number(process.env.STEADY_TEST_SEED ?? Date.now() % 100_000);
    const rand = seededRandom(seed);
    const db = testDb.database.db;
    // Tight capacity: 6 nodes × 4 cores cannot hold every target at once, so placement contends.
    const nodeIds: string[] = [];
    for (let i = 0; i < 6; i++) nodeIds.push(await insertNode(db, { cpu: 4, memoryMb: 8192 }));
    const user = await insertUser(db);
    const ids: string[] = [];
    for (let i = 0; i < DEPLOYMENTS; i++) {
      const id = await insertDeployment(db, { userId: user, target: 1 + Math.floor(rand() * 4), cpu: rand() < 0.5 ? 0.5 : 1 });
      // Capacity this tight often has room for no surge: rollouts may take one replica down instead.
      await sql`UPDATE deployments SET strategy = jsonb_set(strategy, '{max_unavailable}', '1') WHERE id = ${id}`.execute(db);
      ids.push(id);
    }

    let agentsRunning = true;
    const agents = (async () => {
      while (agentsRunning) {
        await agentsTick(db);
        // One node per statement, as each agent reports its own: a bulk update could deadlock with placement.
        for (const node of nodeIds) await heartbeat(db, [node]);
        await new Promise((r) => setTimeout(r, 30));
      }
    })();

    // The API's own PATCH; a deleted deployment is not found, as the API would answer.
    const changeImage = (id: string, image: string) =>
      changeDeployment(db, user, id, { template: { containerImage: image } }).then(
        () => undefined,
        (err: unknown) => {
          if (!(err instanceof NotFoundError)) throw err;
        },
      );
    const operations = Array.from({ length: OPERATIONS }, () => {
      const id = ids[Math.floor(rand() * ids.length)]!;
      const roll = rand();
      if (roll < 0.45) return () => setTarget(db, id, 1 + Math.floor(rand() * 6));
      // A template change starts a rollout; some go back to an image that ran before.
      const image = `web:${Math.floor(rand() * 3)}`;
      if (roll < 0.6) return () => changeImage(id, image);
      if (roll < 0.75) return () => setDeploymentStatus(db, id, 'stopped');
      if (roll < 0.95) return () => setDeploymentStatus(db, id, 'pending');
      return () => setDeploymentStatus(db, id, 'deleted');
    });
    // Eight drivers at once, like eight API clients.
    const queue = [...operations];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let op = queue.shift(); op; op = queue.shift()) await op();
      }),
    );

    // Tight capacity can hold a rollout where it is: a slot one deployment frees, another takes. With room
    // for everything, every deployment must reach its target on its desired template alone, by itself.
    for (let i = 0; i < 10; i++) nodeIds.push(await insertNode(db, { cpu: 32, memoryMb: 65536 }));
    const unconverged = async (): Promise<number> => {
      const { rows } = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM deployments d
        WHERE d.id = ANY(${ids}::uuid[])
          AND ((SELECT count(*) FROM deployment_replicas r WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running'))
                <> CASE WHEN d.status IN ('stopped', 'deleted', 'failed') THEN 0 ELSE d.target_replicas END
               -- and a live deployment runs its desired template only: every rollout finished
               OR EXISTS (SELECT 1 FROM deployment_replicas r
                          JOIN deployment_revisions rv ON rv.deployment_id = r.deployment_id AND rv.revision = r.revision
                          JOIN deployment_revisions cur ON cur.deployment_id = d.id AND cur.revision = d.revision
                          WHERE r.deployment_id = d.id AND r.status IN ('pending', 'starting', 'running')
                            AND rv.template_revision <> cur.template_revision))`.execute(db);
      return rows[0]!.n;
    };
    await expect.poll(unconverged, { timeout: PATIENCE_MS, interval: 100 }).toBe(0);
    agentsRunning = false;
    await agents;
    // Stopping waits for the reconciles in flight; timers (a rollout's deadline) may stay set for minutes.
    await Promise.all(controllers.map((c) => c.stop()));

    expect(await unconverged(), `seed ${seed}`).toBe(0);
    expect(await overcommittedNodes(db), `seed ${seed}`).toEqual([]);
    expect(await driftedAllocations(db), `seed ${seed}`).toEqual([]);

    // Every status change has its history row: per deployment, the status rows form one unbroken chain
    // from creation to the current status.
    const history = await db
      .selectFrom('deployment_status_history')
      .select(['deployment_id', 'old_status', 'new_status'])
      .where('deployment_id', 'in', ids)
      .where('old_status', 'not like', 'replicas:%')
      .where('old_status', 'not like', 'revision:%')
      .where('old_status', 'not like', 'rollout:%')
      .orderBy('changed_at')
      .orderBy('id')
      .execute();
    const current = await db.selectFrom('deployments').select(['id', 'status']).where('id', 'in', ids).execute();
    const broken: string[] = [];
    for (const d of current) {
      let status = 'none';
      for (const h of history.filter((row) => row.deployment_id === d.id)) {
        if (h.old_status !== status) broken.push(`${d.id}: ${status} then ${h.old_status}→${h.new_status}`);
        status = h.new_status;
      }
      if (status !== d.status) broken.push(`${d.id}: history ends at ${status}, deployment is ${d.status}`);
    }
    expect(broken, `seed ${seed}`).toEqual([]);
  });
});
