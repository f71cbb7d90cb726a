import type { ContainerSpec, ContainerState } from '../runtime.js';
import type { EngineContainerState } from './engine.js';

/** DESIGN.md section 7: what the engine is told about a replica's container, and how its state reads back. */

export const LABELS = Object.freeze({
  replicaId: 'io.steady.replica-id',
  deploymentId: 'io.steady.deployment-id',
  revision: 'io.steady.revision',
  node: 'io.steady.node',
});

export const containerName = (replicaId: string): string => `steady-${replicaId}`;

export interface ContainerSettings {
  /** The node's name, on every container as `io.steady.node`: the agent's memory across restarts. */
  readonly node: string;
  /** The agent operator's choice, never the deployment's. */
  readonly networkMode: string;
  readonly stopTimeoutSec: number;
}

const MIB = 1024 * 1024;

/** The body of `POST /containers/create`. env values go to the engine and nowhere else. */
export function createContainerBody(spec: ContainerSpec, settings: ContainerSettings): Record<string, unknown> {
  const memory = Math.round(spec.resources.memoryMb * MIB);
  const labels: Record<string, string> = {
    [LABELS.replicaId]: spec.replicaId,
    [LABELS.deploymentId]: spec.deploymentId,
    [LABELS.node]: settings.node,
  };
  if (spec.revision != null) labels[LABELS.revision] = String(spec.revision);
  return {
    Image: spec.image,
    // Docker's meaning: the command replaces the image's CMD (its ENTRYPOINT, if any, stays).
    ...(spec.command && spec.command.length > 0 ? { Cmd: [...spec.command] } : {}),
    Env: Object.entries(spec.env ?? {}).map(([name, value]) => `${name}=${value}`),
    Labels: labels,
    StopSignal: 'SIGTERM',
    StopTimeout: settings.stopTimeoutSec,
    HostConfig: {
      Memory: memory,
      // Equal to Memory: no swap, so the memory limit is the limit.
      MemorySwap: memory,
      NanoCpus: Math.round(spec.resources.cpuCores * 1e9),
      ...(spec.resources.gpuUnits > 0 ? { DeviceRequests: [{ Driver: '', Count: spec.resources.gpuUnits, DeviceIDs: null, Capabilities: [['gpu']], Options: {} }] } : {}),
      NetworkMode: settings.networkMode,
      // The controller, not the engine, replaces a failed replica.
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      Privileged: false,
      CapAdd: null,
      Binds: null,
      Mounts: null,
      Devices: null,
      PublishAllPorts: false,
    },
  };
}

/** A container's state as the agent sees it, and why it failed, from the engine's `State`. */
export function readState(state: EngineContainerState): { state: ContainerState; reason: string | null } {
  switch (state.Status) {
    case 'running':
    case 'paused':
    case 'restarting':
      return { state: 'running', reason: null };
    case 'created':
      // A start the engine refused leaves the container `created`, with the engine's message.
      return state.Error ? { state: 'failed', reason: `ContainerCannotRun: ${state.Error}` } : { state: 'starting', reason: null };
    default:
      return { state: 'failed', reason: exitReason(state) };
  }
}

function exitReason(state: EngineContainerState): string {
  if (state.OOMKilled) return 'OOMKilled';
  if (state.Error) return `ContainerCannotRun: ${state.Error}`;
  return `Error: exit code ${state.ExitCode}`;
}
