import { ValidationError } from '../domain/errors.js';
import { strategyIssues } from '../domain/strategy.js';
import type { Resources, Strategy } from '../domain/types.js';

/** Request bodies → domain values, for what the schemas cannot check alone. */

export const resourcesOf = (r: { cpu_cores: number; memory_mb: number; gpu_units: number; storage_gb: number }): Resources => ({
  cpuCores: r.cpu_cores,
  memoryMb: r.memory_mb,
  gpuUnits: r.gpu_units,
  storageGb: r.storage_gb,
});

export const partialResources = (r: { cpu_cores?: number; memory_mb?: number; gpu_units?: number; storage_gb?: number }): Partial<Resources> => ({
  ...(r.cpu_cores !== undefined && { cpuCores: r.cpu_cores }),
  ...(r.memory_mb !== undefined && { memoryMb: r.memory_mb }),
  ...(r.gpu_units !== undefined && { gpuUnits: r.gpu_units }),
  ...(r.storage_gb !== undefined && { storageGb: r.storage_gb }),
});

export function checkStrategy(strategy: Strategy): void {
  const issues = strategyIssues(strategy);
  if (issues.length > 0) throw new ValidationError('invalid strategy', issues);
}
