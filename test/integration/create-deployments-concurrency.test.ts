import { sql, type Kysely } from 'kysely';
import { beforeAll, expect, it } from 'vitest';
import { createDeployments, type CreateRequest } from '../../src/db/queries/create-deployments.js';
import type { DeploymentStatusRecord } from '../../src/db/queries/deployment-status.js';
import { ensureUser } from '../../src/db/queries/users.js';
import type { Tables } from '../../src/db/tables.js';
import { ConflictError } from '../../src/domain/errors.js';
import { DEFAULT_STRATEGY } from '../../src/domain/strategy.js';
import { Batcher } from '../../src/lib/batcher.js';
import { describeBackends } from '../support/databases.js';

/**
 * Two API processes (two pools on PostgreSQL; two batchers on PGlite's one session) creating the same
 * names at once, in opposite orders: every name is created once, every other create of it is 409, and
 * no batch deadlocks (a deadlock would roll a batch back and run its creates one by one: each batch
 * below must have written its creations in one transaction).
 */
describeBackends('concurrent batches of creates', (t, backend) => {
  let users: string[];
  const request = (userId: string, name: string): CreateRequest => ({
    userId,
    spec: {
      name,
      targetReplicas: 1,
      template: { containerImage: 'nginx:1.27', resources: { cpuCores: 0.5, memoryMb: 256, gpuUnits: 0, storageGb: 1 }, command: null, env: null },
      strategy: DEFAULT_STRATEGY,
    },
  });

  beforeAll(async () => {
    users = [await ensureUser(t().database.db, 'race-a', null), await ensureUser(t().database.db, 'race-b', null)];
  });

  it('creates each name once across two processes batching the same names in opposite orders, without a deadlock', async () => {
    const other = backend === 'postgres' ? t().openAnother() : t().database;
    const processes: Kysely<Tables>[] = [t().database.db, other.db];
    const rounds = 6;
    for (let round = 0; round < rounds; round++) {
      const names = users.flatMap((u) => Array.from({ length: 60 }, (_, i) => request(u, `race-${round}-${i}`)));
      // Each process also creates names of its own: a batch that deadlocked and ran its creates alone would show.
      const own = (p: number) => users.map((u) => request(u, `race-${round}-own-${p}`));
      const orders = [[...names, ...own(0)], [...own(1), ...names].reverse()];
      const batches: string[][] = [];
      const batchers = processes.map(
        (db) =>
          new Batcher<CreateRequest, DeploymentStatusRecord>(async (requests) => {
            const outcomes = await createDeployments(db, requests);
            batches.push(outcomes.flatMap((o) => (o.ok ? [o.value.id] : [])));
            return outcomes;
          }, 200),
      );
      const settled = await Promise.all(orders.map((order, p) => Promise.allSettled(order.map((r) => batchers[p]!.submit(r)))));
      const created = settled.flat().flatMap((s) => (s.status === 'fulfilled' ? [s.value.id] : []));
      const failures = settled.flat().flatMap((s) => (s.status === 'rejected' ? [s.reason] : []));
      expect(failures.filter((e) => !(e instanceof ConflictError))).toEqual([]);
      expect(created).toHaveLength(names.length + 2 * users.length);
      const { rows } = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM deployments WHERE deleted_at IS NULL AND name LIKE ${`race-${round}-%`}`.execute(t().database.db);
      expect(rows[0]!.n).toBe(names.length + 2 * users.length);
      for (const ids of batches.filter((b) => b.length > 1)) {
        const { rows: xacts } = await sql<{ n: number }>`
          SELECT count(DISTINCT xmin::text)::int AS n FROM deployments WHERE id = ANY(${ids}::uuid[])`.execute(t().database.db);
        expect(xacts[0]!.n).toBe(1);
      }
    }
  });
});
