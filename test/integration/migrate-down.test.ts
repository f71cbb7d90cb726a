import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runInProcess } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';

/**
 * `steady migrate down` that would drop tables holding rows asks first: it goes ahead with `--yes` or
 * a "y" typed on a terminal, and refuses (exit 1, nothing rolled back) otherwise, never waiting for an
 * answer that cannot come (CI=true, stdin not a terminal).
 */
describe('steady migrate down [postgres]', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase('postgres', { migrated: false });
  });
  afterAll(async () => {
    await testDb.destroy();
  });

  const env = () => ({ DATABASE_URL: testDb.url!, LOG_LEVEL: 'silent' });
  const applied = async () =>
    (await sql<{ n: number }>`SELECT count(*)::int AS n FROM steady_migrations`.execute(testDb.database.db)).rows[0]!.n;

  it('refuses to drop tables holding rows without --yes, asks on a terminal, and goes ahead with --yes', async () => {
    expect((await runInProcess(['migrate', 'up'], { env: env() })).code).toBe(0);
    const all = await applied();
    // Rolling everything back drops `users`; with one row in it, that is data lost.
    await sql`INSERT INTO users (subject) VALUES ('someone')`.execute(testDb.database.db);

    for (const run of [
      { env: { ...env(), CI: 'true' } },
      { env: env() },
      { env: { ...env(), CI: 'true' }, stdinIsTTY: true, stdin: 'y\n' },
    ]) {
      const refused = await runInProcess(['migrate', 'down', String(all)], run);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/refusing to roll back: it would drop .*users \(1 row\).*--yes/);
      expect(await applied()).toBe(all);
    }

    const declined = await runInProcess(['migrate', 'down', String(all)], { env: env(), stdinIsTTY: true, stdin: 'n\n' });
    expect(declined.code).toBe(1);
    expect(declined.stderr).toMatch(/drops .*users \(1 row\).*\[y\/N\][\s\S]*not rolled back/);
    expect(await applied()).toBe(all);

    // One step back drops nothing that holds rows: no question.
    const one = await runInProcess(['migrate', 'down'], { env: { ...env(), CI: 'true' } });
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(/rolled back/);
    expect(await applied()).toBe(all - 1);

    const forced = await runInProcess(['migrate', 'down', String(all - 1), '--yes'], { env: { ...env(), CI: 'true' } });
    expect(forced.code, forced.stderr).toBe(0);
    expect(await applied()).toBe(0);

    expect((await runInProcess(['migrate', 'up'], { env: env() })).code).toBe(0);
    await sql`INSERT INTO users (subject) VALUES ('someone')`.execute(testDb.database.db);
    const answered = await runInProcess(['migrate', 'down', String(all)], { env: env(), stdinIsTTY: true, stdin: 'y\n' });
    expect(answered.code, answered.stderr).toBe(0);
    expect(answered.stderr).toMatch(/users \(1 row\).*\[y\/N\]/);
    expect(await applied()).toBe(0);
  });
});
