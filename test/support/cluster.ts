import { startSimulatedNodes, type SimulatedNodes } from '../../src/agent/simulator.js';
import { createApp } from '../../src/api/app.js';
import { serveApi, type RunningServer } from '../../src/api/server.js';
import { createTokenMinter, signToken } from '../../src/api/tokens.js';
import { Controller } from '../../src/controller/controller.js';
import type { Context } from '../../src/context.js';
import { testContext, TEST_JWT_SECRET } from './context.js';
import type { TestDatabase } from './databases.js';

export interface TestCluster {
  readonly ctx: Context;
  /** The API's base URL (a free port on 127.0.0.1). */
  readonly url: string;
  readonly nodes: SimulatedNodes | null;
  /** A token for user `sub`; with `admin`, one that may also see and change nodes. */
  token(sub: string, roles?: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

/**
 * What `steady dev` runs, in this process, over a test database: the API on a real socket, the
 * controller, and simulated nodes over HTTP. For tests of clients that must talk to a real server.
 */
export async function startTestCluster(
  testDb: TestDatabase,
  options: { readonly nodes?: number; readonly startDelayMs?: number; readonly env?: Record<string, string> } = {},
): Promise<TestCluster> {
  const ctx = testContext(testDb.database, options.env);
  const server: RunningServer = await serveApi(createApp(ctx), { host: '127.0.0.1', port: 0, shutdownTimeoutMs: 2_000 });
  const url = `http://127.0.0.1:${server.port}`;
  const controller = new Controller(ctx);
  await controller.start();
  const count = options.nodes ?? 2;
  const nodes =
    count > 0
      ? startSimulatedNodes({
          apiUrl: url,
          nodes: count,
          namePrefix: `node-${Math.random().toString(36).slice(2, 6)}`,
          startDelayMs: options.startDelayMs ?? 50,
          heartbeatMs: 100,
          logger: ctx.logger,
          tokenFor: createTokenMinter(TEST_JWT_SECRET, { roles: ['node'], ttlSec: 3600 }),
        })
      : null;
  await nodes?.ready();
  return {
    ctx,
    url,
    nodes,
    token: (sub, roles = []) => signToken(TEST_JWT_SECRET, { sub, roles: [...roles], ttlSec: 3600 }),
    async stop() {
      await nodes?.stop();
      await controller.stop();
      await server.close();
    },
  };
}
