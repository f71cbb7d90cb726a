import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import type { Config } from '../config.js';
import { NODE_LIMITS } from '../domain/validation.js';
import { parseDuration } from '../lib/duration.js';
import type { Logger } from '../logger.js';
import { startSimulatedNodes } from '../agent/simulator.js';
import { createTokenMinter } from '../api/tokens.js';
import { resolveSigningSecret } from './token.js';
import { waitForShutdown } from './signals.js';

export const AGENT_USAGE = `usage: steady agent --simulate [options]

  --simulate           run simulated node agents (the only runtime for now)
  --api URL            the steady API (default http://127.0.0.1:$PORT)
  --token T            a node token: runs one node, named after the token's sub;
                       without it each node gets its own node token, signed with
                       JWT_SECRET (or the dev data directory's secret)
  --nodes N            how many nodes (default 1)
  --name-prefix P      nodes are named P-1 … P-N (default sim-node)
  --fail-rate P        fraction of starts that fail, 0 to 1 (default 0)
  --start-delay D      how long a start takes (default 1s; ms, s, m)
  --heartbeat D        between heartbeats (default 5s)`;

export interface AgentArgs {
  readonly apiUrl: string;
  readonly token: string | null;
  readonly nodes: number;
  readonly namePrefix: string;
  readonly namePrefixGiven: boolean;
  readonly failRate: number;
  readonly startDelayMs: number;
  readonly heartbeatMs: number;
}

export type ParsedAgentArgs = { readonly ok: true; readonly args: AgentArgs } | { readonly ok: false; readonly message: string; readonly help?: boolean };

/** Parses and checks `steady agent` arguments; pure, so the deploy tests can run compose's command through it. */
export function parseAgentArgs(argv: readonly string[], defaultApiUrl = 'http://127.0.0.1:8080'): ParsedAgentArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        simulate: { type: 'boolean' },
        api: { type: 'string' },
        token: { type: 'string' },
        nodes: { type: 'string' },
        'name-prefix': { type: 'string' },
        'fail-rate': { type: 'string' },
        'start-delay': { type: 'string' },
        heartbeat: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  if (values.help) return { ok: false, message: '', help: true };
  if (!values.simulate) return { ok: false, message: '--simulate is required: simulated nodes are the only runtime so far' };

  const apiUrl = (values.api as string | undefined) ?? defaultApiUrl;
  if (!/^https?:\/\/[^/]/.test(apiUrl) || !URL.canParse(apiUrl)) return { ok: false, message: `--api: expected an http(s) URL, got ${JSON.stringify(apiUrl)}` };
  const nodesText = (values.nodes as string | undefined) ?? '1';
  const nodes = Number(nodesText);
  if (!/^\d+$/.test(nodesText) || nodes < 1 || nodes > 1000) return { ok: false, message: `--nodes: expected an integer from 1 to 1000, got ${JSON.stringify(nodesText)}` };
  const namePrefix = (values['name-prefix'] as string | undefined) ?? 'sim-node';
  // Room for "-N" within the API's node name limit.
  if (namePrefix.length > NODE_LIMITS.name.max - 5 || !NODE_LIMITS.name.pattern.test(namePrefix)) {
    return { ok: false, message: `--name-prefix: 1-${NODE_LIMITS.name.max - 5} letters, digits, ".", "-" or "_"` };
  }
  const failText = (values['fail-rate'] as string | undefined) ?? '0';
  const failRate = Number(failText);
  if (failText.trim() === '' || !Number.isFinite(failRate) || failRate < 0 || failRate > 1) {
    return { ok: false, message: `--fail-rate: expected a number from 0 to 1, got ${JSON.stringify(failText)}` };
  }
  const startDelayMs = parseDuration((values['start-delay'] as string | undefined) ?? '1s');
  if (startDelayMs === null) return { ok: false, message: `--start-delay: expected a duration such as 500ms or 2s, got ${JSON.stringify(values['start-delay'])}` };
  const heartbeatMs = parseDuration((values.heartbeat as string | undefined) ?? '5s');
  if (heartbeatMs === null || heartbeatMs < 10) return { ok: false, message: `--heartbeat: expected a duration of at least 10ms such as 5s, got ${JSON.stringify(values.heartbeat)}` };
  const token = (values.token as string | undefined)?.trim() || null;
  return {
    ok: true,
    args: { apiUrl, token, nodes, namePrefix, namePrefixGiven: values['name-prefix'] !== undefined, failRate, startDelayMs, heartbeatMs },
  };
}

