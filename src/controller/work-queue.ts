import PQueue from 'p-queue';
import { KeyBackoff } from './backoff.js';

export type HandleResult = { readonly requeueAfterMs?: number | null } | void;

export interface WorkItem {
  readonly key: string;
  readonly trigger: string;
}

/** What handling one key came to, when a batch of keys is handled together. */
export type Outcome = { readonly ok: true; readonly result: HandleResult } | { readonly ok: false; readonly err: unknown };

export type WorkQueueOptions = {
  /** Max handler calls at once. */
  readonly concurrency: number;
  /**
   * Called after `handle` throws, with the delay before the retry and the key's consecutive failures.
   * `retryInMs` is 0 when the key was re-added while it ran, since it then runs again at once.
   */
  readonly onError?: (key: string, err: unknown, retryInMs: number, failures: number) => void;
  /** First retry delay. Default 5 ms, as client-go's default item rate limiter. */
  readonly baseBackoffMs?: number;
  /** Retry delay cap. Default 60 s: a broken key still gets looked at every minute. */
  readonly maxBackoffMs?: number;
} & (
  | { readonly handle: (key: string, trigger: string) => Promise<HandleResult> }
  | {
      /**
       * Handles up to `maxBatch` waiting keys in one call (the oldest first), returning each key's
       * outcome; a key without one, or every key when the call throws, counts as failed. A worker
       * takes whatever is waiting, so batches form only under a backlog: alone, a key is a batch of one.
       */
      readonly handleBatch: (items: readonly WorkItem[]) => Promise<ReadonlyMap<string, Outcome>>;
      readonly maxBatch: number;
    }
);

interface Timer {
  readonly dueAt: number;
  readonly handle: NodeJS.Timeout;
}

/**
 * A keyed work queue with client-go workqueue semantics.
 *
 * - A waiting key is held once; re-adding it keeps its place and its first trigger label
 *   (the label is only for logs: handlers are level-triggered and must not depend on it).
 * - A key in flight is never handed to a second worker; adds meanwhile mark it dirty and it is queued once more
 *   after, at once, instead of any requeue or retry delay that run asked for.
 * - A plain `add` cancels a pending `addAfter` for that key: the reconcile it causes re-derives any timed work
 *   and returns `requeueAfterMs` again if it still needs it. Of several `addAfter`s the earliest wins.
 * - Keys are processed in FIFO order of the add that put them in the waiting list.
 */
export class WorkQueue {
  /** Waiting keys → trigger; Map keeps insertion order, which is the FIFO. */
  readonly #waiting = new Map<string, string>();
  readonly #processing = new Set<string>();
  /** In-flight keys re-added while running → trigger for their next run. */
  readonly #dirty = new Map<string, string>();
  readonly #timers = new Map<string, Timer>();
  readonly #backoff: KeyBackoff;
  readonly #workers: PQueue;
  /** Keys one worker call takes: `maxBatch` for a batch handler, 1 otherwise. */
  readonly #maxBatch: number;
  readonly #idleWaiters: Array<() => void> = [];
  /** Worker tasks handed to #workers and not started yet; never more than the keys they will find. */
  #queuedTasks = 0;
  /** Worker tasks handed to #workers and not finished: at most `concurrency`. */
  #tasks = 0;
  #closed = false;

  constructor(private readonly options: WorkQueueOptions) {
    this.#backoff = new KeyBackoff(options.baseBackoffMs ?? 5, options.maxBackoffMs ?? 60_000);
    this.#workers = new PQueue({ concurrency: options.concurrency });
    this.#maxBatch = 'maxBatch' in options ? Math.max(1, options.maxBatch) : 1;
  }

  add(key: string, trigger = 'add'): void {
    if (this.#closed) return;
    this.#cancelTimer(key);
    if (this.#processing.has(key)) {
      if (!this.#dirty.has(key)) this.#dirty.set(key, trigger);
      return;
    }
    if (this.#waiting.has(key)) return;
    this.#enqueue(key, trigger);
  }

  addAfter(key: string, delayMs: number, trigger = 'delayed'): void {
    if (this.#closed) return;
    if (!(delayMs > 0)) {
      this.add(key, trigger);
      return;
    }
    const dueAt = Date.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing && existing.dueAt <= dueAt) return;
    if (existing) clearTimeout(existing.handle);
    const handle = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key, trigger);
    }, delayMs);
    this.#timers.set(key, { dueAt, handle });
  }

