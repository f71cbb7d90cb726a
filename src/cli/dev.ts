import { parseArgs } from 'node:util';
import { startSimulatedNodes } from '../agent/simulator.js';
import { createTokenMinter, signToken } from '../api/tokens.js';
import type { Config } from '../config.js';
import { startDaemon } from '../daemon.js';
import type { Logger } from '../logger.js';
import { readOrCreateDevSecret } from './dev-secret.js';
import { shutdownWithin, waitForShutdown } from './signals.js';

export const DEV_USAGE = `usage: steady dev [--nodes N] [--start-delay MS]

Everything in one process, for trying steady out: the embedded database in STEADY_DATA_DIR
(default ./.steady, migrated automatically), the API on http://HOST:PORT (default 127.0.0.1:8080),
the controller, and N simulated nodes (default 3; 4 cores, 8192 MB, 0 GPU, 100 GB each).
With DATABASE_URL set, that server is used instead of the embedded database.`;

/** `steady dev`: like `nomad agent -dev`. Runs until SIGTERM/SIGINT. */
export async function runDev(argv: readonly string[], baseConfig: Config, logger: Logger): Promise<number> {
  let values: { nodes?: string; 'start-delay'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { nodes: { type: 'string' }, 'start-delay': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`steady dev: ${(err as Error).message}\n\n${DEV_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${DEV_USAGE}\n`);
    return 0;
  }
  const nodes = Number(values.nodes ?? 3);
  const startDelayMs = Number(values['start-delay'] ?? 1_000);
  if (!Number.isInteger(nodes) || nodes < 0 || nodes > 1000) {
    process.stderr.write(`steady dev: --nodes must be an integer from 0 to 1000, got ${JSON.stringify(values.nodes)}\n`);
    return 2;
  }
  if (!Number.isInteger(startDelayMs) || startDelayMs < 0) {
    process.stderr.write(`steady dev: --start-delay must be a non-negative integer (ms), got ${JSON.stringify(values['start-delay'])}\n`);
    return 2;
  }

  // A generated secret is kept in the data directory, so tokens stay valid across restarts.
  const secret = baseConfig.jwt.secret ?? readOrCreateDevSecret(baseConfig.dataDir);
  const config: Config = Object.freeze({
    ...baseConfig,
    jwt: Object.freeze({ ...baseConfig.jwt, secret }),
    // The data directory lock already guarantees one controller.
    controller: Object.freeze({ ...baseConfig.controller, leaderElection: false }),
  });
  const daemon = await startDaemon(config, logger, 'all', { migrate: true });
  const url = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${daemon.server.port}`;
  const simulation =
    nodes > 0
      ? startSimulatedNodes({
          apiUrl: url,
          nodes,
          namePrefix: 'dev-node',
          startDelayMs,
          logger: logger.child({ component: 'agent' }),
          tokenFor: createTokenMinter(secret, { roles: ['node'], ttlSec: 3600 }),
        })
      : null;
  await simulation?.ready();
  const token = await signToken(secret, { sub: 'demo', ttlSec: 30 * 24 * 3600 });
  process.stdout.write(banner(url, token, nodes, config));

  const signal = await waitForShutdown();
  logger.info({ signal }, 'shutting down');
  await shutdownWithin(10_000, async () => {
    await simulation?.stop();
    await daemon.stop();
  });
  logger.info('stopped');
  logger.flush();
  return 0;
}

function banner(url: string, token: string, nodes: number, config: Config): string {
  return `
steady dev is running
  API        ${url}   (OpenAPI: ${url}/openapi.json)
  database   ${config.databaseUrl === null ? `embedded, in ${config.dataDir}` : 'DATABASE_URL'}
  nodes      ${nodes} simulated
  token      ${token}
             (user "demo", valid 30 days; mint others with: npx steady token --sub NAME)

Try it:
  export TOKEN=${token}
  curl -s -X POST ${url}/api/deployment/deploy -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{"name":"web","container_image":"nginx:1.27","target_replicas":3,"resources":{"cpu_cores":1,"memory_mb":512,"storage_gb":1}}'
  curl -s ${url}/api/deployment/list -H "Authorization: Bearer $TOKEN"

`;
}
