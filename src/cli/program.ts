import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { addAgentCommand } from './agent.js';
import { addApplyCommand } from './apply.js';
import { addDescribeCommand } from './describe.js';
import { addDevCommand } from './dev.js';
import { addEventsCommand } from './events.js';
import { addGetCommand } from './get.js';
import type { Cli } from './io.js';
import { addLifecycleCommands } from './lifecycle.js';
import { addMigrateCommand } from './migrate.js';
import { addNodeStatusCommands } from './node-status.js';
import { addRolloutCommand } from './rollout.js';
import { addScaleCommand } from './scale.js';
import { addServeCommand } from './serve.js';
import { addSetCommand } from './set.js';
import { addTokenCommand } from './token.js';

/** The `steady` command tree. Subcommands are made with `.command()` so they inherit the settings below. */
export function createProgram(cli: Cli): Command {
  const program = new Command('steady')
    .description('A Kubernetes-style reconciliation controller for container deployments, on PostgreSQL')
    .exitOverride()
    .configureOutput({ writeOut: cli.out, writeErr: cli.err })
    .showHelpAfterError()
    .helpCommand(true)
    .version(VERSION, '-v, --version', "print steady's version");
  // The operator's verbs (over the typed client), then the server's commands.
  addGetCommand(program, cli);
  addDescribeCommand(program, cli);
  addApplyCommand(program, cli);
  addScaleCommand(program, cli);
  addSetCommand(program, cli);
  addRolloutCommand(program, cli);
  addLifecycleCommands(program, cli);
  addNodeStatusCommands(program, cli);
  addEventsCommand(program, cli);
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
