import { ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './db/data-dir-lock.js';
import { MigrationError } from './db/migrator.js';
import { createLogger } from './logger.js';

const USAGE = `usage: steady <command> [options]

commands:
  dev                              everything in one process, embedded database, simulated nodes
  serve [--role api|controller|all] [--migrate]
                                   production daemon against DATABASE_URL
  agent --simulate --api URL       simulated node agents
  token --sub NAME [--role R]      print a JWT signed with JWT_SECRET
  migrate up|down [N]|status|sql   manage the database schema

Run \`steady <command> --help\` for a command's options.
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
    // Each command loads only what it uses: `steady token` need not load the database or the API.
    case 'dev':
      return (await import('./cli/dev.js')).runDev(args, config, logger);
    case 'serve':
      return (await import('./cli/serve.js')).runServe(args, config, logger);
    case 'agent':
      return (await import('./cli/agent.js')).runAgent(args, config, logger);
    case 'token':
      return (await import('./cli/token.js')).runToken(args, config);
    case 'migrate':
      return (await import('./cli/migrate.js')).runMigrate(args, config, logger);
    default:
      process.stderr.write(`steady: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Everything was closed in order; a handle some library forgot must not keep the process alive.
    process.exit(code);
  },
  (err: unknown) => {
    const known = err instanceof ConfigError || err instanceof DataDirLockedError || err instanceof MigrationError;
    process.stderr.write(`steady: ${known ? (err as Error).message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
