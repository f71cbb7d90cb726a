import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Periodic } from '../../src/controller/periodic.js';

describe('Periodic', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const counting = () => {
    const starts: number[] = [];
    return { starts, task: async () => void starts.push(performance.now()) };
  };

  it('without a gap, a trigger runs the task at once', async () => {
    const { starts, task } = counting();
    const p = new Periodic(10_000, task, () => undefined);
    p.start(false);
    for (let i = 0; i < 5; i++) {
      p.trigger();
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(starts).toHaveLength(5);
    await p.stop();
  });

  it('with a gap, triggers in between coalesce: a run at most once per gap, and one soon after the last trigger', async () => {
    const { starts, task } = counting();
    const p = new Periodic(60_000, task, () => undefined, 1_000);
    p.start(false);
    // 300 triggers over 3 s (one a notification every 10 ms).
    for (let i = 0; i < 300; i++) {
      p.trigger();
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(starts.length).toBeGreaterThanOrEqual(3);
    expect(starts.length).toBeLessThanOrEqual(4);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(1_000);
    // The last trigger is never lost: a run follows within the gap.
    const before = starts.length;
    p.trigger();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(starts.length).toBe(before + 1);
    await p.stop();
  });

  it('a first trigger after a quiet spell runs at once', async () => {
    const { starts, task } = counting();
    const p = new Periodic(60_000, task, () => undefined, 1_000);
    p.start(false);
    await vi.advanceTimersByTimeAsync(5_000);
    p.trigger();
    await vi.advanceTimersByTimeAsync(0);
    expect(starts).toEqual([5_000]);
    await p.stop();
  });
});
