import { Option, type Command } from 'commander';
import type { Role } from '../daemon.js';
import { usageError } from './arguments.js';
import { serverContext, type Cli } from './io.js';
import { shutdownWithin, waitForShutdown } from './signals.js';

const ROLES: readonly Role[] = ['api', 'controller', 'all'];

/** `steady serve`: production, against DATABASE_URL; runs until SIGTERM/SIGINT, exits 0 after a clean stop. */
export function addServeCommand(program: Command, cli: Cli): Command {
  return program
    .command('serve')
    .summary('production daemon against DATABASE_URL')
    .description('The production daemon, against DATABASE_URL (required). Any number of API processes may run; controllers elect one leader.')
    .addOption(new Option('--role <role>', 'what this process runs: the HTTP API, the controller, or both').choices(ROLES).default('all'))
    .option(
      '--migrate',
      'apply pending migrations before starting (run it from one place only, e.g. a Kubernetes Job, so that many replicas never race on them)',
    )
    .action(async (options: { role: Role; migrate?: boolean }, command: Command) => {
      const { config, logger } = await serverContext(cli);
      if (config.databaseUrl === null) {
        usageError(command, 'DATABASE_URL is required (a postgres:// URL). For a local try-out without one, run `steady dev`.');
      }
      if (options.role !== 'controller' && config.jwt.secret === null && config.jwt.jwksUrl === null) {
        usageError(command, 'set JWT_SECRET (HS256) or JWT_JWKS_URL so the API can verify tokens.');
      }
      const { startDaemon } = await import('../daemon.js');
      const daemon = await startDaemon(config, logger, options.role, { migrate: options.migrate ?? false });
      const signal = await waitForShutdown(cli.signal);
      logger.info({ signal }, 'shutting down');
      await shutdownWithin(10_000, () => daemon.stop());
      logger.info('stopped');
      logger.flush();
    });
}
