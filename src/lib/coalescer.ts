interface Waiter<V> {
  readonly resolve: (value: V | undefined) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Answers lookups that arrive together with one batched load (as DataLoader does): keys asked for
 * during one turn of the event loop are loaded at its end (setImmediate), at most `maxBatch` per
 * call, and a key asked for twice is loaded once. Under load many concurrent requests then share
 * one database round trip; alone, a lookup waits for nothing but the end of the current turn.
 * Nothing is cached across batches: every batch reads fresh.
 */
export class Coalescer<K, V> {
  #pending = new Map<string, { key: K; waiters: Waiter<V>[] }>();
  #scheduled = false;

  constructor(
    private readonly load: (keys: readonly K[]) => Promise<ReadonlyMap<string, V>>,
    private readonly keyOf: (key: K) => string,
    private readonly maxBatch = 64,
  ) {}

  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const id = this.keyOf(key);
      const entry = this.#pending.get(id);
      if (entry) entry.waiters.push({ resolve, reject });
      else this.#pending.set(id, { key, waiters: [{ resolve, reject }] });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const all = [...this.#pending.entries()];
    this.#pending = new Map();
    for (let i = 0; i < all.length; i += this.maxBatch) void this.#run(all.slice(i, i + this.maxBatch));
  }

  async #run(batch: [string, { key: K; waiters: Waiter<V>[] }][]): Promise<void> {
    try {
      const found = await this.load(batch.map(([, e]) => e.key));
      for (const [id, e] of batch) for (const w of e.waiters) w.resolve(found.get(id));
    } catch (err) {
      for (const [, e] of batch) for (const w of e.waiters) w.reject(err);
    }
  }
}
