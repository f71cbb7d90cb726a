import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { loadMigrations, Migrator, parseMigration } from '../../src/db/migrator.js';
import { describeBackends } from '../support/databases.js';

const SEED_TABLES = ['deployments', 'deployment_replicas', 'deployment_resources', 'deployment_status_history'];
const SEED_INDEXES = [
  'idx_deployments_user_active',
  'idx_deployments_user_name_unique',
  'idx_replicas_deployment_status',
  'idx_status_history_deployment_time',
];

it('parses the up and down sections of every migration file', () => {
  const migrations = loadMigrations();
  expect(migrations.map((m) => m.version)).toEqual(['0001', '0002', '0003', '0004', '0005']);
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
      expect(applied.map((s) => s.version)).toEqual(['0001', '0002', '0003', '0004', '0005']);
      expect(await migrator.isCurrent()).toBe(true);
      expect(await migrator.pendingSql()).toBe('');
      expect(await tables()).toEqual(expect.arrayContaining([...SEED_TABLES, 'users', 'nodes', 'steady_leader', 'steady_events']));
      expect(await migrator.up()).toEqual([]);

      const down = await migrator.down(4);
      expect(down.map((s) => s.version)).toEqual(['0005', '0004', '0003', '0002']);
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
      const migrator = new Migrator(t().database);
      await migrator.up();
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
  },
  { migrated: false },
);
