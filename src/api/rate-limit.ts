import type { MiddlewareHandler } from 'hono';
import { LruMap } from '../lib/lru.js';
import type { Metrics } from '../metrics.js';
import type { ApiEnv } from './auth.js';
import { RateLimitedError } from './errors.js';

export interface TokenBucketOptions {
  /** Tokens added per second: the sustained rate. Must be positive. */
  readonly perSecond: number;
  /** Most tokens a bucket holds: the burst a caller idle long enough may send at once. */
  readonly burst: number;
  /** Buckets kept (least recently used out); 10 000 by default. */
  readonly capacity?: number;
  /** Milliseconds on a clock that only moves forward; performance.now by default. */
  readonly now?: () => number;
}

export type Admission = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per key. Memory stays flat however many keys pass by: a bucket dropped from the LRU
 * comes back full, which is what it would be anyway once idle for burst / perSecond seconds, so
 * eviction only lets a caller through early when more than `capacity` keys are active in that time.
 */
export class TokenBuckets {
  readonly #buckets: LruMap<string, Bucket>;
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor(options: TokenBucketOptions) {
    if (!(options.perSecond > 0) || !(options.burst >= 1)) {
      throw new Error(`token bucket needs perSecond > 0 and burst >= 1, got ${options.perSecond} and ${options.burst}`);
    }
    this.#buckets = new LruMap(options.capacity ?? 10_000);
    this.#perSecond = options.perSecond;
    this.#burst = options.burst;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Takes one token from `key`'s bucket, or says how long until one is there. */
  take(key: string): Admission {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    }
    // max(0, …): an injected clock that steps back must not drain the bucket. Multiplying before
    // dividing keeps whole amounts exact (500 ms at 2/s is 1 token, not 0.9999…).
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.#perSecond) / 1000);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: ((1 - bucket.tokens) * 1000) / this.#perSecond };
  }

  get size(): number {
    return this.#buckets.size;
  }
}

/** A node agent's budget, in multiples of a user's: it reports every replica placed on its node. */
export const NODE_RATE_FACTOR = 10;

/**
 * 429 once the caller's bucket is empty. Mount after `authenticate`: the key is the verified `sub`,
 * so an unauthenticated flood is answered 401 without growing the map, and no one can spend another
 * caller's tokens. A node agent is its own subject, so no user can starve its heartbeats; node-only
 * tokens draw from `nodeBuckets` (a larger budget: a node starting a hundred replicas reports each).
 */
export function rateLimit(buckets: TokenBuckets, metrics: Metrics, nodeBuckets: TokenBuckets = buckets): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const { subject, roles } = c.get('principal');
    const isNode = roles.has('node') && !roles.has('admin');
    const admission = (isNode ? nodeBuckets : buckets).take(subject);
    if (!admission.allowed) {
      metrics.httpRateLimited.inc();
      // Whole seconds (RFC 9110), rounded up so a client that waits as told finds a token.
      throw new RateLimitedError(Math.max(1, Math.ceil(admission.retryAfterMs / 1000)));
    }
    await next();
  };
}
