/** Delay before retry number `failures` (1-based): base * 2^(failures-1), capped at max. */
export function exponentialBackoffMs(failures: number, baseMs: number, maxMs: number): number {
  if (failures < 1) return 0;
  // 2 ** large overflows to Infinity, which Math.min caps; no special case needed.
  return Math.min(baseMs * 2 ** (failures - 1), maxMs);
}

export interface BackoffStep {
  readonly delayMs: number;
  readonly failures: number;
}

/**
 * Per-key failure counts, like client-go's ItemExponentialFailureRateLimiter.
 * Callers must `forget` a key once it succeeds or is dropped, or the map grows with every key that ever failed.
 */
export class KeyBackoff {
  readonly #failures = new Map<string, number>();

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
  ) {
    if (!(baseMs > 0)) throw new RangeError(`baseBackoffMs must be > 0, got ${baseMs}`);
    if (!(maxMs >= baseMs)) throw new RangeError(`maxBackoffMs must be >= baseBackoffMs (${baseMs}), got ${maxMs}`);
  }

  /** Records one more failure of `key` and returns how long to wait before retrying it. */
  next(key: string): BackoffStep {
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    return { delayMs: exponentialBackoffMs(failures, this.baseMs, this.maxMs), failures };
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Keys with a non-zero failure count. */
  get size(): number {
    return this.#failures.size;
  }

  clear(): void {
    this.#failures.clear();
  }
}
