import { nodeFreeCapacity, RESOURCE_KEYS } from '../domain/resources.js';
import type { Node } from '../domain/types.js';

/**
 * Whether any node can take more than when last asked: a node appeared or became ready, or a ready
 * node has more of some resource free. Waiting replicas are worth another look only then; asking on
 * every notification would re-queue every unschedulable deployment each second and crowd out real work.
 */
export class CapacityWatch {
  private last = new Map<string, Node>();

  grew(nodes: readonly Node[]): boolean {
    let grew = false;
    for (const node of nodes) {
      if (node.status !== 'ready') continue;
      const before = this.last.get(node.id);
      if (!before || before.status !== 'ready') {
        grew = true;
        continue;
      }
      const now = nodeFreeCapacity(node);
      const then = nodeFreeCapacity(before);
      if (RESOURCE_KEYS.some((key) => now[key] > then[key])) grew = true;
    }
    this.last = new Map(nodes.map((n) => [n.id, n]));
    return grew;
  }
}
