import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { describeBackends } from '../support/databases.js';
import { PATIENCE_MS } from '../support/patience.js';

/** The seed's testing checklist, on every backend. */
describeBackends('schema', (t) => {
  const db = () => t().database.db;

  const newUser = async (subject: string) =>
    db().insertInto('users').values({ subject }).returning('id').executeTakeFirstOrThrow();
  /** A deployment and its revision 1 (what its replicas are priced by). */
  const newDeployment = async (userId: string, name: string) => {
    const d = await db()
      .insertInto('deployments')
      .values({ name, user_id: userId, container_image: 'nginx:1.27', target_replicas: 3 })
      .returning(['id', 'status', 'target_replicas', 'created_at', 'deleted_at'])
      .executeTakeFirstOrThrow();
    await db()
      .insertInto('deployment_revisions')
      .values({ deployment_id: d.id, revision: 1, template_revision: 1, container_image: 'nginx:1.27', cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 })
      .execute();
    return d;
  };
  const newNode = async (name: string) =>
    db()
      .insertInto('nodes')
      .values({ name, cpu_cores: 4, memory_mb: 8192, storage_gb: 100 })
      .returning('id')
      .executeTakeFirstOrThrow();
  const expectRejected = async (query: Promise<unknown>, code: string) => {
    await expect(query).rejects.toMatchObject({ code });
  };

  it('fills the seed defaults', async () => {
    const user = await newUser('defaults');
    const d = await newDeployment(user.id, 'web');
    expect(d.status).toBe('pending');
    expect(d.deleted_at).toBeNull();
    expect(d.created_at).toBeInstanceOf(Date);
    const r = await db().insertInto('deployment_replicas').values({ deployment_id: d.id, revision: 1 }).returning(['status', 'node_id']).executeTakeFirstOrThrow();
    expect(r).toEqual({ status: 'pending', node_id: null });
    const res = await db()
      .insertInto('deployment_resources')
      .values({ deployment_id: d.id, cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 })
      .returning(['gpu_units', 'cpu_cores'])
      .executeTakeFirstOrThrow();
    expect(res).toEqual({ gpu_units: 0, cpu_cores: 0.5 });
  });

  it('keeps names unique per user among live deployments, and frees a name on soft delete', async () => {
    const alice = await newUser('alice-unique');
    const bob = await newUser('bob-unique');
    const first = await newDeployment(alice.id, 'api');
    await expectRejected(newDeployment(alice.id, 'api'), '23505');
    await newDeployment(bob.id, 'api'); // another user may use the name

    await db().updateTable('deployments').set({ deleted_at: new Date(), status: 'deleted' }).where('id', '=', first.id).execute();
    const again = await newDeployment(alice.id, 'api');
    expect(again.id).not.toBe(first.id);
    // Soft delete preserves the row and its data.
    const kept = await db().selectFrom('deployments').selectAll().where('id', '=', first.id).executeTakeFirstOrThrow();
    expect(kept.status).toBe('deleted');
    expect(kept.deleted_at).toBeInstanceOf(Date);
    expect(kept.container_image).toBe('nginx:1.27');
  });

  it('cascades a deployment delete to replicas, resources, revisions and history', async () => {
    const user = await newUser('cascade');
    const d = await newDeployment(user.id, 'cascade');
    await db().insertInto('deployment_replicas').values([{ deployment_id: d.id, revision: 1 }, { deployment_id: d.id, revision: 1 }]).execute();
    await db().insertInto('deployment_resources').values({ deployment_id: d.id, cpu_cores: 1, memory_mb: 512, storage_gb: 1 }).execute();
    await db().insertInto('deployment_status_history').values({ deployment_id: d.id, old_status: 'pending', new_status: 'running' }).execute();

    await db().deleteFrom('deployments').where('id', '=', d.id).execute();
    for (const table of ['deployment_replicas', 'deployment_resources', 'deployment_revisions', 'deployment_status_history'] as const) {
      const { count } = await db().selectFrom(table).select((eb) => eb.fn.countAll<number>().as('count')).where('deployment_id', '=', d.id).executeTakeFirstOrThrow();
      expect(Number(count)).toBe(0);
    }
  });

  it('deletes a user’s deployments with the user, and nulls changed_by and node_id when they go', async () => {
    const owner = await newUser('owner');
    const actor = await newUser('actor');
    const d = await newDeployment(owner.id, 'nulls');
    const node = await newNode('node-nulls');
    const replica = await db().insertInto('deployment_replicas').values({ deployment_id: d.id, node_id: node.id, revision: 1 }).returning('id').executeTakeFirstOrThrow();
    const history = await db()
      .insertInto('deployment_status_history')
      .values({ deployment_id: d.id, old_status: 'replicas:3', new_status: 'replicas:5', changed_by: actor.id, reason: 'User-initiated scaling' })
      .returning('id')
      .executeTakeFirstOrThrow();

    await db().deleteFrom('nodes').where('id', '=', node.id).execute();
    await db().deleteFrom('users').where('id', '=', actor.id).execute();
    expect((await db().selectFrom('deployment_replicas').select('node_id').where('id', '=', replica.id).executeTakeFirstOrThrow()).node_id).toBeNull();
    expect((await db().selectFrom('deployment_status_history').select('changed_by').where('id', '=', history.id).executeTakeFirstOrThrow()).changed_by).toBeNull();

    await db().deleteFrom('users').where('id', '=', owner.id).execute();
    expect(await db().selectFrom('deployments').select('id').where('id', '=', d.id).executeTakeFirst()).toBeUndefined();
  });

  it('rejects unknown enum values and orphans', async () => {
    const user = await newUser('enums');
    const d = await newDeployment(user.id, 'enums');
    await expectRejected(sql`UPDATE deployments SET status = 'exploded' WHERE id = ${d.id}`.execute(db()), '22P02');
    await expectRejected(sql`INSERT INTO deployment_replicas (deployment_id, status) VALUES (${d.id}, 'zombie')`.execute(db()), '22P02');
    await expectRejected(sql`UPDATE nodes SET status = 'on_fire'`.execute(db()), '22P02');
    const ghost = '00000000-0000-4000-8000-000000000000';
    await expectRejected(db().insertInto('deployment_replicas').values({ deployment_id: ghost, revision: 1 }).execute(), '23503');
    await expectRejected(db().insertInto('deployment_resources').values({ deployment_id: ghost, cpu_cores: 1, memory_mb: 512, storage_gb: 1 }).execute(), '23503');
    await expectRejected(db().insertInto('deployments').values({ name: 'x', user_id: ghost, container_image: 'x' }).execute(), '23503');
    await expectRejected(db().insertInto('deployment_replicas').values({ deployment_id: d.id, node_id: ghost, revision: 1 }).execute(), '23503');
  });

  it('loads a deployment with its replicas, resources and history', async () => {
    const user = await newUser('relations');
    const d = await newDeployment(user.id, 'relations');
    await db().insertInto('deployment_resources').values({ deployment_id: d.id, cpu_cores: 2, memory_mb: 4096, storage_gb: 10 }).execute();
    await db().insertInto('deployment_replicas').values([{ deployment_id: d.id, revision: 1 }, { deployment_id: d.id, status: 'running', revision: 1 }]).execute();
    await db().insertInto('deployment_status_history').values({ deployment_id: d.id, old_status: 'pending', new_status: 'scheduled' }).execute();
    const { rows } = await sql<{ name: string; replicas: number; running: number; memory_mb: number; history: number }>`
      SELECT d.name, count(DISTINCT r.id)::int AS replicas, count(DISTINCT r.id) FILTER (WHERE r.status = 'running')::int AS running,
             res.memory_mb, count(DISTINCT h.id)::int AS history
      FROM deployments d
      JOIN deployment_resources res ON res.deployment_id = d.id
      LEFT JOIN deployment_replicas r ON r.deployment_id = d.id
      LEFT JOIN deployment_status_history h ON h.deployment_id = d.id
      WHERE d.id = ${d.id}
      GROUP BY d.name, res.memory_mb`.execute(db());
    expect(rows).toEqual([{ name: 'relations', replicas: 2, running: 1, memory_mb: 4096, history: 1 }]);
  });

  it('notifies the deployment id once per statement, and not for quiet (controller) writes', async () => {
    const database = t().database;
    const received: string[] = [];
    const listener = await database.listen(['steady_deployment'], { onNotification: (n) => received.push(n.payload) });
    try {
      const user = await newUser('notify');
      const d = await newDeployment(user.id, 'notify');
      await db().insertInto('deployment_replicas').values([{ deployment_id: d.id, revision: 1 }, { deployment_id: d.id, revision: 1 }, { deployment_id: d.id, revision: 1 }]).execute();
      await db().transaction().execute(async (trx) => {
        await sql`SELECT set_config('steady.quiet', 'on', true)`.execute(trx);
        await trx.updateTable('deployment_replicas').set({ status: 'starting' }).where('deployment_id', '=', d.id).execute();
      });
      await db().updateTable('deployment_replicas').set({ status: 'running' }).where('deployment_id', '=', d.id).execute();
      await expect.poll(() => received.length, { timeout: PATIENCE_MS }).toBe(3);
      expect(received).toEqual([d.id, d.id, d.id]);
    } finally {
      await listener.close();
    }
  });
});
