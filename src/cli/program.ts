import { Command, CommanderError } from 'commander';
import { addAgentCommand } from './agent.js';
import { addDevCommand } from './dev.js';
import type { Cli } from './io.js';
import { addMigrateCommand } from './migrate.js';
import { addServeCommand } from './serve.js';
import { addTokenCommand } from './token.js';

/** The `steady` command tree. Subcommands are made with `.command()` so they inherit the settings below. */
export function createProgram(cli: Cli): Command {
  const program = new Command('steady')
    .description('A Kubernetes-style reconciliation controller for container deployments, on PostgreSQL')
    .exitOverride()
    .configureOutput({ writeOut: cli.out, writeErr: cli.err })
    .showHelpAfterError()
    .helpCommand(true);
  addDevCommand(program, cli);
  addServeCommand(program, cli);
  addAgentCommand(program, cli);
  addTokenCommand(program, cli);
  addMigrateCommand(program, cli);
  return program;
}

/**
 * Runs `steady <argv>` and returns the exit code: 0 done, 1 failed, 2 usage (commander's errors, an
 * unknown command or option, a bad option value). `--help` is 0. Other errors are thrown to the caller.
 */
export async function runCli(argv: readonly string[], cli: Cli): Promise<number> {
  const program = createProgram(cli);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  return cli.exitCode;
}
