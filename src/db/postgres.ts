import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logger.js';
import type { Database, DedicatedConnection, ListenHandlers, Listener, Session } from './database.js';
import { preparingClient, StatementNames } from './prepared-statements.js';
import type { Tables } from './tables.js';

export interface PostgresOptions {
  readonly url: string;
  readonly poolMax: number;
  /** Named prepared statements (see prepared-statements.ts); default on. */
  readonly prepare?: boolean;
  readonly logger: Logger;
  readonly applicationName?: string;
}

/**
 * Production path. The controller needs a direct connection (not a pooler in transaction mode):
 * LISTEN and session state do not survive transaction pooling.
 */
export function openPostgres(options: PostgresOptions): Database {
  const dedicated = new Set<DedicatedConnection>();
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    query_timeout: 30_000,
    keepAlive: true,
    application_name: options.applicationName ?? 'steady',
    ...(options.prepare === false ? {} : { Client: preparingClient(new StatementNames()) }),
  });
  // An idle client that loses its server emits 'error' on the pool; unhandled, it would kill the process.
  pool.on('error', (err) => options.logger.warn({ err: err.message }, 'idle database connection lost'));
  // A checked-out client has no pool listener: a server shutdown (57P01) or reset arriving between two
  // statements of a transaction is emitted on the client, and unhandled it kills the process. The
  // client is then unqueryable, so the transaction's next statement fails (a transient error, 503 or
  // retry) and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', (err) => options.logger.warn({ err: err.message }, 'database connection lost while in use'));
  });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });

  return {
    kind: 'postgres',
    db,
    async session(fn) {
      const client = await pool.connect();
      let broken = false;
      try {
        return await fn(clientSession(client));
      } catch (err) {
        broken = true;
        throw err;
      } finally {
        // A client that failed mid-script may be inside an aborted transaction: never reuse it.
        client.release(broken);
      }
    },
    dedicated(purpose) {
      const own = new pg.Pool({
        connectionString: options.url,
        max: 1,
        connectionTimeoutMillis: 5_000,
        // A statement that hangs (server gone without a reset) must fail, so that the next try can run.
        query_timeout: 5_000,
        keepAlive: true,
        application_name: `${options.applicationName ?? 'steady'}-${purpose}`,
      });
      own.on('error', (err) => options.logger.warn({ err: err.message, purpose }, 'idle dedicated database connection lost'));
      own.on('connect', (client) => {
        client.on('error', (err) => options.logger.warn({ err: err.message, purpose }, 'dedicated database connection lost while in use'));
      });
      const ownDb = new Kysely<Tables>({ dialect: new PostgresDialect({ pool: own }) });
      const connection = {
        db: ownDb,
        async close() {
          dedicated.delete(connection);
          await ownDb.destroy();
          if (!own.ended) await own.end();
        },
      };
      dedicated.add(connection);
      return connection;
    },
    listen: (channels, handlers) => listenPostgres(options, channels, handlers),
    async close() {
      // A closed database leaves nothing behind: a leader whose pool is gone must not keep renewing its lease.
      await Promise.all([...dedicated].map((c) => c.close()));
      await db.destroy();
      // Kysely ends the pool only if it ever ran a query itself; session() uses the pool directly.
      if (!pool.ended) await pool.end();
    },
  };
}

function clientSession(client: pg.ClientBase): Session {
  return {
    async query<R>(text: string, params: readonly unknown[] = []) {
      const result = await client.query(text, [...params]);
      return result.rows as R[];
    },
    async exec(script) {
      await client.query(script);
    },
  };
}

async function listenPostgres(options: PostgresOptions, channels: readonly string[], handlers: ListenHandlers): Promise<Listener> {
  let closed = false;
  let client: pg.Client | null = null;
  let retryMs = 100;
  let timer: NodeJS.Timeout | null = null;

  const connect = async (isReconnect: boolean): Promise<void> => {
    const next = new pg.Client({
      connectionString: options.url,
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
      application_name: `${options.applicationName ?? 'steady'}-listener`,
    });
    next.on('notification', (msg) => handlers.onNotification({ channel: msg.channel, payload: msg.payload ?? '' }));
    next.on('error', (err) => {
      handlers.onError?.(err);
      scheduleReconnect(next);
    });
    next.on('end', () => scheduleReconnect(next));
    await next.connect();
    for (const channel of channels) await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    if (closed) {
      await next.end().catch(() => undefined);
      return;
    }
    client = next;
    retryMs = 100;
    if (isReconnect) handlers.onReconnect?.();
  };

  const scheduleReconnect = (lost: pg.Client): void => {
    if (closed || client !== lost) return;
    client = null;
    lost.end().catch(() => undefined);
    const attempt = (): void => {
      timer = null;
      if (closed) return;
      connect(true).catch((err) => {
        handlers.onError?.(err);
        retryMs = Math.min(retryMs * 2, 10_000);
        timer = setTimeout(attempt, retryMs);
      });
    };
    timer = setTimeout(attempt, retryMs);
  };

  await connect(false);
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const current = client;
      client = null;
      await current?.end().catch(() => undefined);
    },
  };
}
