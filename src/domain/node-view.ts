import type { Plan } from './planner.js';
import { addResources } from './resources.js';
import type { Node, Resources } from './types.js';

/**
 * The fleet as a sequence of plans leaves it: when several deployments are planned against one read
 * of the nodes, each plan's placements are taken before the next plan is made, so that together
 * they never overcommit a node. Stops free nothing here (a stopping replica holds its node until its
 * agent reports it stopped), which only errs towards less free capacity.
 */
export class NodeView {
  readonly #nodes: Node[];
  readonly #index: ReadonlyMap<string, number>;

  /** `index` gives each node's position in `nodes` (built when not given); positions past the end are ignored. */
  constructor(nodes: readonly Node[], index?: ReadonlyMap<string, number>) {
    this.#nodes = [...nodes];
    this.#index = index ?? new Map(nodes.map((n, i) => [n.id, i]));
  }

  get nodes(): readonly Node[] {
    return this.#nodes;
  }

  /** Adds to each node's allocation what every replica the plan places on it holds. */
  take(plan: Plan): void {
    const place = (nodeId: string, need: Resources): void => {
      const i = this.#index.get(nodeId);
      const node = i === undefined ? undefined : this.#nodes[i];
      if (i === undefined || node === undefined) return;
      this.#nodes[i] = { ...node, allocated: addResources(node.allocated, need) };
    };
    for (const b of plan.bind) place(b.nodeId, b.resources);
    for (const c of plan.create) if (c.nodeId !== null) place(c.nodeId, c.resources);
  }
}
