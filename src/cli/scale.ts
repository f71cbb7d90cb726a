import type { Command } from 'commander';
import { integerIn } from './arguments.js';
import { clientCommand, deploymentNamed, runClientAction } from './client-command.js';
import type { Cli } from './io.js';

/** `steady scale NAME --replicas N`. */
export function addScaleCommand(program: Command, cli: Cli): Command {
  return clientCommand(program, 'scale <deployment>')
    .description("change a deployment's replica target (name or id)")
    .requiredOption('--replicas <n>', 'the new target', integerIn(0, 1_000_000))
    .action((nameOrId: string, options: { replicas: number }, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const deployment = await deploymentNamed(ctx, nameOrId);
        await ctx.client.scale(deployment.deployment_id, options.replicas);
        cli.out(`deployment/${deployment.name} scaled\n`);
      }),
    );
}
