import { Option, type Command } from 'commander';
import type { DeploymentEventData, DeploymentListItem, DeploymentState, NodeOverview } from '../client/types.js';
import { sleep } from '../lib/sleep.js';
import { clientCommand, runClientAction, type ClientContext } from './client-command.js';
import type { Cli } from './io.js';
import { OUTPUT_FORMATS, renderDocument, type OutputFormat } from './output/documents.js';
import {
  DEPLOYMENT_HEADERS,
  DEPLOYMENT_WATCH_WIDTHS,
  DEPLOYMENT_WIDE_HEADERS,
  deploymentRow,
  NODE_HEADERS,
  NODE_WATCH_WIDTHS,
  NODE_WIDE_HEADERS,
  nodeRow,
  type DeploymentRowSource,
} from './output/rows.js';
import { TableWriter } from './output/table.js';

interface GetOptions {
  output: OutputFormat;
  watch?: boolean;
}

const KINDS = { deployments: ['deployments', 'deployment', 'deploy'], nodes: ['nodes', 'node', 'no'] } as const;

/** `steady get deployments|nodes [NAME...] [-o table|wide|json|yaml] [-w]`. */
export function addGetCommand(program: Command, cli: Cli): Command {
  const get = program.command('get').description('list deployments or nodes, or the ones named');
  for (const [kind, [name, ...aliases]] of Object.entries(KINDS)) {
    clientCommand(get, `${name} [names...]`)
      .aliases(aliases)
      .description(
        kind === 'deployments'
          ? 'your deployments, newest first, or the ones named (name or id)'
          : 'the nodes, with allocation against capacity, or the ones named (name or id; admin)',
      )
      .addOption(new Option('-o, --output <format>', 'table, wide (more columns), json or yaml').choices(OUTPUT_FORMATS).default('table'))
      .option('-w, --watch', 'after the list, print every change as it happens (until interrupted)')
      .action((names: string[], options: GetOptions, command: Command) =>
        runClientAction(cli, command, (ctx) => (kind === 'deployments' ? getDeployments(ctx, names, options) : getNodes(ctx, names, options))),
      );
  }
  return get;
}

/** Prints objects: a table, or for json and yaml the API's objects exactly (a list as `{items}`). */
class Printer<T> {
  readonly #table: TableWriter | null;

  constructor(
    private readonly ctx: ClientContext,
    private readonly format: OutputFormat,
    headers: { readonly narrow: readonly string[]; readonly wide: readonly string[]; readonly watchWidths?: readonly number[] },
    private readonly rowOf: (item: T, wide: boolean) => ReturnType<typeof deploymentRow>,
  ) {
    this.#table =
      format === 'table' || format === 'wide' ? new TableWriter(format === 'wide' ? headers.wide : headers.narrow, ctx.colour, headers.watchWidths) : null;
  }

