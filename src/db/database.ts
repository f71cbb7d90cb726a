import type { Kysely } from 'kysely';
import type { Tables } from './tables.js';

/** One database session: a pooled client, or PGlite's only session. */
export interface Session {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a script of several statements (simple query protocol). */
  exec(script: string): Promise<void>;
}

export interface Notification {
  readonly channel: string;
  readonly payload: string;
}

export interface ListenHandlers {
  readonly onNotification: (n: Notification) => void;
  /** Called after the connection was lost and LISTEN is in place again: notifications may have been missed. */
  readonly onReconnect?: () => void;
  readonly onError?: (err: unknown) => void;
}

export interface Listener {
  close(): Promise<void>;
}

/** A connection of its own: see Database.dedicated. */
export interface DedicatedConnection {
  readonly db: Kysely<Tables>;
  close(): Promise<void>;
}

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Kysely<Tables>;
  /**
   * One connection outside the pool, for work that must never queue behind the pool's other users:
   * a lease renewal that waits for a connection busy with API requests loses the lease. PGlite has
   * one session only: there it is that session.
   */
  dedicated(purpose: string): DedicatedConnection;
  /** Runs fn on one dedicated session, for scripts and session-scoped locks. */
  session<T>(fn: (s: Session) => Promise<T>): Promise<T>;
  /** LISTEN on channels with a dedicated connection that re-LISTENs after a reconnect. */
  listen(channels: readonly string[], handlers: ListenHandlers): Promise<Listener>;
  close(): Promise<void>;
}

/** SQLSTATE classes that mean "the database is away or busy", not "your request is wrong". */
export function isTransientDbError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^(08|53|57P0|40001|40P01)/.test(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true;
  }
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection.*closed|Query read timeout/i.test(
    message,
  );
}
