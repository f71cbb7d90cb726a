import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { exponentialBackoffMs } from '../../src/controller/backoff.js';
import { WorkQueue, type HandleResult, type Outcome, type WorkQueueOptions } from '../../src/controller/work-queue.js';

interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets p-queue start tasks and handlers run up to their next real wait. */
const settle = (): Promise<unknown> => vi.advanceTimersByTimeAsync(0);

interface Call {
  readonly key: string;
  readonly trigger: string;
  readonly at: number;
}

/**
 * A queue whose handler records every call and, for keys in `gates`, waits until the test opens the gate.
 * `behave` decides the outcome of each call (default: success, no requeue).
 */
function harness(
  opts: Partial<WorkQueueOptions> & {
    readonly behave?: (key: string, nthCall: number) => HandleResult | Error;
  } = {},
) {
  const calls: Call[] = [];
  const gates = new Map<string, Deferred>();
  const errors: Array<{ key: string; retryInMs: number; failures: number }> = [];
  const queue = new WorkQueue({
    concurrency: 1,
    onError: (key, _err, retryInMs, failures) => errors.push({ key, retryInMs, failures }),
    ...opts,
    handle: async (key, trigger) => {
      calls.push({ key, trigger, at: Date.now() });
      const gate = gates.get(key);
      if (gate) {
        gates.delete(key);
        await gate.promise;
      }
      const nth = calls.filter((c) => c.key === key).length;
      const outcome = opts.behave?.(key, nth);
      if (outcome instanceof Error) throw outcome;
      return outcome;
    },
  });
  const gate = (key: string): Deferred => {
    const d = deferred();
    gates.set(key, d);
    return d;
  };
  const keysCalled = (): string[] => calls.map((c) => c.key);
  return { queue, calls, errors, gate, keysCalled };
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(0);
});

afterEach(() => {
  vi.useRealTimers();
});

describe('WorkQueue dedup and FIFO', () => {
  it('holds a waiting key once and keeps its first trigger', async () => {
    const { queue, calls, gate } = harness();
    const blocker = gate('blocker');
    queue.add('blocker');
    await settle();
    queue.add('a', 'notify');
    queue.add('a', 'resync');
    queue.add('b', 'notify');
    queue.add('a', 'requeue');
    expect(queue.size).toBe(2);
    blocker.resolve();
    await queue.onIdle();
    expect(calls.map((c) => [c.key, c.trigger])).toEqual([
      ['blocker', 'add'],
      ['a', 'notify'],
      ['b', 'notify'],
    ]);
  });

  it('processes keys in FIFO order of first add; a re-queued dirty key goes to the back', async () => {
    const { queue, keysCalled, gate } = harness();
    const x = gate('x');
    queue.add('x');
    await settle();
    for (const k of ['c', 'a', 'b', 'a', 'x', 'c', 'd']) queue.add(k);
    x.resolve();
    await queue.onIdle();
    expect(keysCalled()).toEqual(['x', 'c', 'a', 'b', 'd', 'x']);
  });
});