  list(items: readonly T[]): void {
    if (this.#table) {
      const rows = items.map((i) => this.rowOf(i, this.format === 'wide'));
      this.ctx.cli.out(this.#table.header(rows) + rows.map((r) => this.#table!.row(r)).join(''));
    } else {
      this.ctx.cli.out(renderDocument({ items }, this.format as 'json' | 'yaml'));
    }
  }

  get tabular(): boolean {
    return this.#table !== null;
  }

  /**
   * json or yaml of the objects asked for by name: one name gives the object alone (as kubectl
   * prints `get deployment web -o yaml`), several give `{items}`, each object once.
   */
  documents(items: readonly unknown[], asked: number): void {
    const format = this.format as 'json' | 'yaml';
    if (asked !== 1) this.ctx.cli.out(renderDocument({ items }, format));
    else if (items.length === 1) this.ctx.cli.out(renderDocument(items[0], format));
  }

  /** One changed object while watching: a row, or a document (YAML documents separated by `---`). */
  one(item: T): void {
    if (this.#table) this.ctx.cli.out(this.#table.row(this.rowOf(item, this.format === 'wide')));
    else this.ctx.cli.out(this.format === 'yaml' ? `---\n${renderDocument(item, 'yaml')}` : renderDocument(item, 'json'));
  }
}

/** Names not found: `error: … not found` each, on standard error, and exit code 1 once the rest is printed (kubectl's way). */
function reportMissing(ctx: ClientContext, kind: string, missing: readonly string[]): number {
  for (const name of missing) ctx.cli.err(`error: ${kind} "${name}" not found\n`);
  return missing.length > 0 ? 1 : 0;
}

async function getDeployments(ctx: ClientContext, names: readonly string[], options: GetOptions): Promise<number> {
  const widths = options.watch ? { watchWidths: DEPLOYMENT_WATCH_WIDTHS } : {};
  const printer = new Printer<DeploymentRowSource>(ctx, options.output, { narrow: DEPLOYMENT_HEADERS, wide: DEPLOYMENT_WIDE_HEADERS, ...widths }, deploymentRow);
  const known = new Map<string, DeploymentRowSource>();
  const missing: string[] = [];
  const list = async (): Promise<void> => {
    known.clear();
    if (names.length === 0) {
      const items: DeploymentListItem[] = await ctx.client.allDeployments();
      for (const item of items) known.set(item.deployment_id, item);
      printer.list(items);
      return;
    }
    // Named: the status objects (json and yaml print them whole), each once however often named.
    const found = new Map<string, DeploymentState>();
    missing.length = 0;
    for (const name of names) {
      const d = await ctx.client.findDeployment(name);
      if (d === null) missing.push(name);
      else found.set(d.deployment_id, d);
    }
    for (const d of found.values()) known.set(d.deployment_id, { ...d, running_replicas: d.replicas.filter((r) => r.status === 'running').length });
    if (printer.tabular) printer.list([...known.values()]);
    else printer.documents([...found.values()], names.length);
  };
  await list();
  const code = reportMissing(ctx, 'deployment', missing);
  if (!options.watch || (names.length > 0 && known.size === 0)) return code;
  const only = names.length > 0 ? new Set(known.keys()) : null;
  for await (const event of ctx.client.events({ signal: ctx.cli.signal })) {
    if (event.type === 'reset') await list();
    if (event.type !== 'deployment' || (only !== null && !only.has(event.data.deployment_id))) continue;
    // The event says what changed; what it does not carry (image, age) comes from the list, and the
    // image is read again when the revision moved (a new template).
    let before = known.get(event.data.deployment_id);
    if (before !== undefined && event.data.revision != null && before.revision != null && event.data.revision !== before.revision) {
      const now = await ctx.client.findDeployment(event.data.deployment_id);
      if (now !== null) before = { ...before, container_image: now.container_image };
    }
    const merged = mergeDeployment(before, event.data);
    known.set(merged.deployment_id, merged);
    printer.one(merged);
  }
  return code;
}

function mergeDeployment(before: DeploymentRowSource | undefined, e: DeploymentEventData): DeploymentRowSource {
  return {
    ...before,
    deployment_id: e.deployment_id,
    name: e.name,
    status: e.status,
    health: e.health,
    target_replicas: e.target_replicas,
    running_replicas: e.running_replicas,
    ...(e.revision != null ? { revision: e.revision } : {}),
    ...(e.rollout != null ? { rollout: e.rollout } : {}),
  };
}

/**
 * While watching, the list is read again when a node event (registered, status changed, deleted) or
 * a replica event (allocation moved) comes, and every 30 s as a fallback; only changed rows are
 * printed (a heartbeat alone is not a change).
 */
async function getNodes(ctx: ClientContext, names: readonly string[], options: GetOptions): Promise<number> {
  const widths = options.watch ? { watchWidths: NODE_WATCH_WIDTHS } : {};
  const printer = new Printer<NodeOverview>(ctx, options.output, { narrow: NODE_HEADERS, wide: NODE_WIDE_HEADERS, ...widths }, nodeRow);
  const named = (n: NodeOverview): boolean => names.length === 0 || names.includes(n.name) || names.includes(n.node_id);
  const first = (await ctx.client.nodes()).filter(named);
  const missing = names.filter((name) => !first.some((n) => n.name === name || n.node_id === name));
  if (names.length === 0 || printer.tabular) printer.list(first);
  else printer.documents(first, names.length);
  const code = reportMissing(ctx, 'node', missing);
  if (!options.watch || (names.length > 0 && first.length === 0)) return code;
  const signature = (n: NodeOverview): string => JSON.stringify({ ...n, last_heartbeat_at: null, updated_at: null });
  const seen = new Map(first.map((n) => [n.node_id, signature(n)]));
  const stop = new AbortController();
  const waiter = { wake: (): void => undefined };
  ctx.cli.signal?.addEventListener('abort', () => stop.abort(), { once: true });
  const follow = (async () => {
    try {
      for await (const event of ctx.client.events({ signal: stop.signal })) {
        if (event.type === 'node' || event.type === 'replica' || event.type === 'reset') waiter.wake();
      }
    } catch {
      // Without the stream (a node may not read events) the poll goes on alone.
    }
  })();
  try {
    while (!stop.signal.aborted) {
      await Promise.race([sleep(30_000, stop.signal), new Promise<void>((resolve) => (waiter.wake = resolve))]);
      if (stop.signal.aborted) break;
      for (const node of (await ctx.client.nodes()).filter(named)) {
        const now = signature(node);
        if (seen.get(node.node_id) === now) continue;
        seen.set(node.node_id, now);
        printer.one(node);
      }
    }
  } finally {
    stop.abort();
    await follow;
  }
  return code;
}
