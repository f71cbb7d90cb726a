import type { Node, Resources } from './types.js';

export const RESOURCE_KEYS = ['cpuCores', 'memoryMb', 'gpuUnits', 'storageGb'] as const;
export type ResourceKey = (typeof RESOURCE_KEYS)[number];

export const ZERO_RESOURCES: Resources = Object.freeze({ cpuCores: 0, memoryMb: 0, gpuUnits: 0, storageGb: 0 });

// Fractional cores accumulate binary float error (0.1 + 0.2 > 0.3); rounding every sum to a
// millionth keeps fits() exact and makes sums independent of the order they were taken in.
const round = (x: number): number => Math.round(x * 1e6) / 1e6;

const combine = (a: Resources, b: Resources, sign: 1 | -1): Resources => ({
  cpuCores: round(a.cpuCores + sign * b.cpuCores),
  memoryMb: round(a.memoryMb + sign * b.memoryMb),
  gpuUnits: round(a.gpuUnits + sign * b.gpuUnits),
  storageGb: round(a.storageGb + sign * b.storageGb),
});

export const addResources = (a: Resources, b: Resources): Resources => combine(a, b, 1);
export const subtractResources = (a: Resources, b: Resources): Resources => combine(a, b, -1);

/** The first resource (in RESOURCE_KEYS order) that `free` does not cover, or null if `need` fits. */
export const firstShortfall = (free: Resources, need: Resources): ResourceKey | null =>
  RESOURCE_KEYS.find((k) => free[k] < need[k]) ?? null;

export const fits = (free: Resources, need: Resources): boolean => firstShortfall(free, need) === null;

export const nodeFreeCapacity = (node: Node): Resources => subtractResources(node.capacity, node.allocated);

/** Mean fraction allocated over the resources the node has at all; lower means emptier (for spreading). */
export const allocatedFraction = (allocated: Resources, capacity: Resources): number => {
  const present = RESOURCE_KEYS.filter((k) => capacity[k] > 0);
  if (present.length === 0) return 1;
  return present.reduce((sum, k) => sum + allocated[k] / capacity[k], 0) / present.length;
};
