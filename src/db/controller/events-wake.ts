import { sql, type Kysely } from 'kysely';
import type { Tables } from '../tables.js';

/**
 * Wakes the event readers (NOTIFY steady_events) after the controller's commits, never from inside
 * them (migration 0015): a transaction that notifies commits alone, holding a database-wide lock
 * until its WAL is flushed, while the others share flushes. The notification goes in a statement
 * of its own that writes nothing and does not wait for its flush (a notification is never durable
 * anyway). At most one is in flight; wakes asked for meanwhile make one more after it, so readers
 * always hear of the last commit, and a burst of commits costs two notifications.
 */
export class EventsWake {
  #inFlight: Promise<void> | null = null;
  #again = false;

  constructor(
    private readonly db: Kysely<Tables>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Call after a commit that wrote events. Never throws: a reader that misses it finds them on its poll. */
  wake(): void {
    if (this.#inFlight) {
      this.#again = true;
      return;
    }
    this.#inFlight = this.#send().finally(() => {
      this.#inFlight = null;
      if (this.#again) {
        this.#again = false;
        this.wake();
      }
    });
  }

  /** Resolves when no wake is in flight (for shutdown and tests). */
  async settled(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  async #send(): Promise<void> {
    try {
      await sql`SELECT set_config('synchronous_commit', 'off', true), pg_notify('steady_events', '')`.execute(this.db);
    } catch (err) {
      this.onError(err);
    }
  }
}
