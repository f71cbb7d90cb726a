/**
 * What a node agent needs from a container runtime: the simulator (development, tests, benchmarks)
 * and Docker (real containers) implement it; containerd can plug in behind it without the agent changing.
 */

export interface ContainerResources {
  readonly cpuCores: number;
  readonly memoryMb: number;
  readonly gpuUnits: number;
  readonly storageGb: number;
}

/** One replica to run, as the heartbeat answer describes it. */
export interface ContainerSpec {
  readonly replicaId: string;
  readonly deploymentId: string;
  readonly image: string;
  readonly resources: ContainerResources;
  /** The deployment revision whose template this is, when the API names it. */
  readonly revision?: number | null;
  /** Replaces the image's command when given. */
  readonly command?: readonly string[] | null;
  /** Environment variables, name → value. Values are secrets: handed to the runtime and never logged. */
  readonly env?: Readonly<Record<string, string>> | null;
}

/**
 * `starting`: being created; `running`: up; `failed`: it did not start, or it exited later (a crash).
 * A stopped container is removed, so it is simply absent.
 */
export type ContainerState = 'starting' | 'running' | 'failed';

export interface ContainerStatus {
  readonly containerId: string;
  readonly replicaId: string;
  readonly state: ContainerState;
  /** Why a `failed` container failed, in the `Reason: detail` form the API records. */
  readonly reason: string | null;
}

export interface ContainerRuntime {
  /**
   * Creates and starts a container for the replica; resolves once it runs or has failed to start.
   * A failure to start is an expected outcome, returned as a `failed` status that `list()` keeps
   * showing until `stop()` removes it. Throws only when the runtime itself is unusable.
   */
  start(spec: ContainerSpec): Promise<ContainerStatus>;
  /** Stops and removes the container. A container that is already gone is not an error. */
  stop(containerId: string): Promise<void>;
  /**
   * Every container the runtime holds for this node, in any state. A runtime whose containers
   * outlive the agent (Docker) must find them again here after an agent restart, by replica id.
   */
  list(): Promise<readonly ContainerStatus[]>;
  /**
   * Calls `onChange` whenever a container may have changed state on its own (an exit), so the agent
   * checks at once instead of at its next heartbeat. Returns the unsubscribe function.
   */
  watch?(onChange: () => void): () => void;
}
