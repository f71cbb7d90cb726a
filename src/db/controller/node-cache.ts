import { sql, type Transaction } from 'kysely';
import type { Node } from '../../domain/types.js';
import type { Tables } from '../tables.js';
import { NODE_COLUMNS, nodeOf, type NodeRow } from './reconcile-store.js';

/** The fleet as of one read: the nodes, and where each id is in them. */
export interface Fleet {
  readonly nodes: readonly Node[];
  /**
   * The position of each node in `nodes`. Shared with later reads: it may also name nodes added
   * since, at positions past the end of `nodes`, but a position within `nodes` is always right.
   */
  readonly index: ReadonlyMap<string, number>;
}

/** How the last read went: every node read, or only those changed since the read before. */
export interface NodeCacheRead {
  readonly full: boolean;
  readonly rows: number;
}

/**
 * Every node with its capacity and allocation, kept between reads: each read asks the database only
 * for the nodes changed since the one before (migration 0016), and reads them all only the first
 * time and after a node was deleted. At 10,000 nodes a placement batch otherwise read, parsed and
 * threw away 10,000 rows, under the scheduling lock, to use the few hundred its predecessor changed.
 *
 * A read's horizon is the oldest transaction its snapshot could not see (its own included): every
 * change it missed was made by a transaction at or above it, whatever order they commit in.
 * A deletion leaves no row to find, so each read also counts the nodes; when the merged fleet has
 * more, it is read again in full.
 *
 * Reads must not overlap (each merges onto the last): the reconciler reads under the scheduling
 * lock, which serialises them, in transactions that have not yet written to nodes.
 */
export class NodeCache {
  #nodes: Node[] = [];
  #index = new Map<string, number>();
  #horizon: string | null = null;
  #last: NodeCacheRead = { full: true, rows: 0 };

  get lastRead(): NodeCacheRead {
    return this.#last;
  }

  async read(tx: Transaction<Tables>): Promise<Fleet> {
    if (this.#horizon === null || !(await this.#readChanged(tx, this.#horizon))) await this.#readAll(tx);
    return { nodes: [...this.#nodes], index: this.#index };
  }

  /** Merges the nodes changed since `since`; false when nodes were deleted and only a full read will do. */
  async #readChanged(tx: Transaction<Tables>, since: string): Promise<boolean> {
    const { rows } = await sql<Partial<NodeRow> & Horizon & { total: number }>`
      SELECT h.horizon, h.total, ${NODE_COLUMNS}
      FROM (SELECT ${HORIZON} AS horizon, (SELECT count(*) FROM nodes)::int AS total) h
      LEFT JOIN nodes n ON n.changed_xid >= ${since}::xid8`.execute(tx);
    const head = rows[0]!;
    let changed = 0;
    for (const row of rows) {
      if (row.id === null || row.id === undefined) continue;
      changed++;
      const node = nodeOf(row as NodeRow);
      const at = this.#index.get(node.id);
      if (at === undefined) {
        this.#index.set(node.id, this.#nodes.length);
        this.#nodes.push(node);
      } else {
        this.#nodes[at] = node;
      }
    }
    if (this.#nodes.length !== head.total) return false;
    this.#horizon = head.horizon;
    this.#last = { full: false, rows: changed };
    return true;
  }

  async #readAll(tx: Transaction<Tables>): Promise<void> {
    const { rows } = await sql<NodeRow & Horizon>`SELECT ${HORIZON} AS horizon, ${NODE_COLUMNS} FROM nodes n ORDER BY n.id`.execute(tx);
    const horizon = rows[0]?.horizon ?? (await sql<Horizon>`SELECT ${HORIZON} AS horizon`.execute(tx)).rows[0]!.horizon;
    this.#nodes = rows.map(nodeOf);
    this.#index = new Map(this.#nodes.map((n, i) => [n.id, i]));
    this.#horizon = horizon;
    this.#last = { full: true, rows: rows.length };
  }
}

interface Horizon {
  horizon: string;
}

// The oldest transaction still running when the statement's snapshot was taken, this one included.
const HORIZON = sql`pg_snapshot_xmin(pg_current_snapshot())::text`;
