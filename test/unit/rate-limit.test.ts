import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { ApiEnv } from '../../src/api/auth.js';
import { createErrorHandler } from '../../src/api/errors.js';
import { rateLimit, TokenBuckets } from '../../src/api/rate-limit.js';
import { loadConfig } from '../../src/config.js';
import { createMetrics } from '../../src/metrics.js';
import { silentLogger } from '../support/databases.js';

/** A clock the test moves by hand. */
function fakeClock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms), set: (ms: number) => (now = ms) };
}

const drain = (buckets: TokenBuckets, key: string, n: number) => Array.from({ length: n }, () => buckets.take(key).allowed);

describe('TokenBuckets', () => {
  it('lets a new caller spend the whole burst at once, then refuses with the wait until the next token', () => {
    const clock = fakeClock();
    const buckets = new TokenBuckets({ perSecond: 2, burst: 3, now: clock.now });
    expect(drain(buckets, 'alice', 3)).toEqual([true, true, true]);
    expect(buckets.take('alice')).toEqual({ allowed: false, retryAfterMs: 500 });
    clock.advance(200);
    expect(buckets.take('alice')).toEqual({ allowed: false, retryAfterMs: 300 });
  });

  it('refills at the sustained rate, never above the burst', () => {
    const clock = fakeClock();
    const buckets = new TokenBuckets({ perSecond: 2, burst: 3, now: clock.now });
    drain(buckets, 'alice', 3);
    clock.advance(500);
    expect(drain(buckets, 'alice', 2)).toEqual([true, false]);
    clock.advance(1_000);
    expect(drain(buckets, 'alice', 3)).toEqual([true, true, false]);
    clock.advance(60_000);
    expect(drain(buckets, 'alice', 4)).toEqual([true, true, true, false]);
  });

  it('holds the sustained rate over a long run: 50/s for 10 s admits 100 burst + 500', () => {
    const clock = fakeClock();
    const buckets = new TokenBuckets({ perSecond: 50, burst: 100, now: clock.now });
    let admitted = 0;
    // Steps of 20 ms, one token each at 50/s; three tries a step keep the caller always asking.
    for (let ms = 0; ms <= 10_000; ms += 20) {
      clock.set(1_000 + ms);
      for (let i = 0; i < 3; i++) if (buckets.take('loop').allowed) admitted++;
    }
    expect(admitted).toBe(600);
  });

  it('keeps callers apart: one caller emptying its bucket leaves the others full', () => {
    const clock = fakeClock();
    const buckets = new TokenBuckets({ perSecond: 1, burst: 2, now: clock.now });
    expect(drain(buckets, 'alice', 3)).toEqual([true, true, false]);
    expect(drain(buckets, 'bob', 2)).toEqual([true, true]);
    expect(drain(buckets, 'node-1', 2)).toEqual([true, true]);
  });

  it('stays within its capacity however many callers appear, dropping the least recently seen', () => {
    const clock = fakeClock();
    const buckets = new TokenBuckets({ perSecond: 1, burst: 1, capacity: 3, now: clock.now });
    expect(buckets.take('a').allowed).toBe(true);
    for (let i = 0; i < 1_000; i++) buckets.take(`flood-${i}`);
    expect(buckets.size).toBe(3);
    // 'a' was dropped and comes back full: what it would be after a second anyway.
    expect(buckets.take('a').allowed).toBe(true);
    // A caller in use stays: 'b' is touched between the newcomers and keeps its empty bucket.
    buckets.take('b');
    buckets.take('x');
    buckets.take('b');
    buckets.take('y');
    expect(buckets.take('b').allowed).toBe(false);
  });

  it('does not drain or refill when the clock steps back', () => {
    const clock = fakeClock(10_000);
    const buckets = new TokenBuckets({ perSecond: 1, burst: 2, now: clock.now });
    buckets.take('alice');
    clock.set(5_000);
    expect(drain(buckets, 'alice', 2)).toEqual([true, false]);
    clock.advance(1_000);
    expect(buckets.take('alice').allowed).toBe(true);
  });

  it('refuses a limit that could never admit anything', () => {
    expect(() => new TokenBuckets({ perSecond: 0, burst: 10 })).toThrow(/perSecond > 0/);
    expect(() => new TokenBuckets({ perSecond: 1, burst: 0.5 })).toThrow(/burst >= 1/);
  });
});

describe('rateLimit middleware', () => {
  function app(perSecond: number, burst: number) {
    const clock = fakeClock();
    const metrics = createMetrics({ defaultMetrics: false });
    const hono = new Hono<ApiEnv>();
    hono.onError(createErrorHandler(silentLogger));
    hono.use('*', async (c, next) => {
      c.set('principal', { subject: c.req.header('X-Sub') ?? 'anon', roles: new Set(), username: null });
      await next();
    });
    hono.use('*', rateLimit(new TokenBuckets({ perSecond, burst, now: clock.now }), metrics));
    hono.get('/x', (c) => c.json({ ok: true }));
    const get = (sub: string) => hono.request('/x', { headers: { 'X-Sub': sub } });
    return { clock, metrics, get };
  }

  it('answers 429 with the error body and Retry-After in whole seconds, rounded up, at least 1', async () => {
    const { get, clock } = app(0.25, 1);
    expect((await get('alice')).status).toBe(200);
    const res = await get('alice');
    expect(res.status).toBe(429);
    expect(res.headers.get('Retry-After')).toBe('4');
    expect(await res.json()).toEqual({ error: { code: 'rate_limited', message: expect.any(String) } });
    clock.advance(3_500);
    expect((await get('alice')).headers.get('Retry-After')).toBe('1');
  });

  it('never sends Retry-After: 0, even with a fraction of a second to wait', async () => {
    const { get } = app(1_000, 1);
    await get('alice');
    const res = await get('alice');
    expect(res.status).toBe(429);
    expect(res.headers.get('Retry-After')).toBe('1');
  });

  it('counts refusals in steady_http_rate_limited_total', async () => {
    const { get, metrics } = app(1, 1);
    for (let i = 0; i < 4; i++) await get('alice');
    await get('bob');
    expect(await metrics.registry.getSingleMetricAsString('steady_http_rate_limited_total')).toContain('steady_http_rate_limited_total 3');
  });
});

describe('rate limit configuration', () => {
  const base = { JWT_SECRET: 'x'.repeat(32) };

  it('defaults to 50 a second with bursts of 100', () => {
    expect(loadConfig(base).rateLimit).toEqual({ perSecond: 50, burst: 100 });
  });

  it('reads STEADY_RATE_LIMIT (0 = off) and STEADY_RATE_BURST', () => {
    expect(loadConfig({ ...base, STEADY_RATE_LIMIT: '0', STEADY_RATE_BURST: '7' }).rateLimit).toEqual({ perSecond: 0, burst: 7 });
  });

  it('names the variable when a value is bad', () => {
    expect(() => loadConfig({ ...base, STEADY_RATE_LIMIT: '-1' })).toThrow(/STEADY_RATE_LIMIT/);
    expect(() => loadConfig({ ...base, STEADY_RATE_LIMIT: 'fast' })).toThrow(/STEADY_RATE_LIMIT/);
    expect(() => loadConfig({ ...base, STEADY_RATE_BURST: '0' })).toThrow(/STEADY_RATE_BURST/);
  });
});