describe('WorkQueue in-flight keys', () => {
  it('re-queues a key added during processing exactly once, with the first trigger that arrived', async () => {
    const { queue, calls, gate } = harness({ concurrency: 4 });
    const a = gate('a');
    queue.add('a', 'notify');
    await settle();
    expect(queue.inFlight).toBe(1);
    queue.add('a', 'resync');
    for (let i = 0; i < 5; i++) queue.add('a', 'notify');
    await settle();
    // Not waiting and not started a second time while in flight.
    expect(queue.size).toBe(0);
    expect(calls).toHaveLength(1);
    a.resolve();
    await queue.onIdle();
    expect(calls.map((c) => c.trigger)).toEqual(['notify', 'resync']);
  });

  it('never runs one key on two workers at once under many concurrent adds, and every add is followed by a run', async () => {
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    const active = new Map<string, number>();
    let maxPerKey = 0;
    let maxTotal = 0;
    let seq = 0;
    const lastAddSeq = new Map<string, number>();
    const lastStartSeq = new Map<string, number>();
    let rng = 42;
    const next = (n: number): number => {
      rng = (rng * 1103515245 + 12345) % 2 ** 31;
      return rng % n;
    };

    const queue = new WorkQueue({
      concurrency: 3,
      handle: async (key) => {
        lastStartSeq.set(key, ++seq);
        const now = (active.get(key) ?? 0) + 1;
        active.set(key, now);
        maxPerKey = Math.max(maxPerKey, now);
        maxTotal = Math.max(maxTotal, [...active.values()].reduce((a, b) => a + b, 0));
        await new Promise((r) => setTimeout(r, 1 + next(5)));
        active.set(key, (active.get(key) ?? 1) - 1);
      },
    });

    for (let round = 0; round < 300; round++) {
      const key = keys[next(keys.length)]!;
      lastAddSeq.set(key, ++seq);
      queue.add(key, 'notify');
      if (next(3) === 0) await vi.advanceTimersByTimeAsync(next(3));
    }
    const idle = queue.onIdle();
    await vi.runAllTimersAsync();
    await idle;

    expect(maxPerKey).toBe(1);
    expect(maxTotal).toBeLessThanOrEqual(3);
    // The level-triggered guarantee: no add is left without a run that began after it.
    for (const key of lastAddSeq.keys()) {
      expect(lastStartSeq.get(key)!).toBeGreaterThan(lastAddSeq.get(key)!);
    }
  });

  it('respects the concurrency bound', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const release = deferred();
    const done: string[] = [];
    const queue = new WorkQueue({
      concurrency: 3,
      handle: async (key) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await release.promise;
        inFlight--;
        done.push(key);
      },
    });
    for (let i = 0; i < 10; i++) queue.add(`k${i}`);
    await settle();
    expect(queue.inFlight).toBe(3);
    expect(queue.size).toBe(7);
    release.resolve();
    await queue.onIdle();
    expect(maxInFlight).toBe(3);
    expect(done).toHaveLength(10);
  });
});

