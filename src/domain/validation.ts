import type { ReplicaStatus } from './types.js';

/** The seed's validation ranges (Pydantic schemas of the original), one place for API and tests. */
export const DEPLOYMENT_LIMITS = Object.freeze({
  name: { min: 1, max: 100, pattern: /^[A-Za-z0-9_-]+$/ },
  containerImage: { min: 1, max: 500, pattern: /^[^\s\p{Cc}]+$/u },
  targetReplicas: { min: 1, max: 100 },
  cpuCores: { min: 0.5, max: 32 },
  memoryMb: { min: 512, max: 65_536 },
  gpuUnits: { min: 0, max: 8 },
  storageGb: { min: 1, max: 1_000 },
});

/** The rest of a template, and the strategy (DESIGN.md sections 3 and 6). Sizes are UTF-8 bytes. */
export const TEMPLATE_LIMITS = Object.freeze({
  command: { maxItems: 64, maxBytes: 4_096 },
  env: { maxEntries: 128, namePattern: /^[A-Za-z_][A-Za-z0-9_]*$/, nameMax: 256, valueMaxBytes: 4_096 },
});

/**
 * A template's `command` and `env` as stored and compared: an empty one means what null means (the
 * image's command, no variables), as in Kubernetes, so `[]` or `{}` never makes a revision of its own.
 */
export const commandOrNull = (command: readonly string[] | null | undefined): readonly string[] | null =>
  command == null || command.length === 0 ? null : command;
export const envOrNull = (env: Readonly<Record<string, string>> | null | undefined): Readonly<Record<string, string>> | null =>
  env == null || Object.keys(env).length === 0 ? null : env;

export const STRATEGY_LIMITS = Object.freeze({
  /** max_surge and max_unavailable: a count, or a percentage of the target. */
  count: { min: 0, max: 100 },
  percent: /^(100|[1-9]?[0-9])%$/,
  minReadySeconds: { min: 0, max: 3_600 },
  progressDeadlineSeconds: { min: 1, max: 86_400 },
});

/**
 * Node registration. Capacities are bounded far above any real machine so a typo cannot register a
 * node that swallows every deployment; labels are bounded like Kubernetes' (63-char keys and values).
 */
export const NODE_LIMITS = Object.freeze({
  name: { min: 1, max: 100, pattern: /^[A-Za-z0-9_.-]+$/ },
  cpuCores: { min: 0, max: 1_024 },
  memoryMb: { min: 0, max: 16_777_216 },
  gpuUnits: { min: 0, max: 64 },
  storageGb: { min: 0, max: 1_000_000 },
  labels: { maxEntries: 64, keyPattern: /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/, valueMax: 63, valuePattern: /^[^\p{Cc}]*$/u },
});

export const REPLICA_REPORT_LIMITS = Object.freeze({
  containerId: { min: 1, max: 255, pattern: /^[^\s\p{Cc}]+$/u },
  reason: { max: 500 },
});

/** What a node agent may report about a replica, from the state the database holds. */
const LEGAL_REPORTS: Readonly<Record<ReplicaStatus, readonly ReplicaStatus[]>> = {
  pending: ['starting', 'running', 'failed'],
  starting: ['running', 'failed'],
  running: ['failed'],
  stopping: ['stopped', 'failed'],
  stopped: [],
  failed: [],
};

export type ReplicaReportCheck =
  | { readonly kind: 'apply' }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'illegal'; readonly reason: string };

/**
 * Whether a node's report `from → to` may be applied. Reporting the current status again is an
 * idempotent no-op (agents retry); everything else not in the table is illegal, with the reason.
 */
export function checkReplicaReport(from: ReplicaStatus, to: ReplicaStatus): ReplicaReportCheck {
  if (from === to) return { kind: 'unchanged' };
  if (LEGAL_REPORTS[from].includes(to)) return { kind: 'apply' };
  const allowed = LEGAL_REPORTS[from];
  return {
    kind: 'illegal',
    reason:
      allowed.length === 0
        ? `replica is ${from}, which is final; it cannot become ${to}`
        : `replica is ${from}; it may become ${allowed.join(' or ')}, not ${to}`,
  };
}
