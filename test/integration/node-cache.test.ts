import { sql, type Kysely } from 'kysely';
import { expect, it } from 'vitest';
import { NodeCache } from '../../src/db/controller/node-cache.js';
import { loadNodes } from '../../src/db/controller/reconcile-store.js';
import type { Tables } from '../../src/db/tables.js';
import type { Plan } from '../../src/domain/planner.js';
import type { Node } from '../../src/domain/types.js';
import { describeBackends } from '../support/databases.js';
import { insertDeployment, insertNode } from '../support/fixtures.js';

type Db = Kysely<Tables>;

const byId = (nodes: readonly Node[]): Node[] => [...nodes].sort((a, b) => (a.id < b.id ? -1 : 1));

/** A read of the cache in a transaction of its own, as the reconciler makes it; with the nodes as the database has them now. */
const readBoth = async (db: Db, cache: NodeCache) => {
  const fleet = await db.transaction().execute((tx) => cache.read(tx));
  return { cached: byId(fleet.nodes), fresh: byId(await loadNodes(db)), fleet };
};

/** A plan that places one replica holding `memoryMb` on `nodeId`, and nothing else. */
const placing = (nodeId: string, memoryMb: number): Plan => ({
  create: [{ nodeId, revision: 1, resources: { cpuCores: 0, memoryMb, gpuUnits: 0, storageGb: 0 } }],
  createReason: null,
  bind: [],
  stop: [],
  markReplaced: [],
  deployment: {},
  history: [],
  requeueAfterMs: null,
  rollbackTo: null,
  step: null,
});

/** Runs `body` in a transaction of `db` and keeps it open until `commit()`; `written` settles once the body has run. */
const heldOpen = (db: Db, body: (tx: Parameters<NodeCache['read']>[0]) => Promise<void>) => {
  let commit!: () => void;
  const held = new Promise<void>((resolve) => (commit = resolve));
  let written!: () => void;
  const hasWritten = new Promise<void>((resolve) => (written = resolve));
  const done = db.transaction().execute(async (tx) => {
    await body(tx);
    written();
    await held;
  });
  return { written: Promise.race([hasWritten, done]), commit: async () => (commit(), await done) };
};

