import { parseArgs } from 'node:util';
import type { Config } from '../config.js';
import { startDaemon, type Role } from '../daemon.js';
import type { Logger } from '../logger.js';
import { shutdownWithin, waitForShutdown } from './signals.js';

export const SERVE_USAGE = `usage: steady serve [--role api|controller|all] [--migrate]

  --role      what this process runs (default all): the HTTP API, the controller, or both.
              Any number of API processes may run; controllers elect one leader.
  --migrate   apply pending migrations before starting (run it from one place only,
              e.g. a Kubernetes Job, so that many replicas never race on them)

DATABASE_URL is required.`;

const ROLES: readonly Role[] = ['api', 'controller', 'all'];

/** `steady serve`: production, against DATABASE_URL; runs until SIGTERM/SIGINT, exits 0 after a clean stop. */
export async function runServe(argv: readonly string[], config: Config, logger: Logger): Promise<number> {
  let values: { role?: string; migrate?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { role: { type: 'string' }, migrate: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`steady serve: ${(err as Error).message}\n\n${SERVE_USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  const role = (values.role ?? 'all') as Role;
  if (!ROLES.includes(role)) {
    process.stderr.write(`steady serve: --role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(values.role)}\n`);
    return 2;
  }
  if (config.databaseUrl === null) {
    process.stderr.write('steady serve: DATABASE_URL is required (a postgres:// URL). For a local try-out without one, run `steady dev`.\n');
    return 2;
  }
  if (role !== 'controller' && config.jwt.secret === null && config.jwt.jwksUrl === null) {
    process.stderr.write('steady serve: set JWT_SECRET (HS256) or JWT_JWKS_URL so the API can verify tokens.\n');
    return 2;
  }
  const daemon = await startDaemon(config, logger, role, { migrate: values.migrate ?? false });
  const signal = await waitForShutdown();
  logger.info({ signal }, 'shutting down');
  await shutdownWithin(10_000, () => daemon.stop());
  logger.info('stopped');
  logger.flush();
  return 0;
}
