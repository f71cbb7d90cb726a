import type { Config } from '../config.js';
import { Migrator } from '../db/migrator.js';
import { openDatabase } from '../db/open.js';
import type { Logger } from '../logger.js';

export const MIGRATE_USAGE = `usage: steady migrate <command>

  up          apply every pending migration
  down [N]    roll back the last N applied migrations (default 1)
  status      list migrations and when each was applied
  sql         print the SQL that "up" would run, without running it`;

/** `steady migrate up | down [N] | status | sql`; returns the exit code. */
export async function runMigrate(args: readonly string[], config: Config, logger: Logger): Promise<number> {
  const [command, countArg, ...rest] = args;
  if (!command || !['up', 'down', 'status', 'sql'].includes(command) || rest.length > 0 || (command !== 'down' && countArg)) {
    process.stderr.write(`${MIGRATE_USAGE}\n`);
    return 2;
  }
  const count = countArg === undefined ? 1 : Number(countArg);
  if (!Number.isInteger(count) || count < 1) {
    process.stderr.write(`steady migrate down: N must be a positive integer, got ${JSON.stringify(countArg)}\n`);
    return 2;
  }
  const database = await openDatabase(config, logger, 'steady-migrate');
  try {
    const migrator = new Migrator(database);
    switch (command) {
      case 'up':
      case 'down': {
        const steps = command === 'up' ? await migrator.up() : await migrator.down(count);
        if (steps.length === 0) process.stdout.write(command === 'up' ? 'already up to date\n' : 'nothing to roll back\n');
        for (const s of steps) process.stdout.write(`${s.direction === 'up' ? 'applied' : 'rolled back'} ${s.version}_${s.name} (${s.durationMs.toFixed(0)} ms)\n`);
        return 0;
      }
      case 'status': {
        for (const s of await migrator.status()) {
          process.stdout.write(`${s.version}_${s.name.padEnd(24)} ${s.appliedAt ? `applied ${s.appliedAt.toISOString()}` : 'pending'}\n`);
        }
        return 0;
      }
      default: {
        const text = await migrator.pendingSql();
        process.stdout.write(text === '' ? '-- nothing to apply\n' : text);
        return 0;
      }
    }
  } finally {
    await database.close();
  }
}