describe('WorkQueue retries', () => {
  it('computes base * 2^(failures-1), capped', () => {
    expect([1, 2, 3, 4, 5].map((n) => exponentialBackoffMs(n, 5, 60_000))).toEqual([5, 10, 20, 40, 80]);
    expect(exponentialBackoffMs(20, 5, 60_000)).toBe(60_000);
    expect(exponentialBackoffMs(5000, 5, 60_000)).toBe(60_000);
  });

  it('backs off 5, 10, 20, ... capped, waits exactly that long, and forgets on success', async () => {
    const failUntil = 8;
    const { queue, calls, errors } = harness({
      maxBackoffMs: 100,
      behave: (_key, nth) => (nth < failUntil || nth === failUntil + 1 ? new Error('boom') : undefined),
    });
    queue.add('a');
    await settle();
    expect(errors.map((e) => e.retryInMs)).toEqual([5]);

    // Each retry fires at exactly its delay, not a millisecond earlier.
    const expected = [5, 10, 20, 40, 80, 100, 100];
    for (let i = 0; i < expected.length; i++) {
      const before = calls.length;
      await vi.advanceTimersByTimeAsync(expected[i]! - 1);
      expect(calls).toHaveLength(before);
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toHaveLength(before + 1);
      expect(calls.at(-1)!.trigger).toBe('retry');
    }
    expect(errors.map((e) => e.retryInMs)).toEqual([5, 10, 20, 40, 80, 100, 100]);
    expect(errors.map((e) => e.failures)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // Call 8 succeeded: nothing scheduled, failures forgotten.
    expect(queue.scheduled).toBe(0);
    expect(queue.failures('a')).toBe(0);

    queue.add('a');
    await settle();
    expect(errors.at(-1)).toEqual({ key: 'a', retryInMs: 5, failures: 1 });
    await vi.advanceTimersByTimeAsync(5);
    await queue.onIdle();
    expect(calls).toHaveLength(10);
    expect(queue.failures('a')).toBe(0);
  });

  it('keeps backoff per key', async () => {
    const { queue, errors } = harness({
      concurrency: 2,
      behave: (key, nth) => (key === 'bad' && nth <= 3 ? new Error('boom') : undefined),
    });
    queue.add('bad');
    queue.add('good');
    await vi.advanceTimersByTimeAsync(100);
    await queue.onIdle();
    expect(errors).toEqual([
      { key: 'bad', retryInMs: 5, failures: 1 },
      { key: 'bad', retryInMs: 10, failures: 2 },
      { key: 'bad', retryInMs: 20, failures: 3 },
    ]);
    expect(queue.failures('good')).toBe(0);
  });

  it('reruns a key that failed while dirty at once, still counting the failure', async () => {
    const { queue, calls, errors, gate } = harness({
      behave: (_key, nth) => (nth <= 2 ? new Error('boom') : undefined),
    });
    const a = gate('a');
    queue.add('a');
    await settle();
    queue.add('a', 'notify');
    a.resolve();
    await settle();
    expect(errors).toEqual([
      { key: 'a', retryInMs: 0, failures: 1 },
      { key: 'a', retryInMs: 10, failures: 2 },
    ]);
    expect(calls.map((c) => c.trigger)).toEqual(['add', 'notify']);
    await vi.advanceTimersByTimeAsync(10);
    await queue.onIdle();
    expect(calls.map((c) => c.trigger)).toEqual(['add', 'notify', 'retry']);
    expect(queue.failures('a')).toBe(0);
  });

  it('keeps going when onError throws', async () => {
    const { queue, calls } = harness({
      onError: () => {
        throw new Error('observer broke');
      },
      behave: (_key, nth) => (nth === 1 ? new Error('boom') : undefined),
    });
    queue.add('a');
    await vi.advanceTimersByTimeAsync(5);
    await queue.onIdle();
    expect(calls).toHaveLength(2);
  });

  it('drops failure counts and timers of keys that recover', async () => {
    const { queue } = harness({
      concurrency: 4,
      behave: (_key, nth) => (nth === 1 ? new Error('boom') : undefined),
    });
    for (let i = 0; i < 50; i++) queue.add(`k${i}`);
    await settle();
    expect(queue.scheduled).toBe(50);
    await vi.advanceTimersByTimeAsync(5);
    await queue.onIdle();
    expect(queue.scheduled).toBe(0);
    for (let i = 0; i < 50; i++) expect(queue.failures(`k${i}`)).toBe(0);
  });
});

describe('WorkQueue delayed adds', () => {
  it('requeues after requeueAfterMs', async () => {
    const { queue, calls } = harness({
      behave: (_key, nth) => (nth === 1 ? { requeueAfterMs: 1000 } : { requeueAfterMs: null }),
    });
    queue.add('a');
    await settle();
    expect(queue.scheduled).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.map((c) => [c.trigger, c.at])).toEqual([
      ['add', 0],
      ['requeue', 1000],
    ]);
    await queue.onIdle();
    expect(queue.scheduled).toBe(0);
  });

  it('keeps the earliest timer for a key', async () => {
    const { queue, calls } = harness();
    queue.addAfter('a', 1000, 'grace');
    queue.addAfter('a', 500, 'sooner');
    queue.addAfter('a', 2000, 'later');
    expect(queue.scheduled).toBe(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(calls.map((c) => [c.trigger, c.at])).toEqual([['sooner', 500]]);
  });

  it('a plain add runs now and cancels the pending delayed add', async () => {
    const { queue, calls } = harness();
    queue.addAfter('a', 1000);
    queue.add('a', 'notify');
    expect(queue.scheduled).toBe(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls.map((c) => [c.trigger, c.at])).toEqual([['notify', 0]]);
  });

  it('treats a non-positive delay as a plain add', async () => {
    const { queue, calls } = harness({
      behave: (_key, nth) => (nth === 1 ? { requeueAfterMs: 0 } : undefined),
    });
    queue.add('a');
    await queue.onIdle();
    expect(calls.map((c) => c.trigger)).toEqual(['add', 'requeue']);
  });

  it('onIdle waits for scheduled keys', async () => {
    const { queue, calls } = harness();
    queue.addAfter('a', 100);
    let idle = false;
    void queue.onIdle().then(() => (idle = true));
    await vi.advanceTimersByTimeAsync(99);
    expect(idle).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(idle).toBe(true);
    expect(calls).toHaveLength(1);
  });
});

describe('WorkQueue shutdown', () => {
  it('awaits in-flight handlers, drops waiting and scheduled keys, and ignores later adds', async () => {
    const { queue, calls, errors, gate } = harness({
      concurrency: 2,
      behave: () => new Error('in-flight failure must not schedule a retry'),
    });
    const a = gate('a');
    const b = gate('b');
    queue.add('a');
    queue.add('b');
    queue.add('c');
    queue.add('d');
    queue.addAfter('e', 50);
    await settle();
    expect(queue.inFlight).toBe(2);
    queue.add('a'); // dirty: must not run after shutdown

    let stopped = false;
    const stopping = queue.shutdown().then(() => (stopped = true));
    expect(queue.size).toBe(0);
    expect(queue.scheduled).toBe(0);
    queue.add('f');
    queue.addAfter('g', 1);
    expect(queue.size).toBe(0);
    expect(queue.scheduled).toBe(0);

    a.resolve();
    await settle();
    expect(stopped).toBe(false);
    b.resolve();
    await stopping;
    expect(stopped).toBe(true);

    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.map((c) => c.key)).toEqual(['a', 'b']);
    // No retry is coming, so there is no retry delay to report and no failure count to keep.
    expect(errors).toEqual([]);
    expect(queue.failures('a')).toBe(0);
    expect(queue.inFlight).toBe(0);
    expect(queue.scheduled).toBe(0);
    await queue.onIdle();
  });

  it('resolves at once when nothing is in flight', async () => {
    const { queue } = harness();
    queue.addAfter('a', 10);
    await queue.shutdown();
    await vi.advanceTimersByTimeAsync(100);
    expect(queue.inFlight).toBe(0);
  });
});

