/**
 * What a node agent needs from a container runtime. The simulator implements it today; Docker or
 * containerd plug in behind the same interface later, without the agent changing.
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
}
