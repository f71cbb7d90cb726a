import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { Context } from '../../context.js';
import type { ApiEnv } from '../auth.js';
import { jsonContent } from '../openapi.js';
import { HealthzSchema, ReadyzSchema } from '../schemas.js';

export interface Readiness {
  /** Whether every known migration is applied (Migrator.isCurrent). */
  isCurrent(): Promise<boolean>;
}

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['operations'],
  summary: 'Liveness: the process answers (no database)',
  responses: { 200: jsonContent(HealthzSchema, 'Alive') },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  tags: ['operations'],
  summary: 'Readiness: the database answers and the schema is current',
  responses: { 200: jsonContent(ReadyzSchema, 'Ready'), 503: jsonContent(ReadyzSchema, 'Not ready, with the reason') },
});

const metrics = createRoute({
  method: 'get',
  path: '/metrics',
  tags: ['operations'],
  summary: 'Prometheus metrics (text exposition format)',
  responses: { 200: { description: 'Metrics', content: { 'text/plain': { schema: z.string() } } } },
});

export function registerOpsRoutes(app: OpenAPIHono<ApiEnv>, ctx: Context, readiness: Readiness, timeoutMs: number): void {
  app.openapi(healthz, (c) => c.json({ status: 'ok' as const }, 200));

  app.openapi(readyz, async (c) => {
    const reason = await notReadyReason(ctx, readiness, timeoutMs);
    return reason === null ? c.json({ status: 'ready' as const }, 200) : c.json({ status: 'unavailable' as const, reason }, 503);
  });

  app.openapi(metrics, async (c) => {
    const registry = ctx.metrics.registry;
    return c.text(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  });
}

/**
 * Null when ready, else why not. Time-boxed: a pool waiting for a connection to a dead server would
 * otherwise hold the probe for the pool's connect timeout, and the orchestrator's probe times out
 * with no reason given.
 */
async function notReadyReason(ctx: Context, readiness: Readiness, timeoutMs: number): Promise<string | null> {
  const check = (async () => {
    await sql`SELECT 1`.execute(ctx.database.db);
    return (await readiness.isCurrent()) ? null : 'database migrations are not current (run `steady migrate up`)';
  })();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`database did not answer within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([check.catch((err: unknown) => `database unreachable: ${err instanceof Error ? err.message : String(err)}`), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
