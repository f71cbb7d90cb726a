import { describe, expect, it } from 'vitest';
import { Coalescer } from '../../src/lib/coalescer.js';

describe('Coalescer', () => {
  const squares = () => {
    const calls: number[][] = [];
    const coalescer = new Coalescer<number, number>(
      async (keys) => {
        calls.push([...keys]);
        return new Map(keys.filter((k) => k >= 0).map((k) => [String(k), k * k]));
      },
      String,
      3,
    );
    return { calls, coalescer };
  };

  it('loads the keys asked for in one turn together, once each, in batches of at most maxBatch', async () => {
    const { calls, coalescer } = squares();
    const results = await Promise.all([1, 2, 2, 3, 4, -1].map((k) => coalescer.get(k)));
    expect(results).toEqual([1, 4, 4, 9, 16, undefined]);
    expect(calls).toEqual([
      [1, 2, 3],
      [4, -1],
    ]);
  });

  it('starts a new batch for keys asked for after a batch went out', async () => {
    const { calls, coalescer } = squares();
    expect(await coalescer.get(5)).toBe(25);
    expect(await coalescer.get(5)).toBe(25);
    expect(calls).toEqual([[5], [5]]);
  });

  it('fails every waiter of a batch whose load fails, and only those', async () => {
    let fail = true;
    const coalescer = new Coalescer<number, number>(
      async (keys) => {
        if (fail) throw new Error('database away');
        return new Map(keys.map((k) => [String(k), k]));
      },
      String,
    );
    const first = Promise.allSettled([coalescer.get(1), coalescer.get(2)]);
    expect((await first).map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await coalescer.get(1)).toBe(1);
  });
});
