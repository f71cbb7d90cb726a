import type { Config } from './config.js';
import type { Database } from './db/database.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** Wall-clock time, injectable so tests can move it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** What main.ts builds once and passes down; nothing in steady reaches for a global instead. */
export interface Context {
  readonly config: Config;
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
}
