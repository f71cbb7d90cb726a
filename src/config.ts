import path from 'node:path';
import { parseDuration } from './lib/duration.js';

/**
 * The whole environment, parsed and validated once at start-up. A bad value stops start-up with a
 * message naming the variable and what it expects (Hono's jwt() refuses a missing secret at build
 * time for the same reason: fail before the first request, not during it).
 */
export interface Config {
  /** PostgreSQL connection string; null means the embedded PGlite database in `dataDir`. */
  readonly databaseUrl: string | null;
  readonly dataDir: string;
  readonly dbPoolMax: number;
  /** Run parameterised statements as named prepared statements (parsed and planned once per connection). */
  readonly dbPrepare: boolean;
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly logFormat: 'json' | 'pretty' | 'auto';
  readonly jwt: JwtConfig;
  readonly rateLimit: RateLimitConfig;
  readonly events: EventsConfig;
  readonly controller: ControllerConfig;
}

/** The event stream (GET /api/events). */
export interface EventsConfig {
  /** How long events are kept; a client resuming from an older id gets `reset`. */
  readonly retentionMs: number;
  /** Open streams per caller (JWT `sub`) on each API process. */
  readonly streamsPerCaller: number;
}

export interface JwtConfig {
  readonly secret: string | null;
  readonly jwksUrl: string | null;
  readonly issuer: string | null;
  readonly audience: string | null;
  /** Seconds of clock skew tolerated on `exp` and `nbf`. */
  readonly clockToleranceSec: number;
}

/** A token bucket per caller (JWT `sub`) on /api/*, in each API process. */
export interface RateLimitConfig {
  /** Sustained requests per second per caller; 0 turns the limit off. */
  readonly perSecond: number;
  /** Requests a caller may make at once after being idle: the bucket's size. */
  readonly burst: number;
}

export interface ControllerConfig {
  readonly concurrency: number;
  /** Most deployments reconciled in one transaction when a backlog builds up. */
  readonly batchSize: number;
  readonly resyncMs: number;
  readonly leaderElection: boolean;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly retryMs: number;
  readonly nodeGraceMs: number;
  readonly nodeEvictionMs: number;
  readonly retentionMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly failureThreshold: number;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    expected: string,
    value: string,
  ) {
    super(`${variable}: expected ${expected}, got ${JSON.stringify(value)}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const read = new EnvReader(env);
  const databaseUrl = read.string('DATABASE_URL');
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'a postgres:// or postgresql:// URL', '<redacted>');
  }
  const jwksUrl = read.string('JWT_JWKS_URL');
  if (jwksUrl !== null && !/^https?:\/\//.test(jwksUrl)) {
    throw new ConfigError('JWT_JWKS_URL', 'an http(s) URL', jwksUrl);
  }
  const secret = read.string('JWT_SECRET');
  if (secret !== null && secret.length < 32) {
    throw new ConfigError('JWT_SECRET', 'at least 32 characters (256 bits for HS256)', '<redacted>');
  }
  const leaseMs = read.duration('STEADY_LEASE_DURATION', 15_000);
  const renewMs = read.duration('STEADY_LEASE_RENEW', 10_000);
  if (renewMs >= leaseMs) {
    throw new ConfigError('STEADY_LEASE_RENEW', `a duration shorter than STEADY_LEASE_DURATION (${leaseMs}ms)`, String(renewMs));
  }
  const nodeGraceMs = read.duration('STEADY_NODE_GRACE_PERIOD', 40_000);
  const config: Config = {
    databaseUrl,
    dataDir: path.resolve(cwd, read.string('STEADY_DATA_DIR') ?? '.steady'),
    dbPoolMax: read.integer('STEADY_DB_POOL_MAX', 10, 1, 1000),
    dbPrepare: read.boolean('STEADY_DB_PREPARE', true),
    host: read.string('HOST') ?? '127.0.0.1',
    port: read.integer('PORT', 8080, 0, 65535),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    logFormat: read.oneOf('LOG_FORMAT', ['json', 'pretty', 'auto'] as const, 'auto'),
    jwt: {
      secret,
      jwksUrl,
      issuer: read.string('JWT_ISSUER'),
      audience: read.string('JWT_AUDIENCE'),
      clockToleranceSec: read.integer('JWT_CLOCK_TOLERANCE', 5, 0, 300),
    },
    // 50/s with bursts of 100 is far above what a person, a script polling status, or a node agent
    // (a heartbeat every few seconds plus a report per replica change) sends; it stops a runaway loop.
    rateLimit: {
      perSecond: read.integer('STEADY_RATE_LIMIT', 50, 0, 1_000_000),
      burst: read.integer('STEADY_RATE_BURST', 100, 1, 1_000_000),
    },
    // An hour, like Kubernetes' event TTL: enough to ride out a restart or a laptop's sleep.
    events: {
      retentionMs: read.duration('STEADY_EVENT_RETENTION', 3_600_000),
      streamsPerCaller: read.integer('STEADY_EVENT_STREAMS', 10, 1, 10_000),
    },
    controller: {
      concurrency: read.integer('STEADY_CONCURRENCY', 8, 1, 256),
      batchSize: read.integer('STEADY_RECONCILE_BATCH', 50, 1, 1000),
      resyncMs: read.duration('STEADY_RESYNC_PERIOD', 30_000),
      leaderElection: read.boolean('STEADY_LEADER_ELECTION', true),
      leaseMs,
      renewMs,
      retryMs: read.duration('STEADY_LEASE_RETRY', 2_000),
      nodeGraceMs,
      nodeEvictionMs: read.duration('STEADY_NODE_EVICTION_TIMEOUT', 300_000),
      retentionMs: read.duration('STEADY_RETENTION', 24 * 3_600_000),
      backoffBaseMs: read.duration('STEADY_BACKOFF_BASE', 10_000),
      backoffMaxMs: read.duration('STEADY_BACKOFF_MAX', 300_000),
      failureThreshold: read.integer('STEADY_FAILURE_THRESHOLD', 5, 1, 1000),
    },
  };
  return deepFreeze(config);
}

class EnvReader {
  constructor(private readonly env: Env) {}

  string(name: string): string | null {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? null : value.trim();
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.string(name);
    if (raw === null) return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || value < min || value > max) {
      throw new ConfigError(name, `an integer from ${min} to ${max}`, raw);
    }
    return value;
  }

  duration(name: string, fallbackMs: number): number {
    const raw = this.string(name);
    if (raw === null) return fallbackMs;
    const value = parseDuration(raw);
    if (value === null || value <= 0) {
      throw new ConfigError(name, 'a positive duration such as 500ms, 30s, 5m or 24h', raw);
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.string(name);
    if (raw === null) return fallback;
    if (['true', '1', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['false', '0', 'no', 'off'].includes(raw.toLowerCase())) return false;
    throw new ConfigError(name, 'true or false', raw);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.string(name);
    if (raw === null) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new ConfigError(name, `one of ${allowed.join(', ')}`, raw);
    }
    return raw as T;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
