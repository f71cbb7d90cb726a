import v8 from 'node:v8';
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
  options: { loadDataDir?: Blob; lowMemory?: boolean } = {},
): Promise<Database & { dump(): Promise<Blob> }> {
  const { lowMemory = false, ...pgliteOptions } = options;
  if (lowMemory) {
    // `steady dev` (peak RSS from 450 to 205 MB with a shipped template): V8's optimising compiler
    // spends about 80 MB tiering up PostgreSQL's 10 MB of WebAssembly, for no measurable gain on a
    // development database's statements; and the 128 MB of shared buffers are resident from the start,
    // where such a database needs a few. The flag is process-wide and read when a module is compiled:
    // PGlite is the only WebAssembly steady runs.
    v8.setFlagsFromString('--liftoff-only');
    // And V8 sizes the JavaScript heap for throughput: during the embedded benchmark's cold start
    // (1,000 deployments × 10) the heap held about 110 MB for 36 MB of live objects, a 32 MB young
    // generation and an old one grown on garbage. Optimising for size, V8 collects before it grows the
    // heap: that peak went from 280-320 MB to 220-245 MB (bench/results/dev-memory.md) for some more
    // CPU. Read as the heap grows, so it applies from here on; bin/steady.js sets it earlier for `dev`.
    v8.setFlagsFromString('--optimize-for-size');
  }
  const pglite = new PGlite({
    ...(dataDir === null ? {} : { dataDir }),
    ...(lowMemory ? { startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'] } : {}),
    ...pgliteOptions,
  });
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
