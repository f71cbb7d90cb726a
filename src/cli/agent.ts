import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Config } from '../config.js';
import { NODE_LIMITS } from '../domain/validation.js';
import type { Logger } from '../logger.js';
import { DEFAULT_RESERVE, runDockerAgent, type DockerAgentArgs } from './agent-docker.js';
import { durationAtLeast, integerIn, usageError } from './arguments.js';
import { serverContext, type Cli } from './io.js';
import { resolveSigningSecret } from './token.js';
import { waitForShutdown } from './signals.js';

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

/** Simulated nodes parse to `args`; a Docker node (`--runtime docker`) to `docker`. */
export type ParsedAgentArgs =
  | { readonly ok: true; readonly args: AgentArgs }
  | { readonly ok: true; readonly docker: DockerAgentArgs }
  | { readonly ok: false; readonly message: string };

interface AgentOptions {
  simulate?: boolean;
  runtime?: 'simulated' | 'docker';
  name?: string;
  dockerHost?: string;
  network: string;
  cpu?: number;
  memoryMb?: number;
  storageGb?: number;
  gpus?: number;
  reserveCpu: number;
  reserveMemoryMb: number;
  stopTimeout: number;
  api?: string;
  token?: string;
  nodes: number;
  namePrefix?: string;
  failRate: number;
  startDelay: number;
  heartbeat: number;
}

/** The options of `steady agent`, on `command`; the same definition parses for the CLI and for parseAgentArgs. */
function defineAgentOptions(command: Command): Command {
  return command
    .summary('node agents: simulated, or a real one on the local Docker engine')
    .description(
      'Runs node agents against the steady API until SIGTERM or SIGINT: simulated ones (--simulate), or one real node on this ' +
        "machine's Docker engine (--runtime docker, token in STEADY_TOKEN). A Docker node's containers keep running when the agent stops; " +
        'a restarted agent adopts them.',
    )
    .option('--simulate', 'run simulated node agents (same as --runtime simulated)')
    .addOption(new Option('--runtime <runtime>', 'what runs the containers').choices(['simulated', 'docker']))
    .option('--api <url>', 'the steady API (default http://127.0.0.1:$PORT)')
    .option('--token <token>', "a node token: runs one node, named after the token's sub; without it each node gets its own node token, signed with JWT_SECRET (or the dev data directory's secret)")
    .option('--nodes <n>', 'how many nodes', integerIn(1, 1000), 1)
    .option('--name-prefix <prefix>', 'nodes are named PREFIX-1 … PREFIX-N (default sim-node)')
    .option('--fail-rate <p>', 'fraction of starts that fail, 0 to 1', fraction, 0)
    .addOption(new Option('--start-delay <duration>', 'how long a start takes (ms, s, m)').argParser(durationAtLeast(0, '500ms or 2s')).default(1_000, '1s'))
    .addOption(new Option('--heartbeat <duration>', 'between heartbeats').argParser(durationAtLeast(10, '5s (at least 10ms)')).default(5_000, '5s'))
    .option('--name <name>', "docker: the node's name (default: the token's sub, else the host name)")
    .option('--docker-host <url>', 'docker: the engine, unix:///path or tcp://host:port (default DOCKER_HOST, else unix:///var/run/docker.sock)')
    .option('--network <mode>', "docker: the containers' network mode (the operator's choice, never a deployment's)", 'bridge')
    .option('--cpu <cores>', "docker: CPU cores offered (default: the machine's, minus --reserve-cpu)", nonNegative(NODE_LIMITS.cpuCores.max))
    .option('--memory-mb <mb>', "docker: memory offered (default: the machine's, minus --reserve-memory-mb)", integerIn(0, NODE_LIMITS.memoryMb.max))
    .option('--storage-gb <gb>', "docker: storage offered (default: free space under the engine's data root)", integerIn(0, NODE_LIMITS.storageGb.max))
    .option('--gpus <n>', 'docker: GPUs offered (default 0: never guessed)', integerIn(0, NODE_LIMITS.gpuUnits.max))
    .option('--reserve-cpu <cores>', 'docker: cores kept for the system', nonNegative(NODE_LIMITS.cpuCores.max), DEFAULT_RESERVE.cpuCores)
    .option('--reserve-memory-mb <mb>', 'docker: memory kept for the system', integerIn(0, NODE_LIMITS.memoryMb.max), DEFAULT_RESERVE.memoryMb)
    .addOption(new Option('--stop-timeout <duration>', 'docker: SIGTERM, then SIGKILL after this long').argParser(durationAtLeast(0, '10s')).default(10_000, '10s'));
}

function nonNegative(max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new InvalidArgumentError(`expected a number from 0 to ${max}`);
    return n;
  };
}

const SIMULATED_ONLY = ['nodes', 'namePrefix', 'failRate', 'startDelay'] as const;
const DOCKER_ONLY = ['name', 'dockerHost', 'network', 'cpu', 'memoryMb', 'storageGb', 'gpus', 'reserveCpu', 'reserveMemoryMb', 'stopTimeout'] as const;
const flag = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

function fraction(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
}

