import { isActive } from './types.js';
import type { Replica, ReplicaStatus } from './types.js';

const STATUS_RANK: Readonly<Partial<Record<ReplicaStatus, number>>> = { pending: 0, starting: 1, running: 2 };

/**
 * Chooses `count` active replicas to stop: unscheduled first, then pending < starting < running,
 * then the node holding the most active replicas of this deployment, then newest, then id.
 * Node counts are updated after each pick, so victims come off the fullest nodes in turn and
 * the survivors stay spread.
 */
export const pickVictims = (replicas: readonly Replica[], count: number): Replica[] => {
  const remaining = replicas.filter((r) => isActive(r.status));
  const perNode = new Map<string, number>();
  for (const r of remaining) if (r.nodeId !== null) perNode.set(r.nodeId, (perNode.get(r.nodeId) ?? 0) + 1);

  const onNode = (r: Replica): number => (r.nodeId === null ? 0 : (perNode.get(r.nodeId) ?? 0));
  const compare = (a: Replica, b: Replica): number =>
    Number(a.nodeId !== null) - Number(b.nodeId !== null) ||
    (STATUS_RANK[a.status] ?? 0) - (STATUS_RANK[b.status] ?? 0) ||
    onNode(b) - onNode(a) ||
    b.createdAt.getTime() - a.createdAt.getTime() ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  const victims: Replica[] = [];
  while (victims.length < count && remaining.length > 0) {
    let best = 0;
    for (let i = 1; i < remaining.length; i++) if (compare(remaining[i]!, remaining[best]!) < 0) best = i;
    const [victim] = remaining.splice(best, 1);
    victims.push(victim!);
    if (victim!.nodeId !== null) perNode.set(victim!.nodeId, onNode(victim!) - 1);
  }
  return victims;
};
