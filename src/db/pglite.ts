import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { Database, Session } from './database.js';
import type { Tables } from './tables.js';

/**
 * The embedded database: real PostgreSQL compiled to WebAssembly, in this process. One session only,
 * so the Kysely dialect serialises every query and transaction; `session()` takes that one session
 * for a script. `dataDir` null keeps everything in memory (tests).
 *
 * Hazard: PGlite does not lock its directory. The caller must hold a DataDirLock (src/db/data-dir-lock.ts)
 * before opening a directory, or two processes will silently lose each other's writes.
 */
export async function openPglite(
  dataDir: string | null,
  options: { loadDataDir?: Blob } = {},
): Promise<Database & { dump(): Promise<Blob> }> {
  const pglite = new PGlite({ ...(dataDir === null ? {} : { dataDir }), ...options });
  await pglite.waitReady;
  const db = new Kysely<Tables>({ dialect: new PGliteDialect(pglite) });
  const session: Session = {
    async query<R>(text: string, params: readonly unknown[] = []) {
      const result = await pglite.query<R>(text, [...params]);
      return result.rows;
    },
    async exec(script) {
      await pglite.exec(script);
    },
  };

  return {
    kind: 'pglite',
    db,
    // Holding a Kysely connection keeps every other query queued behind this session.
    session: (fn) => db.connection().execute(() => fn(session)),
    dedicated: () => ({ db, close: async () => undefined }),
    async listen(channels, handlers) {
      const unsubscribes = await Promise.all(
        channels.map((channel) =>
          pglite.listen(channel, (payload) => handlers.onNotification({ channel, payload })),
        ),
      );
      return {
        async close() {
          if (pglite.closed) return;
          await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe()));
        },
      };
    },
    async close() {
      await db.destroy();
    },
    dump: async () => pglite.dumpDataDir('none'),
  };
}
