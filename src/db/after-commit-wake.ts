import { sql, type Kysely } from 'kysely';
import type { Tables } from './tables.js';

/**
 * Sends a process's notifications (NOTIFY steady_deployment and steady_events) after its commits,
 * never from inside them (migration 0015). A transaction that has notified commits alone: PostgreSQL
 * holds a database-wide lock from its commit until its WAL is flushed (async.c, PreCommit_Notify),
 * while transactions that do not notify share flushes. A writer that uses this sets
 * `steady.quiet = on` and `steady.events_wake = after_commit` in its transaction, so that the
 * triggers stay silent, and calls `deployments` or `events` after the commit.
 *
 * The notifications go in a statement of their own that writes nothing and does not wait for its
 * flush (a notification is never durable anyway). At most one is in flight: what is asked for
 * meanwhile is gathered into the next one, so a burst of commits costs two statements, and the
 * deployment ids of many agents' reports travel in one notification.
 */
export class AfterCommitWake {
  #deployments = new Set<string>();
  #events = false;
  #inFlight: Promise<void> | null = null;

  constructor(
    private readonly db: Kysely<Tables>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** The controller must look at these deployments; event readers have new events. */
  deployments(ids: Iterable<string>): void {
    for (const id of ids) this.#deployments.add(id);
    this.events();
  }

  /** Event readers have new events. Never throws: a reader that misses it finds them on its poll. */
  events(): void {
    this.#events = true;
    this.#inFlight ??= this.#drain();
  }

  /** Resolves when nothing is waiting or in flight (for shutdown and tests). */
  async settled(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  async #drain(): Promise<void> {
    // Starts after the caller's turn, so that the commits finishing together share one statement.
    await Promise.resolve();
    while (this.#events) {
      const ids = [...this.#deployments].join(',');
      this.#deployments.clear();
      this.#events = false;
      try {
        // steady_notify_ids sends nothing for none, and `*` (resync) for more than a notification holds.
        await sql`SELECT set_config('synchronous_commit', 'off', true), steady_notify_ids(${ids}), pg_notify('steady_events', '')`.execute(this.db);
      } catch (err) {
        this.onError(err);
      }
    }
    this.#inFlight = null;
  }
}
