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
  expect(migrations.map((m) => m.version)).toEqual(['0001', '0002', '0003']);
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

    it('applies cleanly, reports status, rolls back cleanly and re-applies', async () => {
      const migrator = new Migrator(t().database);
      expect((await migrator.status()).every((m) => m.appliedAt === null)).toBe(true);
      expect(await migrator.isCurrent()).toBe(false);
      expect(await migrator.pendingSql()).toContain('CREATE TABLE deployments');

      const applied = await migrator.up();
      expect(applied.map((s) => s.version)).toEqual(['0001', '0002', '0003']);
      expect(await migrator.isCurrent()).toBe(true);
      expect(await migrator.pendingSql()).toBe('');
      expect(await tables()).toEqual(expect.arrayContaining([...SEED_TABLES, 'users', 'nodes', 'steady_leader']));
      expect(await migrator.up()).toEqual([]);

      const down = await migrator.down(2);
      expect(down.map((s) => s.version)).toEqual(['0003', '0002']);
      expect(await tables()).not.toContain('steady_leader');
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
  },
  { migrated: false },
);