export interface RunAgentOptions {
  /** Stops the agents like SIGTERM does; for tests that run the command in-process. */
  readonly signal?: AbortSignal;
}

/** `steady agent --simulate …`: runs until SIGTERM or SIGINT, then stops cleanly; returns the exit code. */
export async function runAgent(argv: readonly string[], config: Config, logger: Logger, options: RunAgentOptions = {}): Promise<number> {
  const parsed = parseAgentArgs(argv, `http://127.0.0.1:${config.port}`);
  if (!parsed.ok) {
    if (parsed.help) {
      process.stdout.write(`${AGENT_USAGE}\n`);
      return 0;
    }
    return usageError(parsed.message);
  }
  const args = parsed.args;
  const credentials = chooseCredentials(args, config);
  if ('error' in credentials) return usageError(credentials.error);

  const simulation = startSimulatedNodes({
    apiUrl: args.apiUrl,
    ...credentials.tokens,
    names: credentials.names,
    heartbeatMs: args.heartbeatMs,
    startDelayMs: args.startDelayMs,
    failRate: args.failRate,
    logger,
  });
  logger.info(
    { api: args.apiUrl, nodes: simulation.nodes.map((n) => n.name), tokens: credentials.describe, fail_rate: args.failRate, start_delay_ms: args.startDelayMs, heartbeat_ms: args.heartbeatMs },
    'simulated node agents started',
  );

  const reason = await waitForShutdown(options.signal);
  logger.info({ signal: reason }, 'stopping simulated node agents');
  await simulation.stop();
  logger.info('simulated node agents stopped');
  return 0;
}

type Credentials =
  | { readonly error: string }
  | {
      readonly tokens: { readonly token: string } | { readonly tokenFor: (name: string) => Promise<string> };
      readonly names: readonly string[];
      readonly describe: string;
    };

/** An explicit --token runs the one node it names; otherwise each node gets a node token signed with the secret the API verifies. */
function chooseCredentials(args: AgentArgs, config: Config): Credentials {
  const prefixed = Array.from({ length: args.nodes }, (_, i) => `${args.namePrefix}-${i + 1}`);
  if (args.token !== null) {
    // The API answers heartbeats and reports only for a `node` token whose sub is the node's name
    // (DESIGN.md section 3), so one token can speak for exactly one node; an admin token for none.
    let claims: { sub?: unknown; roles?: unknown };
    try {
      claims = decodeJwt(args.token);
    } catch {
      return { error: '--token is not a JWT' };
    }
    const roles = Array.isArray(claims.roles) ? claims.roles : [];
    const sub = typeof claims.sub === 'string' ? claims.sub : '';
    if (!roles.includes('node') || sub === '') {
      return { error: '--token must be a node token (role node, sub = the node name); leave --token out and set JWT_SECRET to run several nodes with a token each' };
    }
    if (args.nodes > 1) {
      return { error: `--token is a node token for "${sub}" only; for --nodes ${args.nodes} leave --token out and set JWT_SECRET so each node gets its own` };
    }
    if (args.namePrefixGiven) return { error: `--name-prefix cannot be used with --token: the node is named after the token's sub ("${sub}")` };
    return { tokens: { token: args.token }, names: [sub], describe: `a node token for ${sub}` };
  }
  const resolved = resolveSigningSecret(config, 'read');
  if ('error' in resolved) return { error: `--token is required: ${resolved.error}` };
  const mint = createTokenMinter(resolved.secret, { roles: ['node'], ttlSec: 3600, issuer: config.jwt.issuer, audience: config.jwt.audience });
  return { tokens: { tokenFor: mint }, names: prefixed, describe: `a node token per node, signed with ${resolved.source}` };
}

function usageError(message: string): number {
  process.stderr.write(`steady agent: ${message}\n\n${AGENT_USAGE}\n`);
  return 2;
}
