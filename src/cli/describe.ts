import type { Command } from 'commander';
import { ApiError } from '../client/api-error.js';
import type { DeploymentState, NodeOverview, Revision } from '../client/types.js';
import { clientCommand, deploymentNamed, nodeNamed, runClientAction, type ClientContext } from './client-command.js';
import type { Cli } from './io.js';
import { thousandths } from './output/rows.js';
import { age, paint, renderTable, status } from './output/table.js';

/** `steady describe deployment NAME`: everything about one deployment, for a person. */
export function addDescribeCommand(program: Command, cli: Cli): Command {
  const describe = program.command('describe').description('show one object in detail');
  clientCommand(describe, 'deployment <deployment>')
    .aliases(['deployments', 'deploy'])
    .description('status, replicas (with their nodes and why any is pending), revisions and recent events (name or id)')
    .action((nameOrId: string, _options: unknown, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const d = await deploymentNamed(ctx, nameOrId);
        const revisions = await revisionsIfServed(ctx, d.deployment_id);
        cli.out(describeDeployment(d, revisions, ctx.colour));
      }),
    );
  clientCommand(describe, 'node <node>')
    .aliases(['nodes', 'no'])
    .description('status, capacity against allocation, replicas by status, labels and heartbeat (name or id; admin)')
    .action((nameOrId: string, _options: unknown, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        cli.out(describeNode(await nodeNamed(ctx, nameOrId), ctx.colour));
      }),
    );
  return describe;
}

/** Revisions, or null from a server that has none to give (it answers 404 for the route). */
async function revisionsIfServed(ctx: ClientContext, id: string): Promise<Revision[] | null> {
  try {
    return await ctx.client.revisions(id);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
    throw err;
  }
}

export function describeDeployment(d: DeploymentState, revisions: readonly Revision[] | null, colour: boolean, now = Date.now()): string {
  const r = d.resources;
  const running = d.replicas.filter((x) => x.status === 'running').length;
  const fields: [string, string][] = [
    ['Name', d.name],
    ['ID', d.deployment_id],
    ['Status', paint(status(d.status), colour)],
    ['Reason', d.reason ?? '<none>'],
    ['Health', paint(status(d.health), colour)],
    ['Image', d.container_image],
    // kubectl's line: desired, then what the rollout and the nodes say of them.
    [
      'Replicas',
      d.rollout
        ? `${d.target_replicas} desired | ${d.rollout.updated_replicas} updated | ${running} running | ${d.rollout.available_replicas} available`
        : `${d.target_replicas} desired | ${running} running`,
    ],
    ['Resources', `${r.cpu_cores} CPU, ${r.memory_mb} MB memory, ${r.gpu_units} GPU, ${r.storage_gb} GB storage (per replica)`],
  ];
  if (d.command !== undefined) fields.push(['Command', d.command === null ? "<the image's>" : d.command.map(shellWord).join(' ')]);
  // Names only: values may be secrets, and describe's output gets pasted into tickets (-o yaml shows them).
  if (d.env !== undefined) fields.push(['Environment', d.env === null ? '<none>' : Object.keys(d.env).sort().join(', ')]);
  if (d.revision !== undefined) fields.push(['Revision', String(d.revision)]);
  if (d.rollout) {
    const o = d.rollout;
    fields.push(['Rollout', `revision ${o.revision} ${paint(status(o.state), colour)}${o.reason ? ` (${o.reason})` : ''}`]);
  }
  fields.push(['Created', `${d.created_at} (${age(d.created_at, now)} ago)`], ['Updated', d.updated_at]);
  let text = fieldLines(fields);

  text += '\nReplicas:\n';
  if (d.replicas.length === 0) text += '  <none>\n';
  else {
    const rows = d.replicas.map((x) => [
      x.id.slice(0, 8),
      status(x.status),
      x.node_name ?? '<unscheduled>',
      x.revision === undefined ? '' : String(x.revision),
      replicaReason(x, d),
      x.started_at ? `${age(x.started_at, now)} ago` : '',
    ]);
    text += indent(renderTable(['ID', 'STATUS', 'NODE', 'REVISION', 'REASON', 'STARTED'], rows, colour));
  }

  if (revisions !== null) {
    text += '\nRevisions:\n';
    const rows = revisions.map((v) => [
      `${v.revision}${v.revision === d.revision ? '*' : ''}`,
      v.container_image,
      `${v.resources.cpu_cores} CPU, ${v.resources.memory_mb} MB`,
      String(v.active_replicas),
      age(v.created_at, now),
    ]);
    text += rows.length === 0 ? '  <none>\n' : indent(renderTable(['REVISION', 'IMAGE', 'RESOURCES', 'ACTIVE', 'AGE'], rows, colour));
  }

  text += '\nEvents:\n';
  const changes = [...d.recent_status_changes].sort((a, b) => Date.parse(a.changed_at) - Date.parse(b.changed_at));
  text +=
    changes.length === 0
      ? '  <none>\n'
      : indent(renderTable(['AGE', 'CHANGE', 'REASON'], changes.map((c) => [age(c.changed_at, now), `${c.old_status} → ${c.new_status}`, c.reason ?? '']), colour));
  return text;
}