describeBackends('the node cache', (t) => {
  it('reads every node once, then only those whose placement-relevant columns changed, and again in full after a deletion', async () => {
    const db = t().database.db;
    const cache = new NodeCache();
    const a = await insertNode(db, { name: 'cache-a' });
    const b = await insertNode(db, { name: 'cache-b' });
    await insertNode(db, { name: 'cache-c' });

    let read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(cache.lastRead).toEqual({ full: true, rows: read.fresh.length });
    for (const [id, i] of read.fleet.index) expect(read.fleet.nodes[i]!.id).toBe(id);

    // Nothing changed: nothing read. A heartbeat is no change.
    await sql`UPDATE nodes SET last_heartbeat_at = now(), updated_at = now()`.execute(db);
    read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(cache.lastRead).toEqual({ full: false, rows: 0 });

    // A placement (the allocation trigger), a cordon and a new node: three rows.
    const web = await insertDeployment(db, { cpu: 1.5, memoryMb: 700 });
    await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${web}, ${a}, 'pending', 1)`.execute(db);
    await sql`UPDATE nodes SET status = 'cordoned' WHERE id = ${b}`.execute(db);
    const d = await insertNode(db, { name: 'cache-d' });
    read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(cache.lastRead).toEqual({ full: false, rows: 3 });
    expect(read.cached.find((n) => n.id === a)!.allocated).toMatchObject({ cpuCores: 1.5, memoryMb: 700 });
    expect(read.fleet.nodes[read.fleet.index.get(d)!]!.name).toBe('cache-d');

    // A deletion leaves no row to find: the count tells, and the fleet is read again in full.
    await sql`DELETE FROM nodes WHERE id = ${d}`.execute(db);
    read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(cache.lastRead).toEqual({ full: true, rows: read.fresh.length });
    // A deletion and an insertion between two reads: the count alone would not tell.
    await sql`DELETE FROM nodes WHERE id = ${b}`.execute(db);
    await insertNode(db, { name: 'cache-e' });
    read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(cache.lastRead.full).toBe(true);
  });

  it("finds on its next read what its own transaction changed after reading", async () => {
    const db = t().database.db;
    const cache = new NodeCache();
    const a = await insertNode(db, { name: 'own-a' });
    const web = await insertDeployment(db, { memoryMb: 300 });
    await readBoth(db, cache);
    await db.transaction().execute(async (tx) => {
      // The reconciler's transaction has an id before it reads: it has locked its deployments.
      await sql`SELECT id FROM deployments WHERE id = ${web} FOR UPDATE`.execute(tx);
      await cache.read(tx);
      await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${web}, ${a}, 'pending', 1)`.execute(tx);
    });
    const read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(read.cached.find((n) => n.id === a)!.allocated.memoryMb).toBe(300);
  });

  it('misses no change of a transaction that was running during a read and committed after it', async (ctx) => {
    if (t().backend !== 'postgres') return ctx.skip();
    const db = t().database.db;
    const other = t().openAnother(2).db;
    const cache = new NodeCache();
    const a = await insertNode(db, { name: 'late-a' });
    const b = await insertNode(db, { name: 'late-b' });
    await readBoth(db, cache);

    const late = heldOpen(other, async (tx) => {
      await sql`UPDATE nodes SET memory_mb = 1234 WHERE id = ${a}`.execute(tx);
    });
    await late.written;
    // Read while it runs; then a later transaction commits first, then it.
    let read = await readBoth(db, cache);
    expect(read.cached.find((n) => n.id === a)!.capacity.memoryMb).toBe(8192);
    await sql`UPDATE nodes SET memory_mb = 2345 WHERE id = ${b}`.execute(db);
    read = await readBoth(db, cache);
    expect(read.cached.find((n) => n.id === b)!.capacity.memoryMb).toBe(2345);
    await late.commit();
    read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(read.cached.find((n) => n.id === a)!.capacity.memoryMb).toBe(1234);
  });

  it('equals a fresh read of every node after concurrent writers and reads interleave', async (ctx) => {
    if (t().backend !== 'postgres') return ctx.skip();
    const db = t().database.db;
    const other = t().openAnother(6).db;
    const cache = new NodeCache();
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await insertNode(db, { name: `mix-${i}` }));
    let writing = true;
    const writer = async (seed: number) => {
      for (let i = 0; i < 40; i++) {
        const id = ids[(seed * 7 + i * 5) % ids.length]!;
        await other.transaction().execute(async (tx) => {
          await sql`UPDATE nodes SET memory_mb = memory_mb + 1 WHERE id = ${id}`.execute(tx);
          // Some commit at once, some after the reads have moved on.
          await new Promise((r) => setTimeout(r, (seed + i) % 3 === 0 ? 15 : 0));
        });
      }
    };
    const reads = (async () => {
      let n = 0;
      while (writing) {
        await db.transaction().execute((tx) => cache.read(tx));
        n++;
      }
      return n;
    })();
    await Promise.all([0, 1, 2, 3].map(writer));
    writing = false;
    expect(await reads).toBeGreaterThan(0);
    const read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(read.fresh.filter((n) => ids.includes(n.id)).reduce((sum, n) => sum + n.capacity.memoryMb, 0)).toBe(12 * 8192 + 4 * 40);
  });

  it('adds the placements of a transaction still writing to every read that cannot see it committed, once, and drops them after', async (ctx) => {
    if (t().backend !== 'postgres') return ctx.skip();
    const db = t().database.db;
    const other = t().openAnother(2).db;
    const cache = new NodeCache();
    const a = await insertNode(db, { name: 'assume-a' });
    const web = await insertDeployment(db, { memoryMb: 300 });
    await readBoth(db, cache);

    // The placing transaction: reads, assumes its placement, writes it, and waits to commit.
    const placing300 = heldOpen(other, async (tx) => {
      await sql`SELECT id FROM deployments WHERE id = ${web} FOR UPDATE`.execute(tx);
      const fleet = await cache.read(tx);
      cache.assume(fleet.xid, [placing(a, 300)]);
      await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${web}, ${a}, 'pending', 1)`.execute(tx);
    });
    await placing300.written;
    // Not committed: the database shows nothing yet, the cache adds it.
    let read = await readBoth(db, cache);
    expect(read.fresh.find((n) => n.id === a)!.allocated.memoryMb).toBe(0);
    expect(read.cached.find((n) => n.id === a)!.allocated.memoryMb).toBe(300);
    // Again, and still once.
    read = await readBoth(db, cache);
    expect(read.cached.find((n) => n.id === a)!.allocated.memoryMb).toBe(300);
    await placing300.commit();
    // Committed: the row holds it, and it is not added a second time.
    read = await readBoth(db, cache);
    expect(read.cached).toEqual(read.fresh);
    expect(read.cached.find((n) => n.id === a)!.allocated.memoryMb).toBe(300);
  });

  it('adds nothing for a transaction that rolled back, abandoned or not, and reads every node after one is abandoned', async () => {
    const db = t().database.db;
    const cache = new NodeCache();
    const a = await insertNode(db, { name: 'abandon-a' });
    const web = await insertDeployment(db, { memoryMb: 300 });
    await readBoth(db, cache);
    for (const abandon of [true, false]) {
      let xid = '';
      await expect(
        db.transaction().execute(async (tx) => {
          await sql`SELECT id FROM deployments WHERE id = ${web} FOR UPDATE`.execute(tx);
          xid = (await cache.read(tx)).xid;
          cache.assume(xid, [placing(a, 300)]);
          await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${web}, ${a}, 'pending', 1)`.execute(tx);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      if (abandon) cache.abandon(xid);
      // Not abandoned, a read sees it ended (not running): it is dropped, never added.
      const read = await readBoth(db, cache);
      expect(read.cached).toEqual(read.fresh);
      expect(read.cached.find((n) => n.id === a)!.allocated.memoryMb).toBe(0);
      // After a failure the horizon is not trusted (a crashed server reuses the ids it lost).
      expect(cache.lastRead.full).toBe(abandon);
    }
  });

  it('reads every node again when the server is another (restarted, or a standby promoted)', async () => {
    const db = t().database.db;
    const cache = new NodeCache();
    await insertNode(db, { name: 'server-a' });
    await readBoth(db, cache);
    await readBoth(db, cache);
    expect(cache.lastRead.full).toBe(false);
    // Another start time, as a restarted or promoted server answers: shadowed for one transaction.
    await sql`CREATE SCHEMA IF NOT EXISTS another_server`.execute(db);
    await sql`CREATE OR REPLACE FUNCTION another_server.pg_postmaster_start_time() RETURNS timestamptz LANGUAGE sql AS $$ SELECT timestamptz '2001-01-01' $$`.execute(db);
    await db.transaction().execute(async (tx) => {
      await sql`SET LOCAL search_path = another_server, pg_catalog, public`.execute(tx);
      await cache.read(tx);
    });
    expect(cache.lastRead.full).toBe(true);
    // And back.
    let read = await readBoth(db, cache);
    expect(cache.lastRead.full).toBe(true);
    read = await readBoth(db, cache);
    expect(cache.lastRead.full).toBe(false);
    expect(read.cached).toEqual(read.fresh);
  });
});
