import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { loadMigrations, Migrator, parseMigration } from '../../src/db/migrator.js';
import { describeBackends } from '../support/databases.js';
import { driftedAllocations } from '../support/fixtures.js';

const SEED_TABLES = ['deployments', 'deployment_replicas', 'deployment_resources', 'deployment_status_history'];
const SEED_INDEXES = [
  'idx_deployments_user_active',
  'idx_deployments_user_name_unique',
  'idx_replicas_deployment_status',
  'idx_status_history_deployment_time',
];

it('parses the up and down sections of every migration file', () => {
  const migrations = loadMigrations();
  expect(migrations.map((m) => m.version)).toEqual(['0001', '0002', '0003', '0004', '0005', '0006', '0007', '0008', '0009', '0010', '0011', '0012', '0013', '0014', '0015', '0016', '0017', '0018', '0019']);
  for (const m of migrations) {
    expect(m.up.length).toBeGreaterThan(0);
    expect(m.down.length).toBeGreaterThan(0);
    expect(m.up).not.toContain('migrate:down');
  }
  expect(() => parseMigration('0003_bad.sql', 'SELECT 1;')).toThrow(/migrate:up/);
});

describeBackends(
  'migrations',
  (t) => {
    const tables = async (): Promise<string[]> => {
      const { rows } = await sql<{ table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`.execute(t().database.db);
      return rows.map((r) => r.table_name);
    };

    it('status and sql change nothing on a database never migrated', async () => {
      const migrator = new Migrator(t().database);
      expect(await tables()).toEqual([]);
      expect((await migrator.status()).every((m) => m.appliedAt === null)).toBe(true);
      expect(await migrator.pendingSql()).toContain('CREATE TABLE deployments');
      expect(await migrator.tablesDroppedWithRows(loadMigrations().length)).toEqual([]);
      expect(await tables()).toEqual([]);
    });

    it('applies cleanly, reports status, rolls back cleanly and re-applies', async () => {
      const migrator = new Migrator(t().database);
      expect((await migrator.status()).every((m) => m.appliedAt === null)).toBe(true);
      expect(await migrator.isCurrent()).toBe(false);
      expect(await migrator.pendingSql()).toContain('CREATE TABLE deployments');

      const applied = await migrator.up();
      expect(applied.map((s) => s.version)).toEqual(['0001', '0002', '0003', '0004', '0005', '0006', '0007', '0008', '0009', '0010', '0011', '0012', '0013', '0014', '0015', '0016', '0017', '0018', '0019']);
      expect(await migrator.isCurrent()).toBe(true);
      expect(await migrator.pendingSql()).toBe('');
      expect(await tables()).toEqual(expect.arrayContaining([...SEED_TABLES, 'users', 'nodes', 'steady_leader', 'steady_events']));
      expect(await migrator.up()).toEqual([]);

      const down = await migrator.down(18);
      expect(down.map((s) => s.version)).toEqual(['0019', '0018', '0017', '0016', '0015', '0014', '0013', '0012', '0011', '0010', '0009', '0008', '0007', '0006', '0005', '0004', '0003', '0002']);
      expect(await tables()).not.toContain('steady_leader');
      expect(await tables()).not.toContain('steady_events');
      expect(await migrator.isCurrent()).toBe(false);

      await migrator.down(5);
      expect(await tables()).toEqual(['steady_migrations']);
      const { rows: types } = await sql<{ typname: string }>`
        SELECT typname FROM pg_type WHERE typname IN ('deploymentstatus', 'replicastatus', 'nodestatus')`.execute(t().database.db);
      expect(types).toEqual([]);

      await migrator.up();
      expect(await migrator.isCurrent()).toBe(true);
      const { rows: indexes } = await sql<{ indexname: string }>`
        SELECT indexname FROM pg_indexes WHERE schemaname = 'public'`.execute(t().database.db);
      expect(indexes.map((i) => i.indexname)).toEqual(expect.arrayContaining(SEED_INDEXES));
    });

    it('keeps node allocation exact on either side of 0004 (array triggers) and its rollback', async () => {
      const full = new Migrator(t().database);
      await full.up();
      await full.down(loadMigrations().filter((m) => m.version > '0004').length);
      const migrator = new Migrator(t().database, loadMigrations().filter((m) => m.version <= '0004'));
      const db = t().database.db;
      const allocatedCpu = async (node: string) =>
        Number((await sql<{ a: string }>`SELECT allocated_cpu_cores::text AS a FROM nodes WHERE id = ${node}`.execute(db)).rows[0]!.a);
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('alloc-user') RETURNING id`.execute(db);
      const { rows: [node] } = await sql<{ id: string }>`
        INSERT INTO nodes (name, cpu_cores, memory_mb, gpu_units, storage_gb) VALUES ('alloc-node', 4, 4096, 0, 10) RETURNING id`.execute(db);
      const { rows: [dep] } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES ('alloc', ${user!.id}, 'x', 1) RETURNING id`.execute(db);
      await sql`INSERT INTO deployment_resources (deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb) VALUES (${dep!.id}, 1.5, 512, 0, 1)`.execute(db);
      const place = (n: number) =>
        sql`INSERT INTO deployment_replicas (deployment_id, node_id, status) SELECT ${dep!.id}, ${node!.id}, 'pending' FROM generate_series(1, ${n}::int)`.execute(db);
      for (const version of ['0004', '0003', '0004']) {
        if (version === '0003') await migrator.down(1);
        else await migrator.up();
        await sql`DELETE FROM deployment_replicas WHERE deployment_id = ${dep!.id}`.execute(db);
        expect(await allocatedCpu(node!.id), version).toBe(0);
        await place(2);
        expect(await allocatedCpu(node!.id), version).toBe(3);
        await sql`UPDATE deployment_replicas SET status = 'stopped' WHERE id = (SELECT id FROM deployment_replicas WHERE deployment_id = ${dep!.id} LIMIT 1)`.execute(db);
        expect(await allocatedCpu(node!.id), version).toBe(1.5);
        await expect(place(2), version).rejects.toMatchObject({ code: 'ST001' });
        expect(await allocatedCpu(node!.id), version).toBe(1.5);
      }
      // Resources deleted on their own release what their replicas held.
      await sql`DELETE FROM deployment_resources WHERE deployment_id = ${dep!.id}`.execute(db);
      expect(await allocatedCpu(node!.id)).toBe(0);
      await sql`DELETE FROM deployment_replicas WHERE deployment_id = ${dep!.id}`.execute(db);
      expect(await allocatedCpu(node!.id)).toBe(0);
      await sql`INSERT INTO deployment_resources (deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb) VALUES (${dep!.id}, 1.5, 512, 0, 1)`.execute(db);
      // A hard delete cascades to resources and replicas: the allocation goes with them.
      await place(2);
      expect(await allocatedCpu(node!.id)).toBe(3);
      await sql`DELETE FROM deployments WHERE id = ${dep!.id}`.execute(db);
      expect(await allocatedCpu(node!.id)).toBe(0);
    });

    it('rolls back a failing migration entirely, leaving no bookkeeping row', async () => {
      const broken = [
        ...loadMigrations(),
        { version: '0099', name: 'broken', up: 'CREATE TABLE half_done (id int);\nSELECT no_such_function();', down: 'DROP TABLE half_done;' },
      ];
      const migrator = new Migrator(t().database, broken);
      await expect(migrator.up()).rejects.toThrow(/0099.*no_such_function/);
      expect(await tables()).not.toContain('half_done');
      const state = await migrator.status();
      expect(state.find((s) => s.version === '0099')?.appliedAt).toBeNull();
      expect(state.find((s) => s.version === '0003')?.appliedAt).not.toBeNull();
      // The session is usable again afterwards.
      expect(await new Migrator(t().database).isCurrent()).toBe(true);
    });

    it('names the tables a rollback would drop while they hold rows, and changes nothing', async () => {
      const migrator = new Migrator(t().database);
      await migrator.up();
      const db = t().database.db;
      // What the earlier tests left: one user and one node; no deployment, no lease.
      expect((await db.selectFrom('deployments').select('id').execute()).length).toBe(0);
      const before = await tables();
      const all = loadMigrations().length;
      // The last one to be rolled back first: what its down drops is empty here, or holds rows and is named.
      const dropped = await migrator.tablesDroppedWithRows(all);
      expect(dropped).toEqual(expect.arrayContaining([
        { table: 'nodes', rows: 1 },
        { table: 'users', rows: 1 },
      ]));
      expect(dropped.map((d) => d.table)).not.toContain('deployments');
      expect(dropped.map((d) => d.table)).not.toContain('steady_leader');
      expect(dropped.every((d) => d.rows > 0)).toBe(true);
      expect((await migrator.tablesDroppedWithRows(all - 1)).map((d) => d.table)).not.toContain('users');
      expect(await tables()).toEqual(before);
      expect(await migrator.isCurrent()).toBe(true);
    });

    it('upgrades live, placed replicas to revisions (0006), down past 0003 and up again, with allocation exact throughout', async () => {
      const db = t().database.db;
      const full = new Migrator(t().database);
      await full.down(loadMigrations().length - 1);
      const upTo = (version: string) => new Migrator(t().database, loadMigrations().filter((m) => m.version <= version)).up();
      await upTo('0004');
      // A 0004 database in use: two nodes, two deployments, replicas in every status, some unscheduled.
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('upgrade-user') RETURNING id`.execute(db);
      const { rows: nodes } = await sql<{ id: string }>`
        INSERT INTO nodes (name, cpu_cores, memory_mb, gpu_units, storage_gb)
        VALUES ('up-a', 8, 16384, 2, 100), ('up-b', 8, 16384, 2, 100) RETURNING id`.execute(db);
      const deployment = async (name: string, cpu: number, mem: number, gpu: number) => {
        const { rows: [d] } = await sql<{ id: string }>`
          INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES (${name}, ${user!.id}, ${`${name}:1`}, 3) RETURNING id`.execute(db);
        await sql`INSERT INTO deployment_resources (deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb)
                  VALUES (${d!.id}, ${cpu}, ${mem}, ${gpu}, 2)`.execute(db);
        return d!.id;
      };
      const web = await deployment('web', 0.5553, 700, 0);
      const gpu = await deployment('gpu', 1.25, 1024, 1);
      const place = (d: string, node: string | null, status: string) =>
        sql`INSERT INTO deployment_replicas (deployment_id, node_id, status) VALUES (${d}, ${node}, ${status}::replicastatus)`.execute(db);
      for (const status of ['pending', 'starting', 'running', 'stopping', 'stopped', 'failed']) await place(web, nodes[0]!.id, status);
      await place(web, nodes[1]!.id, 'running');
      await place(web, null, 'pending');
      await place(gpu, nodes[1]!.id, 'running');
      await place(gpu, nodes[1]!.id, 'stopping');

      // Per node: [millicores, memory, gpu, storage] of the allocating replicas (0.5553 cores → 556 millicores).
      const expected = { [nodes[0]!.id]: [4 * 556, 4 * 700, 0, 8], [nodes[1]!.id]: [556 + 2 * 1250, 700 + 2 * 1024, 2, 6] };
      const expectExact = async (when: string) => {
        for (const [node, [cpu, mem, gpus, sto]] of Object.entries(expected)) {
          const { rows: [n] } = await sql<{ cpu: string; mem: string; gpu: string; sto: string; cores: string }>`
            SELECT allocated_cpu_millicores::text AS cpu, allocated_memory_mb::text AS mem, allocated_gpu_units::text AS gpu,
                   allocated_storage_gb::text AS sto, allocated_cpu_cores::text AS cores FROM nodes WHERE id = ${node}`.execute(db);
          expect([Number(n!.cpu), Number(n!.mem), Number(n!.gpu), Number(n!.sto)], when).toEqual([cpu, mem, gpus, sto]);
          expect(Number(n!.cores), when).toBe(cpu! / 1000);
        }
        expect(await driftedAllocations(db), when).toEqual([]);
      };

      await upTo('0006');
      await expectExact('after the upgrade');
      const { rows: revisions } = await sql<{ deployment_id: string; revision: number; container_image: string; cpu_millicores: number }>`
        SELECT deployment_id, revision, container_image, cpu_millicores FROM deployment_revisions ORDER BY container_image`.execute(db);
      expect(revisions).toEqual([
        { deployment_id: gpu, revision: 1, container_image: 'gpu:1', cpu_millicores: 1250 },
        { deployment_id: web, revision: 1, container_image: 'web:1', cpu_millicores: 556 },
      ]);
      const { rows: deployments } = await sql<{ revision: number; rollout_state: string; stable_revision: number }>`
        SELECT revision, rollout_state, stable_revision FROM deployments`.execute(db);
      expect(deployments).toEqual([
        { revision: 1, rollout_state: 'complete', stable_revision: 1 },
        { revision: 1, rollout_state: 'complete', stable_revision: 1 },
      ]);
      const { rows: replicaRevisions } = await sql<{ revision: number }>`SELECT DISTINCT revision FROM deployment_replicas`.execute(db);
      expect(replicaRevisions).toEqual([{ revision: 1 }]);
      // A replica must name its revision from now on.
      await expect(place(web, nodes[0]!.id, 'pending')).rejects.toMatchObject({ code: '23502' });

      // Placements and releases after the upgrade stay exact: a new revision with other resources
      // prices only its own replicas.
      await sql`INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb)
                VALUES (${web}, 2, 2, 'web:2', 0.1, 512, 0, 1)`.execute(db);
      for (let i = 0; i < 3; i++) {
        await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${web}, ${nodes[0]!.id}, 'pending', 2)`.execute(db);
      }
      await sql`UPDATE deployment_resources SET cpu_cores = 0.1, memory_mb = 512, storage_gb = 1 WHERE deployment_id = ${web}`.execute(db);
      expected[nodes[0]!.id] = [4 * 556 + 300, 4 * 700 + 3 * 512, 0, 8 + 3];
      await expectExact('with two revisions');
      await sql`UPDATE deployment_replicas SET status = 'stopped' WHERE deployment_id = ${web} AND revision = 1 AND status = 'running' AND node_id = ${nodes[0]!.id}`.execute(db);
      expected[nodes[0]!.id] = [3 * 556 + 300, 3 * 700 + 3 * 512, 0, 6 + 3];
      await expectExact('after a release');
      // A replica of a revision that does not exist cannot hold anything.
      await expect(
        sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${web}, ${nodes[0]!.id}, 'pending', 9)`.execute(db),
      ).rejects.toMatchObject({ code: 'ST002' });

      // Down past 0003 (its allocation columns go) and up again: recomputed from the replicas, not zero.
      await full.down(4);
      const { rows: [at0002] } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'nodes' AND column_name LIKE 'allocated%'`.execute(db);
      expect(at0002!.n).toBe(0);
      await upTo('0003');
      // 0003 and 0004 price by deployment_resources (the desired template): exact in their own terms.
      const { rows: [legacy] } = await sql<{ mem: string }>`SELECT allocated_memory_mb::text AS mem FROM nodes WHERE id = ${nodes[1]!.id}`.execute(db);
      expect(Number(legacy!.mem)).toBe(512 + 2 * 1024);
      await full.up();
      // Going down threw the revisions away (0006's comment says so): every replica is revision 1 again,
      // with the template the deployment had (web's desired: 0.1 cores, 512 MB, 1 GB), and priced by it.
      expected[nodes[0]!.id] = [6 * 100, 6 * 512, 0, 6];
      expected[nodes[1]!.id] = [100 + 2 * 1250, 512 + 2 * 1024, 2, 1 + 4];
      await expectExact('down past 0003 and up again');
    });

    it('0009 (and 0010 to 0012 above it) goes down with node events and rollout columns in the log, and up again', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('events-down-user') RETURNING id`.execute(db);
      const { rows: [node] } = await sql<{ id: string }>`INSERT INTO nodes (name, cpu_cores, memory_mb, storage_gb) VALUES ('ev-down', 4, 4096, 10) RETURNING id`.execute(db);
      await sql`UPDATE nodes SET status = 'cordoned' WHERE id = ${node!.id}`.execute(db);
      const { rows: [d] } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES ('ev-down', ${user!.id}, 'web:1', 1) RETURNING id`.execute(db);
      const kinds = async () =>
        (await sql<{ kind: string; n: number }>`SELECT kind::text, count(*)::int AS n FROM steady_events GROUP BY kind ORDER BY kind`.execute(db)).rows;
      expect(await kinds()).toEqual([
        { kind: 'deployment', n: 1 },
        { kind: 'node', n: 2 },
      ]);
      const { rows: [withRollout] } = await sql<{ rollout_state: string; revision: number }>`
        SELECT rollout_state, revision FROM steady_events WHERE deployment_id = ${d!.id}`.execute(db);
      expect(withRollout).toEqual({ rollout_state: 'progressing', revision: 1 });

      expect((await migrator.down(11)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016', '0015', '0014', '0013', '0012', '0011', '0010', '0009']);
      expect(await kinds()).toEqual([{ kind: 'deployment', n: 1 }]);
      const { rows: labels } = await sql<{ label: string }>`
        SELECT e.enumlabel AS label FROM pg_enum e JOIN pg_type ty ON ty.oid = e.enumtypid WHERE ty.typname = 'steady_event_kind' ORDER BY e.enumsortorder`.execute(db);
      expect(labels.map((l) => l.label)).toEqual(['deployment', 'history', 'replica']);
      // 0005's triggers work again, and node changes write nothing.
      await sql`UPDATE nodes SET status = 'ready' WHERE id = ${node!.id}`.execute(db);
      await sql`UPDATE deployments SET target_replicas = 2 WHERE id = ${d!.id}`.execute(db);
      expect(await kinds()).toEqual([{ kind: 'deployment', n: 2 }]);

      await migrator.up();
      await sql`UPDATE nodes SET status = 'draining' WHERE id = ${node!.id}`.execute(db);
      await sql`UPDATE deployments SET paused = true WHERE id = ${d!.id}`.execute(db);
      expect(await kinds()).toEqual([
        { kind: 'deployment', n: 3 },
        { kind: 'node', n: 1 },
      ]);
      const { rows: [paused] } = await sql<{ rollout_state: string }>`
        SELECT rollout_state FROM steady_events WHERE deployment_id = ${d!.id} ORDER BY id DESC LIMIT 1`.execute(db);
      expect(paused!.rollout_state).toBe('paused');
    });

    it('0010 writes the events 0009 wrote, and no node event for an allocation or heartbeat change', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('events-0010') RETURNING id`.execute(db);
      const { rows: [node] } = await sql<{ id: string }>`INSERT INTO nodes (name, cpu_cores, memory_mb, storage_gb) VALUES ('ev-0010', 8, 8192, 100) RETURNING id`.execute(db);
      const nodeEvents = async () =>
        (await sql<{ status: string; subject_name: string }>`
          SELECT status, subject_name FROM steady_events WHERE kind = 'node' AND node_id = ${node!.id} ORDER BY id`.execute(db)).rows;
      // Rolled back to the first template: revision 3 has revision 1's template; revision 2 is another.
      const { rows: [d] } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas, revision, strategy)
        VALUES ('ev-0010', ${user!.id}, 'web:1', 4, 3, '{"type": "rolling", "min_ready_seconds": 60}') RETURNING id`.execute(db);
      const { rows: [created] } = await sql<Record<string, unknown>>`
        SELECT status, target_replicas, running_replicas, failed_replicas, revision, rollout_state, updated_replicas, available_replicas
        FROM steady_events WHERE kind = 'deployment' AND deployment_id = ${d!.id}`.execute(db);
      expect(created).toEqual({
        status: 'pending', target_replicas: 4, running_replicas: 0, failed_replicas: 0, revision: 3,
        rollout_state: 'progressing', updated_replicas: 0, available_replicas: 0,
      });
      await sql`
        INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb)
        VALUES (${d!.id}, 1, 1, 'web:1', 0.5, 64, 0, 1), (${d!.id}, 2, 2, 'web:2', 0.5, 64, 0, 1), (${d!.id}, 3, 1, 'web:1', 0.5, 64, 0, 1)`.execute(db);
      await sql`
        INSERT INTO deployment_replicas (deployment_id, node_id, status, revision, started_at)
        VALUES (${d!.id}, ${node!.id}, 'running', 1, now() - interval '2 minutes'), (${d!.id}, ${node!.id}, 'running', 3, now()),
               (${d!.id}, ${node!.id}, 'pending', 3, NULL), (${d!.id}, ${node!.id}, 'running', 2, now() - interval '2 minutes'),
               (${d!.id}, ${node!.id}, 'failed', 1, NULL), (${d!.id}, ${node!.id}, 'stopped', 3, NULL)`.execute(db);
      const counts = async () => {
        await sql`SELECT steady_events_deployments(ARRAY[${d!.id}]::uuid[])`.execute(db);
        return (await sql<Record<string, unknown>>`
          SELECT status, target_replicas, running_replicas, failed_replicas, revision, rollout_state, updated_replicas, available_replicas
          FROM steady_events WHERE kind = 'deployment' AND deployment_id = ${d!.id} ORDER BY id DESC LIMIT 1`.execute(db)).rows[0];
      };
      const now = await counts();
      expect(now).toMatchObject({ running_replicas: 3, failed_replicas: 1, updated_replicas: 3, available_replicas: 1 });
      await sql`UPDATE nodes SET allocated_memory_mb = allocated_memory_mb + 0, last_heartbeat_at = now() WHERE id = ${node!.id}`.execute(db);
      await sql`UPDATE nodes SET status = 'ready' WHERE id = ${node!.id}`.execute(db);
      expect(await nodeEvents()).toEqual([{ status: 'ready', subject_name: 'ev-0010' }]);
      await sql`UPDATE nodes SET status = 'cordoned' WHERE id = ${node!.id}`.execute(db);
      await sql`UPDATE nodes SET name = 'ev-0010b' WHERE id = ${node!.id}`.execute(db);
      expect(await nodeEvents()).toEqual([
        { status: 'ready', subject_name: 'ev-0010' },
        { status: 'cordoned', subject_name: 'ev-0010' },
        { status: 'cordoned', subject_name: 'ev-0010b' },
      ]);

      expect((await migrator.down(10)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016', '0015', '0014', '0013', '0012', '0011', '0010']);
      expect(await counts()).toEqual(now);
      await sql`UPDATE nodes SET status = 'ready' WHERE id = ${node!.id}`.execute(db);
      expect(await nodeEvents()).toHaveLength(4);
    });

    it('0011 keeps the replicas of one statement in one row, and goes down to one row per replica', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('events-0011') RETURNING id`.execute(db);
      const { rows: [d] } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES ('ev-0011', ${user!.id}, 'web:1', 3) RETURNING id`.execute(db);
      const { rows: inserted } = await sql<{ id: string }>`
        INSERT INTO deployment_replicas (deployment_id, status, revision, reason)
        VALUES (${d!.id}, 'pending', 1, NULL), (${d!.id}, 'pending', 1, 'Unschedulable: no node'), (${d!.id}, 'stopped', 2, NULL)
        RETURNING id`.execute(db);
      const replicaRows = async () =>
        (await sql<{ id: string; subject_id: string | null; replica_ids: string[] | null; replica_reasons: (string | null)[] | null }>`
          SELECT e.id::text, e.subject_id, e.replica_ids, e.replica_reasons FROM steady_events e
          WHERE e.kind = 'replica' AND e.deployment_id = ${d!.id} ORDER BY e.id`.execute(db)).rows;
      const [row, ...others] = await replicaRows();
      expect(others).toEqual([]);
      expect(row).toMatchObject({ subject_id: null, replica_ids: inserted.map((r) => r.id), replica_reasons: [null, 'Unschedulable: no node', null] });
      // The next row's ids start after the block of this one.
      await sql`UPDATE deployment_replicas SET status = 'starting' WHERE id = ${inserted[0]!.id}`.execute(db);
      const [first, second] = await replicaRows();
      expect(BigInt(second!.id) - BigInt(first!.id)).toBeGreaterThanOrEqual(65_536n);

      expect((await migrator.down(9)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016', '0015', '0014', '0013', '0012', '0011']);
      const rowPerReplica = async () =>
        (await sql<{ id: string; subject_id: string }>`
          SELECT e.id::text, e.subject_id FROM steady_events e WHERE e.kind = 'replica' AND e.deployment_id = ${d!.id} ORDER BY e.id`.execute(db)).rows;
      const expanded = await rowPerReplica();
      // The copies come after every id a reader could have seen (the last row's block).
      expect(BigInt(expanded[0]!.id)).toBeGreaterThan(BigInt(second!.id) + 65_535n);
      expect(expanded.map((r) => r.subject_id)).toEqual([...inserted.map((r) => r.id), inserted[0]!.id]);
      const { rows: [one] } = await sql<Record<string, unknown>>`
        SELECT status, reason, revision FROM steady_events WHERE kind = 'replica' AND subject_id = ${inserted[1]!.id}`.execute(db);
      expect(one).toEqual({ status: 'pending', reason: 'Unschedulable: no node', revision: 1 });
      // 0009's triggers again: one row per replica, ids one apart.
      await sql`UPDATE deployment_replicas SET status = 'stopped' WHERE id IN (${inserted[0]!.id}, ${inserted[1]!.id})`.execute(db);
      const after = await rowPerReplica();
      expect(after).toHaveLength(6);
      expect(BigInt(after[5]!.id) - BigInt(after[4]!.id)).toBe(1n);
      await migrator.up();
    });

    it('0012 defers the deployment events of a transaction that asks, to one per deployment, and goes down to one per statement', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('events-0012') RETURNING id`.execute(db);
      const { rows: deployments } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas)
        VALUES ('ev-0012-a', ${user!.id}, 'web:1', 2), ('ev-0012-b', ${user!.id}, 'web:1', 1) RETURNING id`.execute(db);
      const [a, b] = deployments.map((d) => d.id) as [string, string];
      await sql`
        INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb)
        SELECT id, 1, 1, 'web:1', 0.1, 64, 0, 1 FROM deployments WHERE id IN (${a}, ${b})`.execute(db);
      const deploymentEvents = async (id: string, trx = db) =>
        (await sql<{ status: string; updated: number }>`
          SELECT status, updated_replicas AS updated FROM steady_events WHERE kind = 'deployment' AND deployment_id = ${id} ORDER BY id`.execute(trx)).rows;
      const placeBoth = (trx: typeof db) =>
        sql`INSERT INTO deployment_replicas (deployment_id, status, revision)
            VALUES (${a}, 'pending', 1), (${a}, 'pending', 1), (${b}, 'pending', 1)`.execute(trx);

      // Deferred: the inserts note both deployments; the patch of one writes an event for both, once each.
      await db.transaction().execute(async (trx) => {
        await sql`SELECT set_config('steady.deployment_events', 'deferred', true)`.execute(trx);
        await placeBoth(trx);
        expect((await deploymentEvents(a, trx)).length, 'nothing written before the patch').toBe(1);
        await sql`UPDATE deployments SET status = 'scheduled' WHERE id = ${a}`.execute(trx);
        await sql`UPDATE deployments SET status = 'scheduled' WHERE id = ${a}`.execute(trx);
      });
      expect(await deploymentEvents(a)).toEqual([{ status: 'pending', updated: 0 }, { status: 'scheduled', updated: 2 }]);
      expect(await deploymentEvents(b)).toEqual([{ status: 'pending', updated: 0 }, { status: 'pending', updated: 1 }]);
      // With no patch, the flush writes them.
      await db.transaction().execute(async (trx) => {
        await sql`SELECT set_config('steady.deployment_events', 'deferred', true)`.execute(trx);
        await sql`UPDATE deployment_replicas SET status = 'stopped' WHERE deployment_id = ${b}`.execute(trx);
        await sql`SELECT steady_events_flush_deferred(NULL)`.execute(trx);
      });
      expect((await deploymentEvents(b)).map((e) => e.updated)).toEqual([0, 1, 0]);
      // Not deferred: one event per statement, as before.
      await placeBoth(db);
      expect((await deploymentEvents(a)).map((e) => e.updated)).toEqual([0, 2, 4]);

      expect((await migrator.down(8)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016', '0015', '0014', '0013', '0012']);
      await db.transaction().execute(async (trx) => {
        await sql`SELECT set_config('steady.deployment_events', 'deferred', true)`.execute(trx);
        await placeBoth(trx);
      });
      expect((await deploymentEvents(a)).map((e) => e.updated)).toEqual([0, 2, 4, 6]);
      await migrator.up();
    });

    it('0013 leaves room on the pages of nodes, so that updating every node keeps each row on its page', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      // In one transaction: the old row versions stay live until it ends, so a new version must fit
      // beside its old one on the same page (a HOT update) or go to another page and grow the table.
      const growth = () =>
        db.transaction().execute(async (trx) => {
          await sql`INSERT INTO nodes (name, cpu_cores, memory_mb, storage_gb) SELECT 'ff-' || i, 8, 8192, 100 FROM generate_series(1, 200) i`.execute(trx);
          const size = async () => (await sql<{ n: string }>`SELECT pg_relation_size('nodes')::text AS n`.execute(trx)).rows[0]!.n;
          const before = await size();
          await sql`UPDATE nodes SET updated_at = now() WHERE name LIKE 'ff-%'`.execute(trx);
          const after = await size();
          await sql`DELETE FROM nodes WHERE name LIKE 'ff-%'`.execute(trx);
          return { before, after };
        });
      const withRoom = await growth();
      expect(withRoom.after).toBe(withRoom.before);

      expect((await migrator.down(7)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016', '0015', '0014', '0013']);
      await sql`VACUUM FULL nodes`.execute(db);
      const full = await growth();
      expect(BigInt(full.after)).toBeGreaterThan(BigInt(full.before));
      await migrator.up();
      await sql`VACUUM FULL nodes`.execute(db);
    });

    it('0015 leaves waking the event readers to after the commit when the transaction asks, and goes down to waking from inside it', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const heard: string[] = [];
      const listener = await t().database.listen(['steady_events'], { onNotification: (n) => heard.push(n.payload) });
      try {
        // Notifications arrive in commit order: once a marker sent after a transaction is heard, so is anything that transaction sent.
        const mark = async (marker: string) => {
          await sql`SELECT pg_notify('steady_events', ${marker})`.execute(db);
          while (!heard.includes(marker)) await new Promise((r) => setTimeout(r, 5));
        };
        const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('events-0015') RETURNING id`.execute(db);
        const create = (name: string, afterCommit: boolean) =>
          db.transaction().execute(async (trx) => {
            if (afterCommit) await sql`SELECT set_config('steady.events_wake', 'after_commit', true)`.execute(trx);
            await sql`INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES (${name}, ${user!.id}, 'web:1', 1)`.execute(trx);
          });
        const events = async () =>
          (await sql<{ name: string }>`
            SELECT d.name FROM steady_events e JOIN deployments d ON d.id = e.deployment_id
            WHERE e.kind = 'deployment' AND d.user_id = ${user!.id} ORDER BY e.id`.execute(db)).rows.map((r) => r.name);

        await create('ev-0015-a', true);
        await mark('m1');
        expect(heard).toEqual(['m1']);
        await create('ev-0015-b', false);
        await mark('m2');
        expect(heard).toEqual(['m1', '', 'm2']);
        // The events themselves are written either way.
        expect(await events()).toEqual(['ev-0015-a', 'ev-0015-b']);

        expect((await migrator.down(5)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016', '0015']);
        await create('ev-0015-c', true);
        await mark('m3');
        expect(heard).toEqual(['m1', '', 'm2', '', 'm3']);
        await migrator.up();
        await create('ev-0015-d', true);
        await mark('m4');
        expect(heard).toEqual(['m1', '', 'm2', '', 'm3', 'm4']);
      } finally {
        await listener.close();
      }
    });

    it('0016 stamps a node with the transaction that changed what placement reads of it, not with a heartbeat', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const { rows: [node] } = await sql<{ id: string }>`
        INSERT INTO nodes (name, cpu_cores, memory_mb, storage_gb) VALUES ('xid-node', 4, 4096, 10) RETURNING id`.execute(db);
      const stamp = async () =>
        (await sql<{ x: string }>`SELECT changed_xid::text AS x FROM nodes WHERE id = ${node!.id}`.execute(db)).rows[0]!.x;
      /** Runs `change` in a transaction; its id and the node's stamp after it. */
      const inTransaction = (change: ReturnType<typeof sql>) =>
        db.transaction().execute(async (trx) => {
          await change.execute(trx);
          return (await sql<{ x: string }>`SELECT pg_current_xact_id()::text AS x`.execute(trx)).rows[0]!.x;
        });
      const inserted = await stamp();
      await inTransaction(sql`UPDATE nodes SET last_heartbeat_at = now(), updated_at = now() WHERE id = ${node!.id}`);
      expect(await stamp()).toBe(inserted);
      for (const change of [
        sql`UPDATE nodes SET status = 'cordoned' WHERE id = ${node!.id}`,
        sql`UPDATE nodes SET memory_mb = 8192 WHERE id = ${node!.id}`,
        sql`UPDATE nodes SET name = 'xid-node-2' WHERE id = ${node!.id}`,
      ]) {
        const xid = await inTransaction(change);
        expect(await stamp()).toBe(xid);
      }
      expect(BigInt(await stamp())).toBeGreaterThan(BigInt(inserted));

      expect((await migrator.down(4)).map((m) => m.version)).toEqual(['0019', '0018', '0017', '0016']);
      const { rows: columns } = await sql`SELECT 1 FROM information_schema.columns WHERE table_name = 'nodes' AND column_name = 'changed_xid'`.execute(db);
      expect(columns).toEqual([]);
      await inTransaction(sql`UPDATE nodes SET status = 'ready' WHERE id = ${node!.id}`);
      await migrator.up();
      expect(BigInt(await stamp())).toBeGreaterThan(0n);
    });

    it('0017 takes existing deployments as observed at their generation, and new ones as not observed yet', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      expect((await migrator.down(3)).map((m) => m.version)).toEqual(['0019', '0018', '0017']);
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('observed-user') RETURNING id`.execute(db);
      const { rows: [old] } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas, generation)
        VALUES ('observed-old', ${user!.id}, 'web:1', 1, 4) RETURNING id`.execute(db);
      await migrator.up();
      const { rows: [young] } = await sql<{ id: string }>`
        INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES ('observed-new', ${user!.id}, 'web:1', 1) RETURNING id`.execute(db);
      const generations = async () =>
        (await sql<{ id: string; generation: number; observed_generation: number }>`
          SELECT id, generation, observed_generation FROM deployments WHERE user_id = ${user!.id} ORDER BY name`.execute(db)).rows;
      expect(await generations()).toEqual([
        { id: young!.id, generation: 1, observed_generation: 0 },
        { id: old!.id, generation: 4, observed_generation: 4 },
      ]);
      expect((await migrator.down(3)).map((m) => m.version)).toEqual(['0019', '0018', '0017']);
      const { rows: columns } = await sql`SELECT 1 FROM information_schema.columns WHERE table_name = 'deployments' AND column_name = 'observed_generation'`.execute(db);
      expect(columns).toEqual([]);
      await migrator.up();
    });

    it('0018 counts a replica available in a deployment event when it started after the writing transaction did', async () => {
      const db = t().database.db;
      const migrator = new Migrator(t().database);
      await migrator.up();
      const { rows: [user] } = await sql<{ id: string }>`INSERT INTO users (subject) VALUES ('available-user') RETURNING id`.execute(db);
      const { rows: [node] } = await sql<{ id: string }>`
        INSERT INTO nodes (name, cpu_cores, memory_mb, storage_gb) VALUES ('available-node', 4, 4096, 10) RETURNING id`.execute(db);
      /** A deployment with one replica that reports running inside a transaction begun before it, as the controller's reconcile reads it. */
      const eventAvailable = async (name: string): Promise<number | null> => {
        const { rows: [d] } = await sql<{ id: string }>`
          INSERT INTO deployments (name, user_id, container_image, target_replicas) VALUES (${name}, ${user!.id}, 'web:1', 1) RETURNING id`.execute(db);
        await sql`INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb)
                  VALUES (${d!.id}, 1, 1, 'web:1', 1, 256, 0, 1)`.execute(db);
        await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${d!.id}, ${node!.id}, 'starting', 1)`.execute(db);
        await db.transaction().execute(async (tx) => {
          await sql`SELECT pg_sleep(0.05)`.execute(tx);
          await sql`UPDATE deployment_replicas SET status = 'running', started_at = clock_timestamp() WHERE deployment_id = ${d!.id}`.execute(tx);
          await sql`UPDATE deployments SET status = 'running' WHERE id = ${d!.id}`.execute(tx);
        });
        const { rows } = await sql<{ available_replicas: number | null }>`
          SELECT available_replicas FROM steady_events WHERE deployment_id = ${d!.id} AND kind = 'deployment' ORDER BY id DESC LIMIT 1`.execute(db);
        return rows[0]!.available_replicas;
      };
      expect(await eventAvailable('available-after')).toBe(1);
      expect((await migrator.down(2)).map((m) => m.version)).toEqual(['0019', '0018']);
      expect(await eventAvailable('available-before')).toBe(0);
      await migrator.up();
    });
  },
  { migrated: false },
);