/** kubectl's `describe node`, as far as steady knows a node: what it has, what is placed on it, and when it last spoke. */
export function describeNode(n: NodeOverview, colour: boolean, now = Date.now()): string {
  const labels = Object.entries(n.labels).map(([k, v]) => `${k}=${v}`);
  const counts = Object.entries(n.replica_counts).filter(([, count]) => count > 0);
  const fields: [string, string][] = [
    ['Name', n.name],
    ['ID', n.node_id],
    ['Status', paint(status(n.status), colour)],
    ['Labels', labels.length === 0 ? '<none>' : labels.join(', ')],
    ['Replicas', counts.length === 0 ? '<none>' : counts.map(([s, count]) => `${count} ${s}`).join(', ')],
    ['Heartbeat', n.last_heartbeat_at === null ? '<never>' : `${n.last_heartbeat_at} (${age(n.last_heartbeat_at, now)} ago)`],
    ['Created', `${n.created_at} (${age(n.created_at, now)} ago)`],
  ];
  let text = fieldLines(fields);
  // kubectl's "Allocated resources": what the replicas placed here hold, against what the node has.
  const share = (used: number, of: number): string => (of === 0 ? '' : `${Math.round((used / of) * 100)}%`);
  const rows = (
    [
      ['cpu', n.allocated.cpu_cores, n.cpu_cores],
      ['memory_mb', n.allocated.memory_mb, n.memory_mb],
      ['gpu', n.allocated.gpu_units, n.gpu_units],
      ['storage_gb', n.allocated.storage_gb, n.storage_gb],
    ] as const
  ).map(([resource, used, of]) => [resource, String(thousandths(used)), String(of), share(used, of)]);
  text += '\nAllocated resources:\n' + indent(renderTable(['RESOURCE', 'ALLOCATED', 'CAPACITY', 'USED'], rows, colour));
  return text;
}

/**
 * Why a replica is where it is. A replica the scheduler could not place carries no reason of its own
 * on older servers: the deployment's (or its latest Unschedulable history row's) says why.
 */
function replicaReason(x: DeploymentState['replicas'][number], d: DeploymentState): string {
  if (x.reason) return x.reason;
  if (x.status !== 'pending' || x.node_id !== null) return '';
  if (d.reason) return d.reason;
  const unschedulable = [...d.recent_status_changes].reverse().find((c) => c.reason?.startsWith('Unschedulable'));
  return unschedulable?.reason ?? 'waiting to be scheduled';
}

/** `Key:  value` lines, the values aligned. */
const fieldLines = (fields: readonly (readonly [string, string])[]): string => {
  const pad = Math.max(...fields.map(([k]) => k.length)) + 2;
  return fields.map(([k, v]) => `${`${k}:`.padEnd(pad)}${v}\n`).join('');
};

/** An argument as a shell would need it written: bare when it is one plain word, else quoted. */
const shellWord = (arg: string): string => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg));

const indent = (text: string): string => text.replace(/^(?=.)/gm, '  ');
