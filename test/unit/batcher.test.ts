import { describe, expect, it } from 'vitest';
import { Batcher, type Outcome } from '../../src/lib/batcher.js';

describe('Batcher', () => {
  /** Doubles even numbers, refuses odd ones (an error for that item alone); `gate` holds each write until released. */
  const doubler = (maxBatch = 4, maxInFlight = 1) => {
    const batches: number[][] = [];
    const gates: (() => void)[] = [];
    const batcher = new Batcher<number, number>(
      async (items) => {
        batches.push([...items]);
        await new Promise<void>((release) => gates.push(release));
        return items.map((n): Outcome<number> => (n % 2 === 0 ? { ok: true, value: n * 2 } : { ok: false, error: new Error(`odd ${n}`) }));
      },
      maxBatch,
      maxInFlight,
    );
    const releaseAll = async (): Promise<void> => {
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setImmediate(r));
        gates.splice(0).forEach((g) => g());
      }
    };
    return { batches, batcher, releaseAll };
  };

  it('writes what arrives in one turn together, and what arrives while a batch is written in the next one', async () => {
    const { batches, batcher, releaseAll } = doubler();
    const first = [batcher.submit(2), batcher.submit(4)];
    await new Promise((r) => setImmediate(r));
    // The first batch is being written: these wait for it and go together, at most 4 at a time.
    const later = [6, 8, 10, 12, 14].map((n) => batcher.submit(n));
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[2, 4]]);
    const done = Promise.all([...first, ...later]);
    await releaseAll();
    expect(await done).toEqual([4, 8, 12, 16, 20, 24, 28]);
    expect(batches).toEqual([[2, 4], [6, 8, 10, 12], [14]]);
  });

  it("gives each item its own outcome: one item's error fails no other", async () => {
    const { batcher, releaseAll } = doubler();
    const results = Promise.allSettled([2, 3, 4].map((n) => batcher.submit(n)));
    await releaseAll();
    const [a, b, c] = await results;
    expect(a).toEqual({ status: 'fulfilled', value: 4 });
    expect(b).toEqual({ status: 'rejected', reason: new Error('odd 3') });
    expect(c).toEqual({ status: 'fulfilled', value: 8 });
  });

  it('fails every item of a batch whose write throws, and writes the next batch as usual', async () => {
    let fail = true;
    const batcher = new Batcher<number, number>(async (items) => {
      if (fail) throw new Error('database away');
      return items.map((n) => ({ ok: true, value: n }));
    });
    const failed = await Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await Promise.all([batcher.submit(3), batcher.submit(4)])).toEqual([3, 4]);
  });

  it('keeps at most maxInFlight batches in flight', async () => {
    const { batches, batcher, releaseAll } = doubler(1, 2);
    const all = Promise.all([2, 4, 6, 8].map((n) => batcher.submit(n)));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[2], [4]]);
    await releaseAll();
    expect(await all).toEqual([4, 8, 12, 16]);
  });
});
