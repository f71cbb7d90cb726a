import os from 'node:os';
import type { Config } from '../config.js';
import { NODE_LIMITS } from '../domain/validation.js';
import type { Logger } from '../logger.js';
import type { Env } from './io.js';
import { waitForShutdown } from './signals.js';
import { resolveSigningSecret } from './token.js';

/** `steady agent --runtime docker`: one real node on this machine's Docker engine (DESIGN.md section 7). */

export interface DockerAgentArgs {
  readonly apiUrl: string;
  /** --token, else STEADY_TOKEN; without either, a node token is signed with JWT_SECRET. */
  readonly token: string | null;
  /** --name; default: the token's sub, else the host name. */
  readonly name: string | null;
  /** --docker-host, else DOCKER_HOST, else the local socket. */
  readonly dockerHost: string | null;
  readonly network: string;
  readonly cpuCores: number | null;
  readonly memoryMb: number | null;
  readonly storageGb: number | null;
  readonly gpus: number | null;
  readonly reserveCpuCores: number;
  readonly reserveMemoryMb: number;
  readonly stopTimeoutSec: number;
  readonly heartbeatMs: number;
}

/** What the machine keeps for itself unless told otherwise: the engine, the agent and the kernel need room. */
export const DEFAULT_RESERVE = Object.freeze({ cpuCores: 0.5, memoryMb: 512 });

export interface RunDockerAgentOptions {
  readonly signal?: AbortSignal;
  readonly onUsageError?: (message: string) => void;
  readonly env?: Env;
}

/** Runs the agent until SIGTERM or SIGINT; its containers keep running after it. Returns the exit code. */
export async function runDockerAgent(args: DockerAgentArgs, config: Config, logger: Logger, options: RunDockerAgentOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const usage = options.onUsageError ?? ((message: string) => void process.stderr.write(`steady agent: ${message}\n`));
  const credentials = await dockerCredentials(args, config, env);
  if ('error' in credentials) {
    usage(credentials.error);
    return 2;
  }
  const { startDockerNode } = await import('../agent/docker/docker-node.js');
  const node = await startDockerNode({
    apiUrl: args.apiUrl,
    token: credentials.token,
    name: credentials.name,
    dockerHost: args.dockerHost ?? env.DOCKER_HOST ?? undefined,
    networkMode: args.network,
    capacity: {
      cpuCores: args.cpuCores ?? undefined,
      memoryMb: args.memoryMb ?? undefined,
      storageGb: args.storageGb ?? undefined,
      gpuUnits: args.gpus ?? undefined,
      reserveCpuCores: args.reserveCpuCores,
      reserveMemoryMb: args.reserveMemoryMb,
    },
    stopTimeoutSec: args.stopTimeoutSec,
    heartbeatMs: args.heartbeatMs,
    logger,
  });
  const reason = await waitForShutdown(options.signal);
  logger.info({ signal: reason }, 'stopping the Docker node agent; its containers keep running');
  await node.stop();
  logger.info('Docker node agent stopped');
  return 0;
}

type DockerCredentials = { readonly error: string } | { readonly token: string | (() => Promise<string>); readonly name: string };

async function dockerCredentials(args: DockerAgentArgs, config: Config, env: Env): Promise<DockerCredentials> {
  const token = args.token ?? (env.STEADY_TOKEN?.trim() || null);
  if (token !== null) {
    const { decodeJwt } = await import('jose');
    let claims: { sub?: unknown; roles?: unknown };
    try {
      claims = decodeJwt(token);
    } catch {
      return { error: 'the token (--token or STEADY_TOKEN) is not a JWT' };
    }
    const sub = typeof claims.sub === 'string' ? claims.sub : '';
    if (!(Array.isArray(claims.roles) && claims.roles.includes('node')) || sub === '') {
      return { error: 'the token (--token or STEADY_TOKEN) must be a node token: role node, sub = the node name' };
    }
    if (args.name !== null && args.name !== sub) return { error: `--name ${args.name} differs from the token's node name "${sub}"` };
    return { token, name: sub };
  }
  const name = args.name ?? os.hostname();
  if (!NODE_LIMITS.name.pattern.test(name) || name.length > NODE_LIMITS.name.max) {
    return { error: `the node name ${JSON.stringify(name)} is not valid (1-${NODE_LIMITS.name.max} letters, digits, ".", "-" or "_"); give one with --name` };
  }
  const resolved = resolveSigningSecret(config, 'read');
  if ('error' in resolved) return { error: `set STEADY_TOKEN to a node token: ${resolved.error}` };
  const { createTokenMinter } = await import('../api/tokens.js');
  const mint = createTokenMinter(resolved.secret, { roles: ['node'], ttlSec: 3600, issuer: config.jwt.issuer, audience: config.jwt.audience });
  return { token: () => mint(name), name };
}