/** The checks commander cannot make alone: a value for either a success or a usage message. `given` says whether an option was on the command line. */
function checkAgentOptions(options: AgentOptions, defaultApiUrl: string, given: (key: string) => boolean): ParsedAgentArgs {
  if (options.simulate && options.runtime === 'docker') return { ok: false, message: '--simulate and --runtime docker exclude each other' };
  const runtime = options.runtime ?? (options.simulate ? 'simulated' : null);
  if (runtime === null) return { ok: false, message: '--runtime docker or --simulate is required' };
  const apiUrl = options.api ?? defaultApiUrl;
  if (!/^https?:\/\/[^/]/.test(apiUrl) || !URL.canParse(apiUrl)) return { ok: false, message: `--api: expected an http(s) URL, got ${JSON.stringify(apiUrl)}` };
  const misplaced = (runtime === 'docker' ? SIMULATED_ONLY : DOCKER_ONLY).filter(given);
  if (misplaced.length > 0) return { ok: false, message: `${misplaced.map(flag).join(', ')} cannot be used with --runtime ${runtime}` };
  if (runtime === 'docker') return checkDockerOptions(options, apiUrl);
  const namePrefix = options.namePrefix ?? 'sim-node';
  // Room for "-N" within the API's node name limit.
  if (namePrefix.length > NODE_LIMITS.name.max - 5 || !NODE_LIMITS.name.pattern.test(namePrefix)) {
    return { ok: false, message: `--name-prefix: 1-${NODE_LIMITS.name.max - 5} letters, digits, ".", "-" or "_"` };
  }
  const token = options.token?.trim() || null;
  return {
    ok: true,
    args: {
      apiUrl,
      token,
      nodes: options.nodes,
      namePrefix,
      namePrefixGiven: options.namePrefix !== undefined,
      failRate: options.failRate,
      startDelayMs: options.startDelay,
      heartbeatMs: options.heartbeat,
    },
  };
}

function checkDockerOptions(options: AgentOptions, apiUrl: string): ParsedAgentArgs {
  if (options.name !== undefined && (!NODE_LIMITS.name.pattern.test(options.name) || options.name.length > NODE_LIMITS.name.max)) {
    return { ok: false, message: `--name: 1-${NODE_LIMITS.name.max} letters, digits, ".", "-" or "_"` };
  }
  if (options.network.trim() === '') return { ok: false, message: '--network: expected a network mode such as bridge, host or none' };
  return {
    ok: true,
    docker: {
      apiUrl,
      token: options.token?.trim() || null,
      name: options.name ?? null,
      dockerHost: options.dockerHost ?? null,
      network: options.network,
      cpuCores: options.cpu ?? null,
      memoryMb: options.memoryMb ?? null,
      storageGb: options.storageGb ?? null,
      gpus: options.gpus ?? null,
      reserveCpuCores: options.reserveCpu,
      reserveMemoryMb: options.reserveMemoryMb,
      // The engine takes whole seconds.
      stopTimeoutSec: Math.ceil(options.stopTimeout / 1000),
      heartbeatMs: options.heartbeat,
    },
  };
}

/** Parses and checks `steady agent` arguments without running anything, so the deploy tests can check compose's command. */
export function parseAgentArgs(argv: readonly string[], defaultApiUrl = 'http://127.0.0.1:8080'): ParsedAgentArgs {
  let message = '';
  const command = defineAgentOptions(new Command('agent'))
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: (text) => void (message += text) });
  try {
    command.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return { ok: false, message: message.trim() || err.message };
    throw err;
  }
  return checkAgentOptions(command.opts<AgentOptions>(), defaultApiUrl, (key) => command.getOptionValueSource(key) === 'cli');
}

/** `steady agent --simulate …` or `steady agent --runtime docker …`. */
export function addAgentCommand(program: Command, cli: Cli): Command {
  return defineAgentOptions(program.command('agent')).action(async (options: AgentOptions, command: Command) => {
    const { config, logger } = await serverContext(cli);
    const parsed = checkAgentOptions(options, `http://127.0.0.1:${config.port}`, (key) => command.getOptionValueSource(key) === 'cli');
    if (!parsed.ok) usageError(command, parsed.message);
    const runOptions = { signal: cli.signal, onUsageError: (message: string) => usageError(command, message) };
    cli.exitCode =
      'docker' in parsed ? await runDockerAgent(parsed.docker, config, logger, { ...runOptions, env: cli.env }) : await runAgent(parsed.args, config, logger, runOptions);
  });
}

export interface RunAgentOptions {
  /** Stops the agents like SIGTERM does; for tests that run the command in-process. */
  readonly signal?: AbortSignal;
  /** Reports a usage error; by default the message goes to stderr and the exit code is 2. */
  readonly onUsageError?: (message: string) => void;
}

/** Runs simulated agents until SIGTERM or SIGINT, then stops cleanly; returns the exit code. */
export async function runAgent(args: AgentArgs, config: Config, logger: Logger, options: RunAgentOptions = {}): Promise<number> {
  const [{ startSimulatedNodes }, { createTokenMinter }, { decodeJwt }] = await Promise.all([
    import('../agent/simulator.js'),
    import('../api/tokens.js'),
    import('jose'),
  ]);
  const credentials = chooseCredentials(args, config, { createTokenMinter, decodeJwt });
  if ('error' in credentials) {
    (options.onUsageError ?? ((message) => void process.stderr.write(`steady agent: ${message}\n`)))(credentials.error);
    return 2;
  }

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
function chooseCredentials(
  args: AgentArgs,
  config: Config,
  { createTokenMinter, decodeJwt }: { createTokenMinter: typeof import('../api/tokens.js').createTokenMinter; decodeJwt: typeof import('jose').decodeJwt },
): Credentials {
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
