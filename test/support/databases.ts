import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import pino from 'pino';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { openPglite } from '../../src/db/pglite.js';
import { openPostgres } from '../../src/db/postgres.js';
import { adminQuery, withDatabase } from './global-setup.js';

export type Backend = 'postgres' | 'pglite';
export const BACKENDS: readonly Backend[] = ['postgres', 'pglite'];

export const silentLogger = pino({ level: 'silent' });

export interface TestDatabase {
  readonly backend: Backend;
  readonly database: Database;
  /** Connection string of this test's own database (postgres backend only). */
  readonly url: string | null;
  /** Opens another, independent pool on the same database (postgres only): another "process". */
  openAnother(poolMax?: number): Database;
  destroy(): Promise<void>;
}

/** A fresh database, migrated or not: a clone of a template on PostgreSQL, a dump loaded into a new in-memory PGlite. */
export async function createTestDatabase(backend: Backend, options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = options.migrated ?? true;
  if (backend === 'pglite') {
    const dump = inject(migrated ? 'pgliteTemplate' : 'pgliteBareTemplate');
    const database = await openPglite(null, { loadDataDir: new Blob([fs.readFileSync(dump)]) });
    return {
      backend,
      database,
      url: null,
      openAnother() {
        throw new Error('PGlite has one session: another process cannot open it');
      },
      destroy: () => database.close(),
    };
  }
  const adminUrl = inject('pgAdminUrl');
  const name = `steady_test_${randomBytes(6).toString('hex')}`;
  await createDatabase(adminUrl, migrated ? `CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}` : `CREATE DATABASE ${name}`);
  const url = withDatabase(adminUrl, name);
  const others: Database[] = [];
  const database = openPostgres({ url, poolMax: 10, logger: silentLogger });
  return {
    backend,
    database,
    url,
    openAnother(poolMax = 10) {
      const another = openPostgres({ url, poolMax, logger: silentLogger });
      others.push(another);
      return another;
    },
    async destroy() {
      await Promise.all([database, ...others].map((d) => d.close().catch(() => undefined)));
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/**
 * The same suite on every backend: `describeBackends('x', (t) => { it(..., () => t().database ...) })`.
 * Each backend gets one database for the describe block.
 */
export function describeBackends(
  title: string,
  body: (current: () => TestDatabase, backend: Backend) => void,
  options: { migrated?: boolean; backends?: readonly Backend[] } = {},
): void {
  for (const backend of options.backends ?? BACKENDS) {
    describe(`${title} [${backend}]`, () => {
      let testDb: TestDatabase | null = null;
      beforeAll(async () => {
        testDb = await createTestDatabase(backend, options);
      });
      afterAll(async () => {
        await testDb?.destroy();
      });
      body(() => {
        if (!testDb) throw new Error('test database not ready');
        return testDb;
      }, backend);
    });
  }
}

/** CREATE DATABASE … TEMPLATE fails while a backend that just disconnected from the template is still exiting. */
async function createDatabase(adminUrl: string, statement: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await adminQuery(adminUrl, statement);
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || attempt >= 50) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
