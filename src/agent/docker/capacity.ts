import { statfs } from 'node:fs/promises';
import type { ContainerResources } from '../runtime.js';
import type { DockerEngine } from './engine.js';

export interface CapacityChoice {
  /** Given values win; the others come from the machine. */
  readonly cpuCores?: number;
  readonly memoryMb?: number;
  readonly storageGb?: number;
  /** GPUs are never guessed: 0 unless given. */
  readonly gpuUnits?: number;
  /** Kept for the system (the engine, the agent, the kernel) out of the machine's own figures. */
  readonly reserveCpuCores: number;
  readonly reserveMemoryMb: number;
}

export interface MachineFigures {
  readonly cpuCores: number;
  readonly memoryMb: number;
  /** Free space under the engine's data root; null when that directory cannot be read from here. */
  readonly freeStorageGb: number | null;
  readonly dockerRootDir: string;
}

const GIB = 1024 ** 3;

/** What the engine's machine has: cores and memory as the engine reports them, free disk under its data root. */
export async function machineFigures(engine: DockerEngine): Promise<MachineFigures> {
  const info = await engine.info();
  let freeStorageGb: number | null = null;
  try {
    const fs = await statfs(info.DockerRootDir);
    freeStorageGb = Math.floor((fs.bavail * fs.bsize) / GIB);
  } catch {
    // The agent runs elsewhere than the engine's files (another container): only --storage-gb can say.
  }
  return { cpuCores: info.NCPU, memoryMb: Math.floor(info.MemTotal / (1024 * 1024)), freeStorageGb, dockerRootDir: info.DockerRootDir };
}

/** The node's capacity: flags where given, else the machine minus the reserves; never below zero. */
export function nodeCapacity(machine: MachineFigures, choice: CapacityChoice): ContainerResources {
  const storageGb = choice.storageGb ?? machine.freeStorageGb;
  if (storageGb === null) {
    throw new Error(`cannot read free disk space under the Docker data root ${machine.dockerRootDir} from here; give the node's storage with --storage-gb`);
  }
  return {
    cpuCores: choice.cpuCores ?? Math.max(0, Math.floor((machine.cpuCores - choice.reserveCpuCores) * 1000) / 1000),
    memoryMb: choice.memoryMb ?? Math.max(0, machine.memoryMb - choice.reserveMemoryMb),
    storageGb,
    gpuUnits: choice.gpuUnits ?? 0,
  };
}
