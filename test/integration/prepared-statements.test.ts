import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/db/postgres.js';
import { StatementNames } from '../../src/db/prepared-statements.js';
import { createTestDatabase, silentLogger, type TestDatabase } from '../support/databases.js';

describe('named prepared statements (PostgreSQL)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('postgres');
  });
  afterAll(() => t.destroy());

  /** The statements prepared on the pool's only connection, after running one Kysely query there twice. */
  const preparedAfterQueries = async (prepare: boolean): Promise<string[]> => {
    const database = openPostgres({ url: t.url!, poolMax: 1, prepare, logger: silentLogger });
    try {
      for (let i = 0; i < 2; i++) await database.db.selectFrom('nodes').select('id').where('name', '=', `n${i}`).execute();
      const { rows } = await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements`.execute(database.db);
      return rows.map((r) => r.statement);
    } finally {
      await database.close();
    }
  };

  it('prepares each parameterised statement once per connection', async () => {
    const statements = await preparedAfterQueries(true);
    expect(statements.filter((s) => /from "nodes"/.test(s))).toHaveLength(1);
  });

  it('prepares nothing when turned off (for a transaction-mode pooler)', async () => {
    expect(await preparedAfterQueries(false)).toEqual([]);
  });

  it('names a bounded number of texts; the rest run unnamed', () => {
    const names = new StatementNames(2, 20);
    expect(names.nameOf('SELECT 1')).toBe(names.nameOf('SELECT 1'));
    expect(names.nameOf('SELECT 2')).not.toBe(names.nameOf('SELECT 1'));
    expect(names.nameOf('SELECT 3')).toBeNull();
    expect(new StatementNames(5, 20).nameOf('SELECT * FROM a_rather_long_table')).toBeNull();
    expect(names.size).toBe(2);
  });
});