  /** Keys waiting to be processed (not in flight, not scheduled for later). */
  get size(): number {
    return this.#waiting.size;
  }

  get inFlight(): number {
    return this.#processing.size;
  }

  /** Keys with a pending `addAfter` (requeue or retry). */
  get scheduled(): number {
    return this.#timers.size;
  }

  /** Consecutive failures of `key` since its last success. */
  failures(key: string): number {
    return this.#backoff.failures(key);
  }

  /**
   * Stops taking keys, drops waiting and scheduled ones and resolves once in-flight handlers finish.
   * Their outcomes are discarded: no requeue, no retry, no onError (the caller sees shutdown errors elsewhere).
   */
  async shutdown(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.values()) clearTimeout(timer.handle);
    this.#timers.clear();
    this.#waiting.clear();
    this.#dirty.clear();
    this.#backoff.clear();
    this.#workers.clear();
    await this.#workers.onIdle();
    this.#notifyIfIdle();
  }

  onIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #enqueue(key: string, trigger: string): void {
    this.#waiting.set(key, trigger);
    this.#schedule();
  }

  /**
   * Hands #workers a task per batch that can start now, at most `concurrency` in all: a backlog of a
   * hundred thousand keys holds a few tasks, not one (with its closures and promises) per key. Each
   * task takes whichever keys are at the head of the FIFO when it starts, and schedules again when
   * it ends.
   */
  #schedule(): void {
    while (!this.#closed && this.#tasks < this.options.concurrency && this.#queuedTasks * this.#maxBatch < this.#waiting.size) {
      this.#tasks++;
      this.#queuedTasks++;
      void this.#workers.add(async () => {
        this.#queuedTasks--;
        try {
          await this.#runNext();
        } finally {
          this.#tasks--;
          this.#schedule();
        }
      });
    }
  }

  async #runNext(): Promise<void> {
    const items: WorkItem[] = [];
    for (const [key, trigger] of this.#waiting) {
      items.push({ key, trigger });
      if (items.length >= this.#maxBatch) break;
    }
    if (items.length === 0) return; // taken by an earlier batch, or dropped by shutdown
    for (const { key } of items) {
      this.#waiting.delete(key);
      this.#processing.add(key);
    }
    const outcomes = await this.#handle(items);
    for (const { key } of items) {
      this.#processing.delete(key);
      this.#finish(key, outcomes.get(key) ?? { ok: false, err: new Error(`no outcome for ${key}`) });
    }
    this.#notifyIfIdle();
  }

  async #handle(items: readonly WorkItem[]): Promise<ReadonlyMap<string, Outcome>> {
    try {
      if ('handleBatch' in this.options) return await this.options.handleBatch(items);
      const [{ key, trigger }] = items as [WorkItem];
      return new Map([[key, { ok: true, result: await this.options.handle(key, trigger) }]]);
    } catch (err) {
      return new Map(items.map(({ key }) => [key, { ok: false, err }]));
    }
  }

  #finish(key: string, outcome: Outcome): void {
    if (this.#closed) return;
    // A dirty key runs again at once, so it needs no timer: that run re-derives its own requeue or retry,
    // as a plain add would.
    const dirtyTrigger = this.#dirty.get(key);
    if (dirtyTrigger !== undefined) {
      this.#dirty.delete(key);
      this.#enqueue(key, dirtyTrigger);
    }
    const rerunning = dirtyTrigger !== undefined;
    if (outcome.ok) {
      this.#backoff.forget(key);
      const after = outcome.result?.requeueAfterMs;
      if (after != null && !rerunning) this.addAfter(key, after, 'requeue');
      return;
    }
    // The failure still counts when the key reruns now, so a key that keeps failing keeps backing off.
    const { delayMs, failures } = this.#backoff.next(key);
    if (!rerunning) this.addAfter(key, delayMs, 'retry');
    try {
      this.options.onError?.(key, outcome.err, rerunning ? 0 : delayMs, failures);
    } catch {
      // A throwing observer must not wedge the key: its retry is already scheduled.
    }
  }

  #cancelTimer(key: string): void {
    const timer = this.#timers.get(key);
    if (!timer) return;
    clearTimeout(timer.handle);
    this.#timers.delete(key);
  }

  #isIdle(): boolean {
    return this.#waiting.size === 0 && this.#processing.size === 0 && this.#timers.size === 0;
  }

  #notifyIfIdle(): void {
    if (!this.#isIdle()) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
