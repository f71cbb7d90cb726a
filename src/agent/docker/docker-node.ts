import type { Logger } from '../../logger.js';
import { AgentClient, type TokenSource } from '../client.js';
import { NodeAgent } from '../node-agent.js';
import type { ContainerResources } from '../runtime.js';
import { machineFigures, nodeCapacity, type CapacityChoice } from './capacity.js';
import { DockerRuntime } from './docker-runtime.js';
import { DockerEngine } from './engine.js';

export interface DockerNodeOptions {
  readonly apiUrl: string;
  readonly token: TokenSource;
  readonly name: string;
  /** Default `unix:///var/run/docker.sock`. */
  readonly dockerHost?: string;
  /** The containers' network mode; default `bridge`. */
  readonly networkMode?: string;
  readonly capacity: CapacityChoice;
  /** SIGTERM, then SIGKILL after this long. Default 10 s. */
  readonly stopTimeoutSec?: number;
  readonly heartbeatMs?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  readonly requestTimeoutMs?: number;
  readonly logger: Logger;
}

export interface DockerNode {
  readonly name: string;
  readonly agent: NodeAgent;
  readonly runtime: DockerRuntime;
  readonly engine: DockerEngine;
  readonly capacity: ContainerResources;
  /** Stops the agent and its event stream. Containers keep running: the next agent adopts them. */
  stop(): Promise<void>;
}

/** One real node on the local Docker engine: checks the engine, works out capacity, starts the agent. */
export async function startDockerNode(options: DockerNodeOptions): Promise<DockerNode> {
  const engine = new DockerEngine({ host: options.dockerHost });
  try {
    const version = await engine.version();
    const capacity = nodeCapacity(await machineFigures(engine), options.capacity);
    const log = options.logger.child({ component: 'agent' });
    const runtime = new DockerRuntime({
      engine,
      logger: log,
      node: options.name,
      networkMode: options.networkMode ?? 'bridge',
      stopTimeoutSec: options.stopTimeoutSec ?? 10,
    });
    const agent = new NodeAgent({
      name: options.name,
      capacity,
      labels: { runtime: 'docker' },
      client: new AgentClient({ apiUrl: options.apiUrl, token: options.token, timeoutMs: options.requestTimeoutMs }),
      runtime,
      logger: log,
      heartbeatMs: options.heartbeatMs,
      retryBaseMs: options.retryBaseMs,
      retryMaxMs: options.retryMaxMs,
    });
    agent.start();
    log.info({ node: options.name, engine: version.engine, api_version: version.api, docker_host: engine.host, capacity }, 'Docker node agent started');
    let stopped: Promise<void> | null = null;
    return {
      name: options.name,
      agent,
      runtime,
      engine,
      capacity,
      stop() {
        stopped ??= (async () => {
          await agent.stop();
          await runtime.close();
          engine.close();
        })();
        return stopped;
      },
    };
  } catch (err) {
    engine.close();
    throw err;
  }
}
