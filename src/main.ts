import { ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './db/data-dir-lock.js';
import { MigrationError } from './db/migrator.js';
import { createLogger } from './logger.js';
import { runMigrate } from './cli/migrate.js';

const USAGE = `usage: steady <command> [options]

commands:
  migrate up|down [N]|status|sql   manage the database schema
`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  switch (command) {
    case 'migrate':
      return runMigrate(args, config, logger);
    default:
      process.stderr.write(`steady: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const known = err instanceof ConfigError || err instanceof DataDirLockedError || err instanceof MigrationError;
    process.stderr.write(`steady: ${known ? (err as Error).message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
