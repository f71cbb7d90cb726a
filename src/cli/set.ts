import type { Command } from 'commander';
import { clientCommand, deploymentNamed, runClientAction } from './client-command.js';
import type { Cli } from './io.js';

/** `steady set image NAME IMAGE`: a new revision with another image, rolled out by the controller. */
export function addSetCommand(program: Command, cli: Cli): Command {
  const set = program.command('set').description("change part of a deployment's template (starts a rollout)");
  clientCommand(set, 'image <deployment> <image>')
    .description('run another container image (name or id); see `steady rollout status`')
    .action((nameOrId: string, image: string, _options: unknown, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const deployment = await deploymentNamed(ctx, nameOrId);
        const updated = await ctx.client.update(deployment.deployment_id, { container_image: image });
        const changed = updated.revision === undefined || updated.revision !== deployment.revision;
        cli.out(`deployment/${deployment.name} ${changed ? 'image updated' : 'unchanged'}\n`);
      }),
    );
  return set;
}
