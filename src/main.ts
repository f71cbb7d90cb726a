import { ConfigError } from './config.js';
import { DataDirLockedError } from './db/data-dir-lock.js';
import { MigrationError } from './db/migrator.js';
import { processCli } from './cli/io.js';
import { runCli } from './cli/program.js';

runCli(process.argv.slice(2), processCli()).then(
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
