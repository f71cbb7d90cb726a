import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Database } from './database.js';
import { lockDataDir } from './data-dir-lock.js';
import { openPglite } from './pglite.js';
import { seedDataDir } from './pglite-template.js';
import { openPostgres } from './postgres.js';

/** PostgreSQL when DATABASE_URL is set, otherwise PGlite in the data directory (locked while open). */
export async function openDatabase(config: Config, logger: Logger, applicationName?: string): Promise<Database> {
  if (config.databaseUrl !== null) {
    return openPostgres({ url: config.databaseUrl, poolMax: config.dbPoolMax, prepare: config.dbPrepare, logger, applicationName });
  }
  const lock = lockDataDir(config.dataDir);
  try {
    const pgdata = path.join(config.dataDir, 'pgdata');
    const seeded = await seedDataDir(pgdata);
    if (seeded === 'seeded') logger.info({ dir: pgdata }, 'embedded database created from the shipped template');
    if (seeded === 'stale-template') logger.warn('the shipped PGlite template is for another PGlite version: running initdb (npm run pglite-template makes a new one)');
    const database = await openPglite(pgdata, { lowMemory: true });
    return {
      ...database,
      async close() {
        try {
          await database.close();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}
