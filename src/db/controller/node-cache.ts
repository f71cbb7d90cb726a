import { sql, type Transaction } from 'kysely';
import { NodeView } from '../../domain/node-view.js';
import type { Plan } from '../../domain/planner.js';
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
  /** The reading transaction's id: what `assume` and `abandon` name its placements by. */
  readonly xid: string;
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
 * threw away 10,000 rows, to use the few hundred its predecessor changed.
 *
 * A read's horizon is the oldest transaction its snapshot could not see (its own included): every
 * change it missed was made by a transaction at or above it, whatever order they commit in.
 * A deletion leaves no row to find, so each read also counts the nodes; when the merged fleet has
 * more, it is read again in full.
 *
 * Placements this process planned are assumed (as kube-scheduler assumes a pod bound before its
 * binding is written): `assume` records them under their transaction's id, and every later read
 * whose snapshot cannot see that transaction committed adds them to the nodes it returns; the first
 * read that can see it drops them (the rows then hold them). So a batch may plan while the batches
 * before it are still writing and committing, and still never plan on room they took. A transaction
 * that failed is abandoned.
 *
 * Reads must not overlap (each merges onto the last), and a read's placements must be assumed before
 * the next read: the reconciler reads, plans and assumes under one in-process lock, in transactions
 * that have not yet written to nodes.
 */
export class NodeCache {
  #nodes: Node[] = [];
  #index = new Map<string, number>();
  #horizon: bigint | null = null;
  #server = '';
  #last: NodeCacheRead = { full: true, rows: 0 };
  readonly #inFlight = new Map<string, readonly Plan[]>();

  get lastRead(): NodeCacheRead {
    return this.#last;
  }

  async read(tx: Transaction<Tables>): Promise<Fleet> {
    let head = this.#horizon === null ? null : await this.#readChanged(tx, this.#horizon);
    // Another server (a promoted standby, a restart) may not have every transaction this one had.
    if (head !== null && head.server !== this.#server) head = null;
    head ??= await this.#readAll(tx);
    this.#server = head.server;
    const snapshot = parseSnapshot(head.snapshot);
    this.#horizon = snapshot.xmin;
    const view = new NodeView(this.#nodes, this.#index);
    for (const [xid, plans] of this.#inFlight) {
      if (xid === head.xid) continue;
      if (committedIn(snapshot, BigInt(xid))) {
        this.#inFlight.delete(xid);
        continue;
      }
      for (const plan of plans) view.take(plan);
    }
    return { nodes: view.nodes, index: this.#index, xid: head.xid };
  }

  /** The placements transaction `xid` is writing: later reads that cannot see it committed add them. */
  assume(xid: string, plans: readonly Plan[]): void {
    if (plans.some((p) => p.bind.length > 0 || p.create.some((c) => c.nodeId !== null))) this.#inFlight.set(xid, plans);
  }

  /**
   * Transaction `xid` failed (rolled back, or its commit's outcome unknown): its placements were
   * never made, or a read that sees them committed finds them in the rows. The next read reads every
   * node: the horizon may come from this transaction's snapshot, and a server that crashed or failed
   * over hands out again the ids of transactions it had not made durable, so changes made after it
   * came back could carry ids below the horizon and never be read.
   */
  abandon(xid: string | null): void {
    if (xid !== null) this.#inFlight.delete(xid);
    this.#horizon = null;
  }

  /** Merges the nodes changed since `since`; null when nodes were deleted and only a full read will do. */
  async #readChanged(tx: Transaction<Tables>, since: bigint): Promise<Head | null> {
    const { rows } = await sql<Partial<NodeRow> & Head & { total: number }>`
      SELECT h.snapshot, h.xid, h.server, h.total, ${NODE_COLUMNS}
      FROM (SELECT ${HEAD}, (SELECT count(*) FROM nodes)::int AS total) h
      LEFT JOIN nodes n ON n.changed_xid >= ${since.toString()}::xid8`.execute(tx);
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
    if (this.#nodes.length !== head.total) return null;
    this.#last = { full: false, rows: changed };
    return head;
  }

  async #readAll(tx: Transaction<Tables>): Promise<Head> {
    const { rows } = await sql<NodeRow & Head>`SELECT ${HEAD}, ${NODE_COLUMNS} FROM nodes n ORDER BY n.id`.execute(tx);
    const head = rows[0] ?? (await sql<Head>`SELECT ${HEAD}`.execute(tx)).rows[0]!;
    this.#nodes = rows.map(nodeOf);
    this.#index = new Map(this.#nodes.map((n, i) => [n.id, i]));
    this.#last = { full: true, rows: rows.length };
    return head;
  }
}

interface Head {
  snapshot: string;
  xid: string;
  server: string;
}

// The statement's snapshot (which transactions it sees committed), the reading transaction's id, and
// when the server started: a restarted or promoted server may have lost transactions this cache saw.
const HEAD = sql`pg_current_snapshot()::text AS snapshot, pg_current_xact_id()::text AS xid, pg_postmaster_start_time()::text AS server`;

interface Snapshot {
  /** Every transaction below it had ended when the snapshot was taken. */
  readonly xmin: bigint;
  /** No transaction at or above it had ended. */
  readonly xmax: bigint;
  /** The transactions between the two still running. */
  readonly running: ReadonlySet<bigint>;
}

/** `xmin:xmax:xip,…`, as pg_snapshot prints. */
export function parseSnapshot(text: string): Snapshot {
  const [xmin, xmax, xip] = text.split(':');
  return { xmin: BigInt(xmin!), xmax: BigInt(xmax!), running: new Set(xip ? xip.split(',').map((x) => BigInt(x)) : []) };
}

/** Whether a read with this snapshot sees what transaction `xid` wrote (when it committed). */
export const committedIn = (s: Snapshot, xid: bigint): boolean => xid < s.xmin || (xid < s.xmax && !s.running.has(xid));
