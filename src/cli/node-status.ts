import { Option, type Command } from 'commander';
import { durationAtLeast } from './arguments.js';
import { clientCommand, CliFailure, nodeNamed, runClientAction } from './client-command.js';
import { allocatingCount } from '../domain/types.js';
import { sleep } from '../lib/sleep.js';
import type { Cli } from './io.js';

/**
 * `steady cordon|uncordon|drain NODE` (admin): a cordoned node takes no new replicas; a draining one
 * also has its replicas moved elsewhere. `drain` waits until none is left on the node.
 */
export function addNodeStatusCommands(program: Command, cli: Cli): void {
  clientCommand(program, 'cordon <node>')
    .description('take no new replicas on a node (name or id; admin)')
    .action((node: string, _options: unknown, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const found = await nodeNamed(ctx, node);
        await ctx.client.setNodeStatus(found.node_id, 'cordoned');
        cli.out(`node/${found.name} cordoned\n`);
      }),
    );
  clientCommand(program, 'uncordon <node>')
    .description('return a cordoned or draining node to service (name or id; admin)')
    .action((node: string, _options: unknown, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const found = await nodeNamed(ctx, node);
        await ctx.client.setNodeStatus(found.node_id, 'ready');
        cli.out(`node/${found.name} uncordoned\n`);
      }),
    );
  clientCommand(program, 'drain <node>')
    .description("move every replica off a node and take no new ones (name or id; admin); waits until the node is empty")
    .option('--no-wait', 'return once the node is draining')
    .addOption(new Option('--timeout <duration>', 'give up waiting after this long (exit code 1)').argParser(durationAtLeast(1, '5m')).default(300_000, '5m'))
    .action((node: string, options: { wait: boolean; timeout: number }, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const found = await nodeNamed(ctx, node);
        await ctx.client.setNodeStatus(found.node_id, 'draining');
        cli.out(`node/${found.name} draining\n`);
        if (!options.wait) return;
        const deadline = Date.now() + options.timeout;
        for (;;) {
          const now = (await ctx.client.nodes()).find((n) => n.node_id === found.node_id);
          const left = now ? allocatingCount(now.replica_counts) : 0;
          if (left === 0) break;
          if (Date.now() >= deadline) throw new CliFailure(`node/${found.name}: ${left} replica(s) still on the node after the timeout`);
          if (!(await sleep(Math.min(1_000, Math.max(0, deadline - Date.now())), cli.signal))) return 1;
        }
        cli.out(`node/${found.name} drained\n`);
      }),
    );
}
