import { Option, type Command } from 'commander';
import { ApiError } from '../client/api-error.js';
import { SteadyClient } from '../client/client.js';
import type { DeploymentState } from '../client/types.js';
import { contextFilePath, readContextFile } from './context-file.js';
import type { Cli } from './io.js';
import { useColour } from './output/table.js';

/** A command that did not get done, for a reason the user can act on: printed as `error: …`, exit code 1. */
export class CliFailure extends Error {
  override name = 'CliFailure';
}

export interface ClientContext {
  readonly client: SteadyClient;
  readonly cli: Cli;
  /** Tables may be coloured. */
  readonly colour: boolean;
}

interface ConnectionOptions {
  server?: string;
  token?: string;
}

/** A subcommand that talks to the API: it takes --server and --token (else STEADY_URL/STEADY_TOKEN, else the context file). */
export function clientCommand(parent: Command, nameAndArgs: string): Command {
  return parent
    .command(nameAndArgs)
    .addOption(new Option('--server <url>', 'the steady API (default: STEADY_URL, else the context file `steady dev` writes)'))
    .addOption(new Option('--token <token>', 'a bearer token (default: STEADY_TOKEN, else the context file)'));
}

/** Server and token: flags, then STEADY_URL/STEADY_TOKEN, then the context file. */
export function resolveConnection(options: ConnectionOptions, cli: Cli): { readonly url: string; readonly token: string } {
  const fromFile = (): ReturnType<typeof readContextFile> => {
    try {
      return readContextFile(cli.env);
    } catch (err) {
      throw new CliFailure((err as Error).message);
    }
  };
  let url = options.server ?? (cli.env.STEADY_URL?.trim() || undefined);
  let token = options.token ?? (cli.env.STEADY_TOKEN?.trim() || undefined);
  if (url === undefined || token === undefined) {
    const file = fromFile();
    url ??= file?.url;
    token ??= file?.token;
  }
  if (url === undefined || token === undefined) {
    throw new CliFailure(
      `no ${url === undefined ? 'server' : 'token'} given: pass --server URL --token TOKEN, set STEADY_URL and STEADY_TOKEN, or start \`steady dev\` (it writes ${contextFilePath(cli.env)})`,
    );
  }
  if (!/^https?:\/\/[^/]/.test(url) || !URL.canParse(url)) throw new CliFailure(`the server must be an http(s) URL, got ${JSON.stringify(url)}`);
  return { url, token };
}

/**
 * Runs a client verb: builds the client, runs `work`, and turns what failed into a message and exit
 * code 1 (the API's refusals with their details, an unreachable server, a CliFailure). `work` may
 * return an exit code of its own (1 for a rollout that failed).
 */
export async function runClientAction(cli: Cli, command: Command, work: (ctx: ClientContext) => Promise<number | void>): Promise<void> {
  try {
    const { url, token } = resolveConnection(command.optsWithGlobals<ConnectionOptions>(), cli);
    const client = new SteadyClient({ baseUrl: url, token });
    const code = await work({ client, cli, colour: useColour(cli.isTTY, cli.env) });
    cli.exitCode = code ?? 0;
  } catch (err) {
    if (err instanceof ApiError) {
      cli.err(`error: ${describeApiError(err)}\n`);
    } else if (err instanceof CliFailure) {
      cli.err(`error: ${err.message}\n`);
    } else {
      throw err;
    }
    cli.exitCode = 1;
  }
}

export function describeApiError(err: ApiError): string {
  const head = err.status === 0 ? err.message : `${err.message} (${err.status} ${err.code})`;
  return [head, ...err.details.map((d) => `  ${d.path === '' ? '(body)' : d.path}: ${d.message}`)].join('\n');
}

/** A live deployment of the caller's, by name or id; a CliFailure naming it when there is none. */
export async function deploymentNamed(ctx: ClientContext, nameOrId: string): Promise<DeploymentState> {
  const found = await ctx.client.findDeployment(nameOrId);
  if (found === null) throw new CliFailure(`deployment "${nameOrId}" not found`);
  return found;
}

/** A node by name or id (admin). */
export async function nodeNamed(ctx: ClientContext, nameOrId: string): Promise<Awaited<ReturnType<SteadyClient['nodes']>>[number]> {
  const node = (await ctx.client.nodes()).find((n) => n.name === nameOrId || n.node_id === nameOrId);
  if (!node) throw new CliFailure(`node "${nameOrId}" not found`);
  return node;
}
