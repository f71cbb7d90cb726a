import type { Command } from 'commander';
import type { DeploymentListItem, Rollout, SteadyEvent } from '../client/types.js';
import { clientCommand, deploymentNamed, runClientAction, type ClientContext } from './client-command.js';
import type { Cli } from './io.js';
import { status, TableWriter, type Cell } from './output/table.js';

const HEADERS = ['TIME', 'OBJECT', 'EVENT', 'DETAIL'];

/**
 * `steady events [-w] [--deployment NAME]`: the recent status changes of your deployments, oldest
 * first; with -w, then every event as it happens (reconnecting with Last-Event-ID).
 */
export function addEventsCommand(program: Command, cli: Cli): Command {
  return clientCommand(program, 'events')
    .description('recent changes of your deployments; with -w, follow them live')
    .option('-w, --watch', 'after the recent changes, print every event as it happens (until interrupted)')
    .option('--deployment <name>', 'only this deployment (name or id)')
    .action((options: { watch?: boolean; deployment?: string }, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const only = options.deployment === undefined ? null : await deploymentNamed(ctx, options.deployment);
        const deployments = only === null ? await ctx.client.allDeployments() : [only];
        // Wide enough for what -w prints later: a replica of any of these, the longest status word.
        const objectWidth = Math.max(0, ...deployments.map((d) => `replica/${d.name}/12345678`.length));
        const table = new TableWriter(HEADERS, ctx.colour, options.watch ? [8, objectWidth, 9] : []);
        const rows = await recentChanges(ctx, deployments);
        cli.out(table.header(rows) + rows.map((r) => table.row(r)).join(''));
        if (!options.watch) return;
        for await (const event of ctx.client.events({ deploymentId: only?.deployment_id, signal: cli.signal })) {
          cli.out(table.row(eventRow(event)));
        }
      }),
    );
}

/** Every deployment's recent status changes (what the status object keeps), merged in time order. */
async function recentChanges(ctx: ClientContext, deployments: readonly Pick<DeploymentListItem, 'deployment_id' | 'name'>[]): Promise<Cell[][]> {
  const statuses = await Promise.all(deployments.map((d) => ctx.client.status(d.deployment_id)));
  return statuses
    .flatMap((s) => s.recent_status_changes.map((c) => ({ at: c.changed_at, row: [clock(c.changed_at), `deployment/${s.name}`, status(c.new_status), `${c.old_status} → ${c.new_status}${c.reason ? `: ${c.reason}` : ''}`] })))
    .sort((a, b) => Date.parse(a.at) - Date.parse(b.at))
    .map((x) => x.row);
}

export function eventRow(event: SteadyEvent, now = new Date().toISOString()): Cell[] {
  switch (event.type) {
    case 'deployment': {
      const d = event.data;
      return [clock(now), `deployment/${d.name}`, status(d.status), `${d.running_replicas}/${d.target_replicas} running, ${d.health}${d.rollout ? `, rollout ${rolloutText(d.rollout)}` : ''}`];
    }
    case 'history': {
      const h = event.data;
      return [clock(h.changed_at ?? now), `deployment/${h.name}`, status(h.new_status ?? 'history'), `${h.old_status ?? ''} → ${h.new_status ?? ''}${h.reason ? `: ${h.reason}` : ''}`];
    }
    case 'replica': {
      const r = event.data;
      const where = r.node_name ?? (r.node_id === null ? 'unscheduled' : r.node_id.slice(0, 8));
      return [clock(now), `replica/${r.name}/${r.replica_id.slice(0, 8)}`, status(r.status), `on ${where}${r.revision !== undefined ? `, revision ${r.revision}` : ''}${r.reason ? `: ${r.reason}` : ''}`];
    }
    case 'node': {
      const n = event.data;
      return [clock(now), `node/${n.name}`, status(n.status), n.status === 'deleted' ? 'deleted' : `now ${n.status}`];
    }
    default:
      return [clock(now), '-', 'reset', 'events were missed (too old to resume); run `steady get deployments` to see the current state'];
  }
}

/** `progressing to revision 3: 2 updated, 1 available`, with the reason when there is one. */
const rolloutText = (r: Rollout): string =>
  `${r.state} (revision ${r.revision}: ${r.updated_replicas} updated, ${r.available_replicas} available)${r.reason ? `: ${r.reason}` : ''}`;

/** The local time of day, as a person reading a live stream wants it. */
const clock = (iso: string): string => new Date(iso).toTimeString().slice(0, 8);
