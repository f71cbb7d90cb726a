import os from 'node:os';
import { Option, type Command } from 'commander';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { DEFAULT_RESERVE } from './agent-docker.js';
import { durationAtLeast, integerIn, usageError } from './arguments.js';
import { writeContextFile } from './context-file.js';
import { readOrCreateDevSecret } from './dev-secret.js';
import { serverContext, type Cli, type Env } from './io.js';
import { shutdownWithin, waitForShutdown } from './signals.js';

/** `steady dev`: like `nomad agent -dev`. Runs until SIGTERM/SIGINT. */
export function addDevCommand(program: Command, cli: Cli): Command {
  return program
    .command('dev')
    .summary('everything in one process, embedded database, simulated nodes')
    .description(
      'Everything in one process, for trying steady out: the embedded database in STEADY_DATA_DIR (default ./.steady, migrated automatically), ' +
        'the API on http://HOST:PORT (default 127.0.0.1:8080), the controller, and N simulated nodes (4 cores, 8192 MB, 0 GPU, 100 GB each). ' +
        'With DATABASE_URL set, that server is used instead of the embedded database.',
    )
    .option('--nodes <n>', 'how many simulated nodes', integerIn(0, 1000), 3)
    .option('--start-delay <ms>', 'how long a simulated start takes, in milliseconds', integerIn(0, Number.MAX_SAFE_INTEGER), 1_000)
    .addOption(new Option('--runtime <runtime>', "simulated nodes, or one real node on the local Docker engine (DOCKER_HOST, else /var/run/docker.sock)").choices(['simulated', 'docker']).default('simulated'))
    .option('--network <mode>', "with --runtime docker: the containers' network mode", 'bridge')
    // A node learns of what was placed on it at its next heartbeat: every step of a rollout waits for
    // one. A development cluster has a few nodes on one machine, so it asks more often than an agent
    // of a real cluster (5s).
    .addOption(new Option('--heartbeat <duration>', "between the nodes' heartbeats").argParser(durationAtLeast(10, '1s (at least 10ms)')).default(1_000, '1s'))
    .action(async (options: DevOptions, command: Command) => {
      if (options.runtime === 'docker' && (command.getOptionValueSource('nodes') === 'cli' || command.getOptionValueSource('startDelay') === 'cli')) {
        usageError(command, '--nodes and --start-delay are for simulated nodes; --runtime docker runs one real node');
      }
      const { config, logger } = await serverContext(cli);
      await runDev(options, config, logger, cli.env, cli.signal);
    });
}

interface DevOptions {
  readonly nodes: number;
  readonly startDelay: number;
  readonly heartbeat: number;
  readonly runtime: 'simulated' | 'docker';
  readonly network: string;
}

async function runDev(options: DevOptions, baseConfig: Config, logger: Logger, env: Env, abort?: AbortSignal): Promise<void> {
  const { startDelay: startDelayMs } = options;
  const docker = options.runtime === 'docker';
  const nodes = docker ? 1 : options.nodes;
  // Loaded here, not at the top: the definition of every command is read for any `steady …`.
  const [{ startDaemon }, { startSimulatedNodes }, { startDockerNode }, { createTokenMinter, signToken }] = await Promise.all([
    import('../daemon.js'),
    import('../agent/simulator.js'),
    import('../agent/docker/docker-node.js'),
    import('../api/tokens.js'),
  ]);
  // A generated secret is kept in the data directory, so tokens stay valid across restarts.
  const secret = baseConfig.jwt.secret ?? readOrCreateDevSecret(baseConfig.dataDir);
  const config: Config = Object.freeze({
    ...baseConfig,
    jwt: Object.freeze({ ...baseConfig.jwt, secret }),
    // The data directory lock already guarantees one controller.
    controller: Object.freeze({ ...baseConfig.controller, leaderElection: false }),
  });
  const daemon = await startDaemon(config, logger, 'all', { migrate: true });
  const url = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${daemon.server.port}`;
  const nodeToken = createTokenMinter(secret, { roles: ['node'], ttlSec: 3600 });
  const dockerName = os.hostname();
  let dockerNode: Awaited<ReturnType<typeof startDockerNode>> | null = null;
  try {
    dockerNode = docker
      ? await startDockerNode({
          apiUrl: url,
          token: () => nodeToken(dockerName),
          name: dockerName,
          dockerHost: env.DOCKER_HOST,
          networkMode: options.network,
          heartbeatMs: options.heartbeat,
          capacity: { reserveCpuCores: DEFAULT_RESERVE.cpuCores, reserveMemoryMb: DEFAULT_RESERVE.memoryMb },
          logger,
        })
      : null;
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  const simulation =
    !docker && nodes > 0
      ? startSimulatedNodes({
          apiUrl: url,
          nodes,
          namePrefix: 'dev-node',
          startDelayMs,
          heartbeatMs: options.heartbeat,
          logger: logger.child({ component: 'agent' }),
          tokenFor: nodeToken,
        })
      : null;
  await simulation?.ready();
  await dockerNode?.agent.registered;
  // An admin token: the one person at a development cluster also looks after its nodes.
  const token = await signToken(secret, { sub: 'demo', roles: ['admin'], ttlSec: 30 * 24 * 3600 });
  // `steady get …` in another terminal finds the server and the token here.
  const contextFile = writeContextFile(env, { url, token });
  process.stdout.write(banner(url, token, dockerNode ? `1 Docker node (${dockerNode.name}), containers on ${dockerNode.engine.host}` : `${nodes} simulated`, config, contextFile));

  const signal = await waitForShutdown(abort);
  logger.info({ signal }, 'shutting down');
  await shutdownWithin(10_000, async () => {
    await simulation?.stop();
    // The Docker node's containers keep running: the next start adopts them.
    await dockerNode?.stop();
    await daemon.stop();
  });
  logger.info('stopped');
  logger.flush();
}

function banner(url: string, token: string, nodes: string, config: Config, contextFile: string): string {
  return `
steady dev is running
  dashboard  ${url}/#token=${token}
  API        ${url}   (OpenAPI: ${url}/openapi.json)
  database   ${config.databaseUrl === null ? `embedded, in ${config.dataDir}` : 'DATABASE_URL'}
  nodes      ${nodes}
  token      ${token}
             (user "demo", admin, valid 30 days; mint others with: npx steady token --sub NAME)
  context    ${contextFile} (the CLI's server and token)

Try it, in another terminal:
  npx steady apply -f examples/web.yaml    # then: npx steady get deployments -w

Or with curl:
  export TOKEN=${token}
  curl -s -X POST ${url}/api/deployment/deploy -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{"name":"web","container_image":"nginx:1.27","target_replicas":3,"resources":{"cpu_cores":1,"memory_mb":512,"storage_gb":1}}'
  curl -s ${url}/api/deployment/list -H "Authorization: Bearer $TOKEN"

`;
}