describe('WorkQueue batches', () => {
  /** A batch queue whose handler records each batch; `behave` gives each key's outcome. */
  function batchHarness(maxBatch: number, behave: (key: string) => HandleResult | Error | 'missing' = () => undefined) {
    const batches: string[][] = [];
    const gates: Deferred[] = [];
    const errors: string[] = [];
    const queue = new WorkQueue({
      concurrency: 1,
      maxBatch,
      onError: (key) => errors.push(key),
      handleBatch: async (items) => {
        batches.push(items.map((i) => i.key));
        const gate = gates.shift();
        if (gate) await gate.promise;
        const out = new Map<string, Outcome>();
        for (const { key } of items) {
          const o = behave(key);
          if (o === 'missing') continue;
          out.set(key, o instanceof Error ? { ok: false, err: o } : { ok: true, result: o });
        }
        return out;
      },
    });
    const gate = (): Deferred => {
      const d = deferred();
      gates.push(d);
      return d;
    };
    return { queue, batches, errors, gate };
  }

  it('hands a lone key over alone, and a backlog in FIFO batches of at most maxBatch', async () => {
    const { queue, batches, gate } = batchHarness(3);
    const first = gate();
    queue.add('solo');
    await settle();
    for (const k of ['a', 'b', 'c', 'd', 'e', 'solo']) queue.add(k);
    first.resolve();
    await queue.onIdle();
    expect(batches).toEqual([['solo'], ['a', 'b', 'c'], ['d', 'e', 'solo']]);
  });

  it('settles each key of a batch by its own outcome: requeue, retry with back-off, or failure when missing', async () => {
    const { queue, batches, errors, gate } = batchHarness(10, (key) =>
      key === 'later' ? { requeueAfterMs: 1_000 } : key === 'broken' ? new Error('boom') : key === 'lost' ? 'missing' : undefined,
    );
    const blocker = gate();
    queue.add('blocker');
    await settle();
    for (const k of ['fine', 'later', 'broken', 'lost']) queue.add(k);
    blocker.resolve();
    await settle();
    expect(batches).toEqual([['blocker'], ['fine', 'later', 'broken', 'lost']]);
    expect(errors.sort()).toEqual(['broken', 'lost']);
    expect(queue.failures('broken')).toBe(1);
    expect(queue.failures('fine')).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    // The failed keys came back after their 5 ms back-off (and keep failing); the requeue after its second, once.
    const rerun = batches.slice(2).flat();
    expect(new Set(rerun)).toEqual(new Set(['broken', 'later', 'lost']));
    expect(rerun.filter((k) => k === 'later')).toHaveLength(1);
    expect(rerun.filter((k) => k === 'fine')).toHaveLength(0);
    await queue.shutdown();
  });

  it('fails every key of a batch whose handler throws', async () => {
    const errors: string[] = [];
    const queue = new WorkQueue({
      concurrency: 1,
      maxBatch: 5,
      baseBackoffMs: 60_000,
      onError: (key) => errors.push(key),
      handleBatch: async () => {
        throw new Error('database away');
      },
    });
    for (const k of ['a', 'b']) queue.add(k);
    await settle();
    expect(errors).toEqual(['a', 'b']);
    expect(queue.scheduled).toBe(2);
    await queue.shutdown();
  });
});
