import { loadConfig, type Config } from '../../src/config.js';
import { systemClock, type Context } from '../../src/context.js';
import type { Database } from '../../src/db/database.js';
import { createMetrics } from '../../src/metrics.js';
import { silentLogger } from './databases.js';

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256!';

/** A context over a test database, with fast controller timings unless overridden through `env`. */
export function testContext(database: Database, env: Record<string, string> = {}): Context {
  const config: Config = loadConfig({
    JWT_SECRET: TEST_JWT_SECRET,
    STEADY_LEADER_ELECTION: 'false',
    STEADY_RESYNC_PERIOD: '2s',
    STEADY_BACKOFF_BASE: '200ms',
    STEADY_BACKOFF_MAX: '1s',
    LOG_LEVEL: 'silent',
    ...env,
  });
  return { config, database, logger: silentLogger, metrics: createMetrics({ defaultMetrics: false }), clock: systemClock };
}
