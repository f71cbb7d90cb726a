import type { Context as HonoContext, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ApiEnv } from './auth.js';

/** Routes polled all the time (probes, scrapes, agents' heartbeats): logged at debug while they succeed. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/api/nodes/:id/heartbeat']);

/** Reads change nothing: logged at debug while they succeed, as Nomad logs its requests. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The route pattern that answered (`/api/deployment/status/:id`), never the raw path: raw paths
 * carry ids and would give every request its own metric series. Middleware is registered for
 * method ALL; the handler is the last matched route with a real method.
 */
export function routePattern(c: HonoContext): string {
  const handler = matchedRoutes(c).findLast((route) => route.method !== 'ALL');
  return handler?.path ?? 'unmatched';
}

/**
 * One log line and one metric sample per request: method, route, status, duration, user. Never the
 * token or any header (the logger also redacts `authorization` wherever it appears). Reads, probes,
 * scrapes and heartbeats that succeed log at debug so they do not drown the operator's view (a
 * dashboard or a `get -w` reads all the time; at thousands of reads a second the lines alone took a
 * fifth of the process's CPU); changes and refusals at info; 5xx at warn. Every request is counted
 * in the metrics whatever its level.
 */
export function requestLog(logger: Logger, metrics: Metrics): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const labels = { method: c.req.method, route: routePattern(c), status: String(c.res.status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, seconds);
    const line = {
      method: labels.method,
      route: labels.route,
      status: c.res.status,
      duration_ms: Math.round(seconds * 100_000) / 100,
      user: c.get('principal')?.subject ?? null,
    };
    if (c.res.status >= 500) logger.warn(line, 'request');
    else if (c.res.status < 400 && (READS.has(labels.method) || QUIET_ROUTES.has(labels.route))) logger.debug(line, 'request');
    else logger.info(line, 'request');
  };
}
