import type { Logger } from '../logger.js';
import { AgentClient, type TokenSource } from './client.js';
import { NodeAgent } from './node-agent.js';
import type { ContainerResources } from './runtime.js';
import { SimulatedRuntime } from './simulated-runtime.js';

export const DEFAULT_SIMULATED_CAPACITY: ContainerResources = Object.freeze({ cpuCores: 4, memoryMb: 8192, gpuUnits: 0, storageGb: 100 });

export interface SimulatedNodesOptions {
  readonly apiUrl: string;
  /**
   * One token for every node. The API serves heartbeats and reports only to a `node` token whose
   * `sub` is the node's name, so this fits a single node named like that `sub`.
   */
  readonly token?: string;
  /** A token per node name, asked before every request; preferred over `token`. */
  readonly tokenFor?: (nodeName: string) => string | Promise<string>;
  /** Default 3. */
  readonly nodes?: number;
  /** Nodes are named `${namePrefix}-1` … `${namePrefix}-N`. Default `sim-node`. */
  readonly namePrefix?: string;
  /** Exact node names instead of the prefix (for example a node token's `sub`); overrides `nodes`. */
  readonly names?: readonly string[];
  /** Per node; default 4 cores, 8192 MB, 0 GPU, 100 GB. */
  readonly capacity?: Partial<ContainerResources>;
  readonly heartbeatMs?: number;
  /** Default 1000 ms. */
  readonly startDelayMs?: number;
  /** Fraction of starts that fail, 0 to 1; default 0. */
  readonly failRate?: number;
  readonly logger: Logger;
  readonly random?: () => number;
  readonly requestTimeoutMs?: number;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  readonly fetch?: typeof globalThis.fetch;
}

export interface SimulatedNode {
  readonly name: string;
  readonly agent: NodeAgent;
  readonly runtime: SimulatedRuntime;
}

export interface SimulatedNodes {
  readonly nodes: readonly SimulatedNode[];
  /** Resolves once every node has registered (or the simulation was stopped first). */
  ready(): Promise<void>;
  /** Stops every agent; resolves once their calls in flight have finished. */
  stop(): Promise<void>;
}

/** Simulated node agents, each its own NodeAgent with an in-memory runtime; used by `steady agent --simulate` and `steady dev`. */
export function startSimulatedNodes(options: SimulatedNodesOptions): SimulatedNodes {
  const names = options.names ?? Array.from({ length: options.nodes ?? 3 }, (_, i) => `${options.namePrefix ?? 'sim-node'}-${i + 1}`);
  if (names.length === 0) throw new RangeError('at least one simulated node is needed');
  if (new Set(names).size !== names.length) throw new RangeError(`simulated node names must be unique: ${names.join(', ')}`);
  const tokenFor = options.tokenFor;
  const shared = options.token;
  if (!tokenFor && !shared) throw new TypeError('startSimulatedNodes needs token or tokenFor');
  const capacity: ContainerResources = { ...DEFAULT_SIMULATED_CAPACITY, ...options.capacity };

  const nodes = names.map((name): SimulatedNode => {
    const token: TokenSource = tokenFor ? () => tokenFor(name) : shared!;
    const runtime = new SimulatedRuntime({
      startDelayMs: options.startDelayMs ?? 1_000,
      failRate: options.failRate ?? 0,
      random: options.random,
      idPrefix: name,
    });
    const agent = new NodeAgent({
      name,
      capacity,
      labels: { simulated: 'true' },
      client: new AgentClient({ apiUrl: options.apiUrl, token, timeoutMs: options.requestTimeoutMs, fetch: options.fetch }),
      runtime,
      logger: options.logger,
      heartbeatMs: options.heartbeatMs,
      retryBaseMs: options.retryBaseMs,
      retryMaxMs: options.retryMaxMs,
      random: options.random,
    });
    agent.start();
    return { name, agent, runtime };
  });

  let stopped: Promise<void> | null = null;
  return {
    nodes,
    async ready() {
      await Promise.all(nodes.map((n) => n.agent.registered));
    },
    stop() {
      stopped ??= Promise.all(nodes.map((n) => n.agent.stop())).then(() => undefined);
      return stopped;
    },
  };
}
