import { setTimeout as delay } from 'node:timers/promises';
import { LruMap } from '../lib/lru.js';
import type { ContainerRuntime, ContainerSpec, ContainerStatus } from './runtime.js';

export interface SimulatedRuntimeOptions {
  /** How long a start takes before the container runs (or fails). */
  readonly startDelayMs?: number;
  /** Fraction of starts, from 0 to 1, that fail. */
  readonly failRate?: number;
  /** Uniform in [0, 1); injectable so tests decide which starts fail. */
  readonly random?: () => number;
  /** Prefix of container ids (`${idPrefix}-${replicaId}`); the node name, so ids say where they run. */
  readonly idPrefix?: string;
}

interface SimulatedContainer {
  containerId: string;
  replicaId: string;
  state: ContainerStatus['state'];
  reason: string | null;
  image: string;
}

/**
 * Containers that exist only in memory: a start takes `startDelayMs`, a fraction `failRate` of starts
 * fail, an image tagged `fail` never starts, and `crash()` makes a running container exit later. Like a machine that reboots, it forgets
 * everything when the process ends.
 */
export class SimulatedRuntime implements ContainerRuntime {
  readonly #containers = new Map<string, SimulatedContainer>();
  readonly #startDelayMs: number;
  readonly #failRate: number;
  readonly #random: () => number;
  readonly #idPrefix: string;
  /**
   * Starts begun per replica, for the most recent 10,000 replicas (a long-running simulator must not
   * grow without bound); tests read it to prove nothing is started twice.
   */
  readonly startCounts = new LruMap<string, number>(10_000);

  constructor(options: SimulatedRuntimeOptions = {}) {
    const failRate = options.failRate ?? 0;
    if (!(failRate >= 0 && failRate <= 1)) throw new RangeError(`failRate must be from 0 to 1, got ${failRate}`);
    const startDelayMs = options.startDelayMs ?? 0;
    if (!(startDelayMs >= 0)) throw new RangeError(`startDelayMs must be >= 0, got ${startDelayMs}`);
    this.#startDelayMs = startDelayMs;
    this.#failRate = failRate;
    this.#random = options.random ?? Math.random;
    this.#idPrefix = options.idPrefix ?? 'sim';
  }

  async start(spec: ContainerSpec): Promise<ContainerStatus> {
    this.startCounts.set(spec.replicaId, (this.startCounts.get(spec.replicaId) ?? 0) + 1);
    const container: SimulatedContainer = {
      // Named after the replica, like a pod's container: a replica started again (after the agent
      // and its containers were lost) keeps the id the API recorded, which an idempotent report keeps.
      containerId: `${this.#idPrefix}-${spec.replicaId}`,
      replicaId: spec.replicaId,
      state: 'starting',
      reason: null,
      image: spec.image,
    };
    this.#containers.set(container.containerId, container);
    if (this.#startDelayMs > 0) await delay(this.#startDelayMs);
    if (!this.#containers.has(container.containerId)) {
      return { ...snapshot(container), state: 'failed', reason: 'Stopped: removed while starting' };
    }
    // Decided after the delay, so a random source scripted by a test is consulted in start order.
    if (isUnpullable(spec.image)) {
      container.state = 'failed';
      container.reason = `ErrImagePull: simulated: ${spec.image} cannot be pulled`;
    } else if (this.#random() < this.#failRate) {
      container.state = 'failed';
      container.reason = `SimulatedFailure: ${spec.image} exited with code 1 while starting`;
    } else {
      container.state = 'running';
    }
    return snapshot(container);
  }

  async stop(containerId: string): Promise<void> {
    this.#containers.delete(containerId);
  }

  async list(): Promise<readonly ContainerStatus[]> {
    return [...this.#containers.values()].map(snapshot);
  }

  /**
   * Makes the running container of `replicaId` exit, as a crash would; the agent reports it `failed`
   * on its next pass. Returns false when that replica has no running container here.
   */
  crash(replicaId: string, reason = 'SimulatedCrash: container exited with code 137'): boolean {
    for (const container of this.#containers.values()) {
      if (container.replicaId === replicaId && container.state === 'running') {
        container.state = 'failed';
        container.reason = reason;
        return true;
      }
    }
    return false;
  }

  /** Replica ids with a running container. */
  runningReplicaIds(): string[] {
    return [...this.#containers.values()].filter((c) => c.state === 'running').map((c) => c.replicaId);
  }
}

/** Images tagged `fail` (`nginx:fail`) never start: a bad image to try rollouts and rollbacks with. */
export const isUnpullable = (image: string): boolean => /:fail$/.test(image);

function snapshot(c: SimulatedContainer): ContainerStatus {
  return { containerId: c.containerId, replicaId: c.replicaId, state: c.state, reason: c.reason };
}
