import type { Command } from 'commander';
import type { SteadyClient } from '../client/client.js';
import { usageError } from './arguments.js';
import { clientCommand, deploymentNamed, nodeNamed, runClientAction } from './client-command.js';
import type { Cli } from './io.js';

const DEPLOYMENT_KINDS = ['deployment', 'deployments', 'deploy'];
const NODE_KINDS = ['node', 'nodes', 'no'];

/**
 * `steady stop|start NAME`: the deployment's power switch; `steady delete [deployment] NAME`, its
 * (soft) delete, and `steady delete node NAME` (admin), a node that no longer holds a replica, as
 * after `drain`.
 */
export function addLifecycleCommands(program: Command, cli: Cli): void {
  const verbs = [
    ['stop', 'stop every replica of a deployment (it stays declared)', 'stopped', (c, id) => c.stop(id)],
    ['start', 'start a stopped or failed deployment again', 'started', (c, id) => c.start(id)],
  ] as const satisfies readonly (readonly [string, string, string, (c: SteadyClient, id: string) => Promise<unknown>])[];
  for (const [verb, description, done, call] of verbs) {
    clientCommand(program, `${verb} <deployment>`)
      .description(`${description} (name or id)`)
      .action((nameOrId: string, _options: unknown, command: Command) =>
        runClientAction(cli, command, async (ctx) => {
          const deployment = await deploymentNamed(ctx, nameOrId);
          await call(ctx.client, deployment.deployment_id);
          cli.out(`deployment/${deployment.name} ${done}\n`);
        }),
      );
  }
  clientCommand(program, 'delete <deployment> [name]')
    .description(
      'delete a deployment; the controller stops its replicas (name or id). `delete node NAME` removes a node that holds no replica any more, as after drain (admin)',
    )
    .action((first: string, second: string | undefined, _options: unknown, command: Command) => {
      // One word: a deployment's name (even one called "node"); two: a kind, then the name.
      const kind = second === undefined ? 'deployment' : NODE_KINDS.includes(first) ? 'node' : DEPLOYMENT_KINDS.includes(first) ? 'deployment' : null;
      if (kind === null) usageError(command, `unknown kind "${first}": delete [deployment] NAME, or delete node NAME`);
      const name = second ?? first;
      return runClientAction(cli, command, async (ctx) => {
        if (kind === 'node') {
          const node = await nodeNamed(ctx, name);
          await ctx.client.deleteNode(node.node_id);
          cli.out(`node/${node.name} deleted\n`);
        } else {
          const deployment = await deploymentNamed(ctx, name);
          await ctx.client.deleteDeployment(deployment.deployment_id);
          cli.out(`deployment/${deployment.name} deleted\n`);
        }
      });
    });
}
