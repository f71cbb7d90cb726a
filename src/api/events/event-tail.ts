import type { Database, Listener } from '../../db/database.js';
import { blockEnd, horizonState, lastIssuedEventId, openHorizon, readEvents, type EventRecord, type Horizon } from '../../db/queries/events.js';
import type { Logger } from '../../logger.js';

export const EVENTS_CHANNEL = 'steady_events';

export interface TailSubscriber {
  /** New events, in id order, all users'; the subscriber filters. */
  onEvents(events: readonly EventRecord[]): void;
  /** The tail fell behind retention: events up to `position` may be lost. */
  onReset(position: bigint): void;
}

export interface EventTailOptions {
  readonly logger: Logger;
  /** Looks for events this often even without a notification (a lost NOTIFY, no LISTEN); 1 s by default. */
  readonly pollMs?: number;
  /** Events read per statement; 500 by default. */
  readonly pageSize?: number;
}

type Step = 'idle' | 'more' | 'unripe';

/**
 * One reader of the event log per API process, whatever the number of open streams: it follows the
 * log up to ripe horizons (src/db/queries/events.ts), woken by NOTIFY on `steady_events` and by a
 * poll as fallback, and hands every event to every subscriber. It starts with the first stream and
 * runs until closed (then a LISTEN connection and one small statement a second while idle).
 * `position` is the id up to which everything has been delivered: final, never to be followed by a
 * smaller id.
 */
export class EventTail {
  private cursor: bigint | null = null;
  private horizon: Horizon | null = null;
  private readonly subscribers = new Set<TailSubscriber>();
  private listener: Listener | null = null;
  private starting: Promise<void> | null = null;
  private pumping: Promise<void> | null = null;
  private dirty = false;
  private poll: NodeJS.Timeout | null = null;
  private wait: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  private readyWaiters: (() => void)[] = [];
  private closed = false;
  private readonly pollMs: number;
  private readonly pageSize: number;

  constructor(
    private readonly database: Database,
    private readonly options: EventTailOptions,
  ) {
    this.pollMs = options.pollMs ?? 1_000;
    this.pageSize = options.pageSize ?? 500;
  }

  /** The id everything has been delivered up to; only valid once `ready()` resolved. */
  get position(): bigint {
    if (this.cursor === null) throw new Error('event tail not ready');
    return this.cursor;
  }

  /** Starts the tail if needed; resolves when `position` is final. */
  async ready(): Promise<void> {
    if (this.closed) throw new Error('event tail closed');
    this.starting ??= this.start();
    await this.starting;
    if (this.cursor !== null) return;
    await new Promise<void>((resolve) => this.readyWaiters.push(resolve));
    if (this.cursor === null) throw new Error('event tail closed');
  }

  /** Call right after `ready()` (same tick): from then on, every event past `position` reaches `s`. */
  subscribe(s: TailSubscriber): () => void {
    this.subscribers.add(s);
    return () => void this.subscribers.delete(s);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    if (this.wait) {
      clearTimeout(this.wait.timer);
      this.wait.resolve();
    }
    for (const resolve of this.readyWaiters.splice(0)) resolve();
    await this.starting?.catch(() => undefined);
    await this.pumping;
    await this.listener?.close().catch(() => undefined);
    this.listener = null;
    this.subscribers.clear();
  }

  private async start(): Promise<void> {
    try {
      this.listener = await this.database.listen([EVENTS_CHANNEL], {
        onNotification: () => this.kick(),
        onReconnect: () => this.kick(),
        onError: (err) => this.options.logger.warn({ err: errorText(err) }, 'event listener lost its connection'),
      });
    } catch (err) {
      this.options.logger.warn({ err: errorText(err) }, 'could not LISTEN for events; polling');
    }
    if (this.closed) {
      const listener = this.listener;
      this.listener = null;
      await listener?.close().catch(() => undefined);
      return;
    }
    this.poll = setInterval(() => this.kick(), this.pollMs);
    this.poll.unref();
    this.kick();
  }

  private kick(): void {
    this.dirty = true;
    if (this.closed || this.pumping) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
    });
  }

  private async pump(): Promise<void> {
    let backoffMs = 5;
    while (this.dirty && !this.closed) {
      this.dirty = false;
      let step: Step;
      try {
        step = await this.step();
      } catch (err) {
        this.options.logger.warn({ err: errorText(err) }, 'reading events failed; retrying');
        await this.sleep(1_000);
        this.dirty = true;
        continue;
      }
      if (step === 'more') {
        this.dirty = true;
        backoffMs = 5;
      } else if (step === 'unripe') {
        // A transaction older than the horizon is still open; most end within milliseconds.
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 250);
        this.dirty = true;
      }
    }
  }

  private async step(): Promise<Step> {
    const db = this.database.db;
    if (this.horizon === null) {
      const upTo = await lastIssuedEventId(db);
      if (this.cursor !== null && blockEnd(upTo) <= this.cursor) return 'idle';
      this.horizon = await openHorizon(db, upTo);
    }
    const horizon = this.horizon;
    if (!(await horizonState(db, horizon)).ripe) return 'unripe';
    const end = blockEnd(horizon.upTo);
    if (this.cursor === null) {
      // Starting: live from here on.
      this.cursor = end;
      this.horizon = null;
      for (const resolve of this.readyWaiters.splice(0)) resolve();
      return 'more';
    }
    const page = await readEvents(db, this.cursor, end, {}, this.pageSize);
    if (page.deletedThrough > this.cursor) {
      this.options.logger.warn({ position: String(this.cursor), deleted_through: String(page.deletedThrough) }, 'event tail fell behind retention');
      this.cursor = end > page.deletedThrough ? end : page.deletedThrough;
      this.horizon = null;
      for (const s of [...this.subscribers]) s.onReset(this.cursor);
      return 'more';
    }
    const events = page.events;
    const full = events.length === this.pageSize;
    // Deliver and move the cursor in one tick: a subscriber joining in between sees one or the other.
    if (events.length > 0) for (const s of [...this.subscribers]) s.onEvents(events);
    if (full) {
      this.cursor = events[events.length - 1]!.id;
    } else {
      this.cursor = end;
      this.horizon = null;
    }
    return 'more';
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wait = null;
        resolve();
      }, ms);
      this.wait = { timer, resolve };
    });
  }
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
