import { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { Context } from '../context.js';
import { Migrator } from '../db/migrator.js';
import { authenticate, createAuthenticator, UserDirectory, type ApiEnv } from './auth.js';
import { createErrorHandler, notFoundHandler, validationHook } from './errors.js';
import { EventHub } from './events/event-hub.js';
import { NODE_RATE_FACTOR, rateLimit, TokenBuckets } from './rate-limit.js';
import { requestBodies } from './request-body.js';
import { requestLog } from './request-log.js';
import { packagedDashboard, type DashboardSource } from '../ui/dashboard-source.js';
import { registerDashboardRoutes } from './routes/dashboard.js';
import { registerDeploymentRoutes } from './routes/deployments.js';
import { registerEventRoutes } from './routes/events.js';
import { registerNodeRoutes } from './routes/nodes.js';
import { registerOpsRoutes, type Readiness } from './routes/ops.js';

export interface AppOptions {
  /** Largest request body accepted on /api/*; 64 KiB by default. */
  readonly bodyLimitBytes?: number;
  /** /readyz answers 503 when its checks take longer; 2 s by default. */
  readonly readinessTimeoutMs?: number;
  /** What /readyz asks about migrations; the package's Migrator by default. */
  readonly readiness?: Readiness;
  /** How many subject → user id mappings to keep in memory; 10 000 by default. */
  readonly userCacheSize?: number;
  /** How many callers' rate-limit buckets to keep in memory; 10 000 by default. */
  readonly rateLimitCallers?: number;
  /** The rate limiter's clock, in ms, only ever moving forward; performance.now by default. */
  readonly rateLimitNow?: () => number;
  /** The dashboard served at `/`; the package's (built on first request from a checkout) by default. */
  readonly dashboard?: DashboardSource;
  /**
   * The event streams; one of its own by default. Whoever stops the server closes it first
   * (open streams would hold the server's close until its deadline).
   */
  readonly events?: EventHub;
}

export type App = OpenAPIHono<ApiEnv>;

/**
 * The HTTP API over one context. Everything it holds (the JWKS cache, the user id cache, the rate
 * limiter's buckets) belongs to this app instance: two apps in one process share nothing.
 */
export function createApp(ctx: Context, options: AppOptions = {}): App {
  const verify = createAuthenticator(ctx.config.jwt);
  const users = new UserDirectory(ctx.database, options.userCacheSize);
  const readiness = options.readiness ?? new Migrator(ctx.database);
  const app = new OpenAPIHono<ApiEnv>({ defaultHook: validationHook });

  app.onError(createErrorHandler(ctx.logger));
  app.notFound(notFoundHandler);
  app.use('*', requestLog(ctx.logger, ctx.metrics));
  const bodies = requestBodies(options.bodyLimitBytes ?? 64 * 1024);
  // A GET or HEAD has no body to read, and asking for one makes the Node adapter build a whole
  // Fetch Request (with an AbortSignal): a third of a status read's CPU before this check.
  const withBody = (handler: MiddlewareHandler<ApiEnv>): MiddlewareHandler<ApiEnv> => (c, next) =>
    c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : handler(c, next);
  app.use('/api/*', withBody(bodies.refuseDeclared));
  app.use('/api/*', authenticate(verify));
  const { perSecond, burst } = ctx.config.rateLimit;
  if (perSecond > 0) {
    // After authenticate: buckets are keyed by verified subjects, never by whatever a client sends.
    const buckets = (factor: number) =>
      new TokenBuckets({ perSecond: perSecond * factor, burst: burst * factor, capacity: options.rateLimitCallers, now: options.rateLimitNow });
    app.use('/api/*', rateLimit(buckets(1), ctx.metrics, buckets(NODE_RATE_FACTOR)));
  }
  app.use('/api/*', withBody(bodies.read));

  registerDeploymentRoutes(app, ctx, users);
  registerNodeRoutes(app, ctx);
  const events = options.events ?? createEventHub(ctx);
  registerEventRoutes(app, ctx, users, events);
  registerOpsRoutes(app, ctx, readiness, options.readinessTimeoutMs ?? 2_000);
  registerDashboardRoutes(app, options.dashboard ?? packagedDashboard());

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'HS256 with JWT_SECRET, or RS256/ES256 from JWT_JWKS_URL; `roles` may hold admin and node',
  });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'steady',
      version: '0.1.0',
      description: 'Declare deployments; watch them converge. Errors are always {"error": {code, message, details?}}.',
    },
  });
  return app;
}

export function createEventHub(ctx: Context): EventHub {
  return new EventHub(ctx.database, { logger: ctx.logger, streamsPerCaller: ctx.config.events.streamsPerCaller });
}
