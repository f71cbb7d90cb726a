import fs from 'node:fs';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { ApiError } from '../client/api-error.js';
import type { DeploymentPatch, DeploymentState, Revision } from '../client/types.js';
import { clientCommand, CliFailure, describeApiError, runClientAction, type ClientContext } from './client-command.js';
import type { Cli } from './io.js';

/** One document of an input file, and where it came from (for messages). */
interface Document {
  readonly where: string;
  readonly value: unknown;
}

/**
 * `steady apply -f FILE|-`: each document is a deployment, by name; created when there is none,
 * configured (PATCH with only what differs) when it differs, unchanged otherwise, like kubectl apply.
 * The API validates each document whole, so an invalid one changes nothing; the others still apply.
 */
export function addApplyCommand(program: Command, cli: Cli): Command {
  return clientCommand(program, 'apply')
    .description('create or update deployments from a YAML or JSON file (one or several documents; - reads stdin)')
    .requiredOption('-f, --filename <file>', 'the file, or - for standard input')
    .action((options: { filename: string }, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const documents = parseDocuments(options.filename, await readInput(options.filename, cli));
        let failed = 0;
        for (const doc of documents) {
          try {
            cli.out(`${await applyOne(ctx, doc)}\n`);
          } catch (err) {
            if (!(err instanceof ApiError) && !(err instanceof CliFailure)) throw err;
            failed += 1;
            cli.err(`error: ${doc.where}: ${err instanceof ApiError ? describeApiError(err) : err.message}\n`);
          }
        }
        return failed > 0 ? 1 : 0;
      }),
    );
}

async function readInput(file: string, cli: Cli): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of cli.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await fs.promises.readFile(file, 'utf8');
  } catch (err) {
    throw new CliFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** JSON (an object or an array of them) or YAML (`---`-separated documents); empty documents are skipped. */
export function parseDocuments(file: string, text: string): Document[] {
  const name = file === '-' ? '<stdin>' : file;
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new CliFailure(`${name}: not valid JSON: ${(err as Error).message}`);
    }
    const values = Array.isArray(value) ? value : [value];
    return values.map((v, i) => ({ where: values.length > 1 ? `${name} (document ${i + 1})` : name, value: v }));
  }
  const parsed = parseAllDocuments(text);
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const documents: Document[] = [];
  list.forEach((doc, i) => {
    const where = `${name} (document ${i + 1})`;
    if (doc.errors.length > 0) throw new CliFailure(`${where}: not valid YAML: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) documents.push({ where: list.length > 1 ? where : name, value });
  });
  if (documents.length === 0) throw new CliFailure(`${name}: no document in it`);
  return documents;
}

async function applyOne(ctx: ClientContext, doc: Document): Promise<string> {
  const spec = doc.value;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec) || typeof (spec as { name?: unknown }).name !== 'string') {
    throw new CliFailure('expected a deployment: an object with a name, container_image, target_replicas and resources');
  }
  const name = (spec as { name: string }).name;
  const [item] = name.length >= 1 && name.length <= 100 ? (await ctx.client.listDeployments({ name, limit: 1 })).items : [];
  if (!item) {
    const created = await ctx.client.deploy(spec as Parameters<typeof ctx.client.deploy>[0]);
    return `deployment/${created.name} created`;
  }
  const current = await ctx.client.status(item.deployment_id);
  const patch = changesFrom(spec as Record<string, unknown>, current, await currentTemplate(ctx, current));
  if (Object.keys(patch).length === 0) return `deployment/${name} unchanged`;
  // The replica target alone goes by the scale route, which every server version has.
  if (Object.keys(patch).length === 1 && patch.target_replicas !== undefined) await ctx.client.scale(current.deployment_id, patch.target_replicas);
  else await ctx.client.update(current.deployment_id, patch);
  return `deployment/${name} configured`;
}

/** The desired revision's template (command, env), or null from a server without revisions. */
async function currentTemplate(ctx: ClientContext, d: DeploymentState): Promise<Revision | null> {
  try {
    const revisions = await ctx.client.revisions(d.deployment_id);
    return revisions.find((r) => r.revision === d.revision) ?? revisions[0] ?? null;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
    throw err;
  }
}

/**
 * The fields of `spec` that differ from what the deployment has: what a PATCH must send. A field the
 * client cannot compare (an unknown one, or strategy when the server does not show it) is sent, so
 * the API's validation sees it; `name` is the key, never a change.
 */
export function changesFrom(spec: Record<string, unknown>, current: DeploymentState, template: Revision | null): DeploymentPatch {
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(spec)) {
    switch (key) {
      case 'name':
        break;
      case 'target_replicas':
        if (value !== current.target_replicas) patch[key] = value;
        break;
      case 'container_image':
        if (value !== current.container_image) patch[key] = value;
        break;
      case 'resources': {
        const wanted = { gpu_units: 0, ...(value as object) };
        if (!sameJson(wanted, current.resources)) patch[key] = value;
        break;
      }
      case 'command':
      case 'env': {
        // An empty one is null to the API: [] or {} in the file matches a template without.
        const empty = (v: unknown): unknown => (v == null || (typeof v === 'object' && Object.keys(v).length === 0) ? null : v);
        if (template === null || !sameJson(empty(value), empty(template[key]))) patch[key] = value;
        break;
      }
      case 'strategy':
        if (current.strategy === undefined || !sameJson({ ...current.strategy, ...(value as object) }, current.strategy)) patch[key] = value;
        break;
      default:
        patch[key] = value;
    }
  }
  return patch as DeploymentPatch;
}

/** Deep equality of JSON values, object keys in any order. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
