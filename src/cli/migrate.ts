import type { Command } from 'commander';
import type { Migrator } from '../db/migrator.js';
import { integerIn } from './arguments.js';
import { serverContext, type Cli } from './io.js';

/** `steady migrate up | down [N] | status | sql`, against DATABASE_URL or the embedded database. */
export function addMigrateCommand(program: Command, cli: Cli): Command {
  const migrate = program.command('migrate').summary('manage the database schema').description('Manage the database schema (DATABASE_URL, or the embedded database in STEADY_DATA_DIR).');
  migrate
    .command('up')
    .description('apply every pending migration')
    .action(() => withMigrator(cli, async (migrator) => report(cli, 'up', await migrator.up())));
  migrate
    .command('down')
    .description('roll back the last N applied migrations')
    .argument('[N]', 'how many', integerIn(1, 1_000_000), 1)
    .action((count: number) => withMigrator(cli, async (migrator) => report(cli, 'down', await migrator.down(count))));
  migrate
    .command('status')
    .description('list migrations and when each was applied')
    .action(() =>
      withMigrator(cli, async (migrator) => {
        for (const s of await migrator.status()) {
          cli.out(`${s.version}_${s.name.padEnd(24)} ${s.appliedAt ? `applied ${s.appliedAt.toISOString()}` : 'pending'}\n`);
        }
      }),
    );
  migrate
    .command('sql')
    .description('print the SQL that "up" would run, without running it')
    .action(() =>
      withMigrator(cli, async (migrator) => {
        const text = await migrator.pendingSql();
        cli.out(text === '' ? '-- nothing to apply\n' : text);
      }),
    );
  return migrate;
}

async function withMigrator(cli: Cli, work: (migrator: Migrator) => Promise<void>): Promise<void> {
  const { config, logger } = await serverContext(cli);
  const [{ openDatabase }, { Migrator }] = await Promise.all([import('../db/open.js'), import('../db/migrator.js')]);
  const database = await openDatabase(config, logger, 'steady-migrate');
  try {
    await work(new Migrator(database));
  } finally {
    await database.close();
  }
}

type Steps = Awaited<ReturnType<Migrator['up']>>;

function report(cli: Cli, direction: 'up' | 'down', steps: Steps): void {
  if (steps.length === 0) cli.out(direction === 'up' ? 'already up to date\n' : 'nothing to roll back\n');
  for (const s of steps) cli.out(`${s.direction === 'up' ? 'applied' : 'rolled back'} ${s.version}_${s.name} (${s.durationMs.toFixed(0)} ms)\n`);
}
