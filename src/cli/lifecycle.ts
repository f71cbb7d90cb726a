import type { Command } from 'commander';
import type { SteadyClient } from '../client/client.js';
import { clientCommand, deploymentNamed, runClientAction } from './client-command.js';
import type { Cli } from './io.js';

/** `steady stop|start|delete NAME`: the deployment's power switch and its (soft) delete. */
export function addLifecycleCommands(program: Command, cli: Cli): void {
  const verbs = [
    ['stop', 'stop every replica of a deployment (it stays declared)', 'stopped', (c, id) => c.stop(id)],
    ['start', 'start a stopped or failed deployment again', 'started', (c, id) => c.start(id)],
    ['delete', 'delete a deployment; the controller stops its replicas', 'deleted', (c, id) => c.deleteDeployment(id)],
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
}
