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
    .option('--yes', 'roll back even when that drops tables holding rows')
    .action((count: number, options: { yes?: boolean }) =>
      withMigrator(cli, async (migrator) => {
        if (!options.yes && !(await confirmDataLoss(cli, await migrator.tablesDroppedWithRows(count)))) {
          cli.exitCode = 1;
          return;
        }
        report(cli, 'down', await migrator.down(count));
      }),
    );
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

/**
 * A roll-back that would drop tables holding rows goes ahead only when the operator says so: `--yes`,
 * or an answer on a terminal. Never asks without one (CI=true, stdin a pipe or closed): it refuses,
 * so a script never hangs on a question nobody can answer.
 */
async function confirmDataLoss(cli: Cli, tables: readonly { table: string; rows: number }[]): Promise<boolean> {
  if (tables.length === 0) return true;
  const list = tables.map((t) => `${t.table} (${t.rows >= 1_000_000 ? 'at least 1000000' : t.rows} row${t.rows === 1 ? '' : 's'})`).join(', ');
  const stdinIsTTY = (cli.stdin as { isTTY?: boolean }).isTTY === true;
  if (!stdinIsTTY || cli.env.CI === 'true') {
    cli.err(`refusing to roll back: it would drop ${list}. Run again with --yes to drop them.\n`);
    return false;
  }
  const { createInterface } = await import('node:readline/promises');
  const { Writable } = await import('node:stream');
  const prompt = new Writable({
    write(chunk, _encoding, done) {
      cli.err(String(chunk));
      done();
    },
  });
  const rl = createInterface({ input: cli.stdin, output: prompt, terminal: false });
  try {
    const answer = await rl.question(`Rolling back drops ${list}. Go ahead? [y/N] `);
    if (/^y(es)?$/i.test(answer.trim())) return true;
    cli.err('not rolled back\n');
    return false;
  } finally {
    rl.close();
  }
}

type Steps = Awaited<ReturnType<Migrator['up']>>;

function report(cli: Cli, direction: 'up' | 'down', steps: Steps): void {
  if (steps.length === 0) cli.out(direction === 'up' ? 'already up to date\n' : 'nothing to roll back\n');
  for (const s of steps) cli.out(`${s.direction === 'up' ? 'applied' : 'rolled back'} ${s.version}_${s.name} (${s.durationMs.toFixed(0)} ms)\n`);
}
