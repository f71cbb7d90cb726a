/** What one item of a batch came to: its value, or the error that item alone gets. */
export type Outcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: unknown };

interface Queued<I, R> {
  readonly item: I;
  readonly resolve: (value: R) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Group commit for writes, as the Coalescer is for reads: items submitted while a batch is being
 * written wait and go together in the next one (at most `maxBatch`), so many concurrent requests
 * share one transaction and one commit. Alone, an item waits for nothing but the end of the current
 * turn of the event loop. `write` answers every item on its own (an item's error is that item's only);
 * if it throws, every item of that batch gets the error.
 */
export class Batcher<I, R> {
  #queue: Queued<I, R>[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(
    private readonly write: (items: readonly I[]) => Promise<readonly Outcome<R>[]>,
    private readonly maxBatch = 128,
    private readonly maxInFlight = 2,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#pump();
        });
      }
    });
  }

  #pump(): void {
    while (this.#inFlight < this.maxInFlight && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.maxBatch);
      this.#inFlight++;
      void this.#run(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #run(batch: readonly Queued<I, R>[]): Promise<void> {
    try {
      const outcomes = await this.write(batch.map((q) => q.item));
      if (outcomes.length !== batch.length) throw new Error(`batch of ${batch.length} answered with ${outcomes.length} outcomes`);
      batch.forEach((q, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) q.resolve(outcome.value);
        else q.reject(outcome.error);
      });
    } catch (err) {
      for (const q of batch) q.reject(err);
    }
  }
}
