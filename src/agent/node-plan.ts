import type { Assignment, ReportedStatus } from './client.js';
import type { ContainerStatus } from './runtime.js';

/**
 * What one pass of a node agent should do, decided from the heartbeat answer and the runtime's
 * containers alone (level-triggered), plus the agent's memory of what it already told the API.
 */
export type NodeAction =
  /** Report `starting`, start a container, report `running` or `failed`. */
  | { readonly kind: 'start'; readonly assignment: Assignment }
  | { readonly kind: 'report'; readonly replicaId: string; readonly status: 'running' | 'failed'; readonly containerId: string; readonly reason: string | null }
  /** Stop and remove the replica's containers (if any), then report `stopped` when `report`. */
  | { readonly kind: 'stop'; readonly replicaId: string; readonly containerIds: readonly string[]; readonly report: boolean }
  /** Containers of a replica the API no longer assigns to this node: remove them, report nothing. */
  | { readonly kind: 'remove'; readonly replicaId: string; readonly containerIds: readonly string[] };

export interface NodeObservation {
  readonly assignments: readonly Assignment[];
  readonly containers: readonly ContainerStatus[];
  /** The last status this agent got an answer for, per replica (accepted, or refused as outdated). */
  readonly reported: ReadonlyMap<string, ReportedStatus>;
  /** Replicas with an operation in flight; left alone until it ends. */
  readonly busy: ReadonlySet<string>;
}

export interface NodePlan {
  readonly actions: readonly NodeAction[];
  /** Replicas to drop from the agent's memory: the API no longer lists them. */
  readonly forget: readonly string[];
}

const preference: Record<ContainerStatus['state'], number> = { running: 0, starting: 1, failed: 2 };

export function planNodeActions(observation: NodeObservation): NodePlan {
  const { assignments, reported, busy } = observation;
  const containersOf = new Map<string, ContainerStatus[]>();
  for (const c of observation.containers) {
    const list = containersOf.get(c.replicaId) ?? [];
    list.push(c);
    containersOf.set(c.replicaId, list);
  }
  const actions: NodeAction[] = [];
  const assigned = new Set<string>();

  for (const assignment of assignments) {
    const id = assignment.replicaId;
    // A replica listed twice would be started twice; the first entry wins.
    if (assigned.has(id)) continue;
    assigned.add(id);
    if (busy.has(id)) continue;
    const containers = [...(containersOf.get(id) ?? [])].sort((a, b) => preference[a.state] - preference[b.state]);
    const last = reported.get(id);

    if (assignment.desired === 'stop') {
      const report = last !== 'stopped';
      if (containers.length > 0 || report) {
        actions.push({ kind: 'stop', replicaId: id, containerIds: containers.map((c) => c.containerId), report });
      }
      continue;
    }

    const [primary, ...extra] = containers;
    if (extra.length > 0) actions.push({ kind: 'remove', replicaId: id, containerIds: extra.map((c) => c.containerId) });
    if (!primary) {
      // Once reported failed, the controller replaces the replica; starting it again would hide the failure.
      if (last !== 'failed') actions.push({ kind: 'start', assignment });
    } else if (primary.state === 'running' && last !== 'running') {
      actions.push({ kind: 'report', replicaId: id, status: 'running', containerId: primary.containerId, reason: null });
    } else if (primary.state === 'failed' && last !== 'failed') {
      actions.push({
        kind: 'report',
        replicaId: id,
        status: 'failed',
        containerId: primary.containerId,
        reason: primary.reason ?? 'ContainerFailed: the container exited',
      });
    }
  }

  for (const [replicaId, containers] of containersOf) {
    if (assigned.has(replicaId) || busy.has(replicaId)) continue;
    actions.push({ kind: 'remove', replicaId, containerIds: containers.map((c) => c.containerId) });
  }
  const forget = [...reported.keys()].filter((id) => !assigned.has(id) && !busy.has(id));
  return { actions, forget };
}
