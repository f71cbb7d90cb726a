import { OpenAPIHono } from '@hono/zod-openapi';
import { createApp, createEventHub, type App } from './api/app.js';
import type { ApiEnv } from './api/auth.js';
import { registerOpsRoutes } from './api/routes/ops.js';
import { serveApi, type RunningServer } from './api/server.js';
import type { Config } from './config.js';
import { systemClock, type Context } from './context.js';
import { Controller } from './controller/controller.js';
import { Migrator } from './db/migrator.js';
import { openDatabase } from './db/open.js';
import type { Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { VERSION } from './version.js';

export type Role = 'api' | 'controller' | 'all';

export interface Daemon {
  readonly ctx: Context;
  readonly server: RunningServer;
  readonly controller: Controller | null;
  /** Stop taking work and requests, finish what is in flight, release leadership, close the pool. */
  stop(): Promise<void>;
}

/**
 * Builds the context once and starts the pieces a role needs. A controller-only process still
 * serves /healthz, /readyz and /metrics (for its probes and Prometheus), but no /api.
 */
export async function startDaemon(config: Config, logger: Logger, role: Role, options: { migrate?: boolean } = {}): Promise<Daemon> {
  const database = await openDatabase(config, logger, `steady-${role}`);
  try {
    if (options.migrate) {
      const steps = await new Migrator(database).up();
      for (const s of steps) logger.info({ migration: `${s.version}_${s.name}`, duration_ms: Math.round(s.durationMs) }, 'applied migration');
    }
    const ctx: Context = { config, database, logger, metrics: createMetrics(), clock: systemClock };
    const events = role === 'controller' ? null : createEventHub(ctx);
    const app: App = events === null ? opsOnlyApp(ctx) : createApp(ctx, { events });
    const server = await serveApi(app, { host: config.host, port: config.port });
    const controller = role === 'api' ? null : new Controller(ctx);
    await controller?.start();
    logger.info({ version: VERSION, role, url: `http://${config.host}:${server.port}`, database: database.kind }, 'steady is up');
    return {
      ctx,
      server,
      controller,
      async stop() {
        // Event streams never end by themselves: close them first, so the server's close is quick.
        await Promise.all([controller?.stop(), events?.close().then(() => server.close()) ?? server.close()]);
        await database.close();
      },
    };
  } catch (err) {
    await database.close().catch(() => undefined);
    throw err;
  }
}

function opsOnlyApp(ctx: Context): App {
  const app = new OpenAPIHono<ApiEnv>();
  registerOpsRoutes(app, ctx, new Migrator(ctx.database), 2_000);
  return app;
}
