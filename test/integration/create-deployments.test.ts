import { sql } from 'kysely';
import { beforeAll, expect, it } from 'vitest';
import { createDeployments, type CreateRequest } from '../../src/db/queries/create-deployments.js';
import { ensureUser } from '../../src/db/queries/users.js';
import { ConflictError } from '../../src/domain/errors.js';
import { DEFAULT_STRATEGY } from '../../src/domain/strategy.js';
import { describeBackends } from '../support/databases.js';
import { createTestApp, userToken } from '../support/tokens.js';

const UNKNOWN_USER = '3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab';

describeBackends('creates grouped in one transaction', (t) => {
  let alice: string;
  let bob: string;
  const db = () => t().database.db;
  const request = (userId: string, name: string, replicas = 2): CreateRequest => ({
    userId,
    spec: {
      name,
      targetReplicas: replicas,
      template: { containerImage: 'nginx:1.27', resources: { cpuCores: 1.5, memoryMb: 1024, gpuUnits: 0, storageGb: 5 }, command: null, env: null },
      strategy: DEFAULT_STRATEGY,
    },
  });
  /** Every live deployment of the batch tests with its resources and creation history, by owner and name. */
  const stored = async () => {
    const { rows } = await sql<{ owner: string; name: string; cpu: number; history: number }>`
      SELECT u.subject AS owner, d.name, r.cpu_cores AS cpu,
             (SELECT count(*)::int FROM deployment_status_history h WHERE h.deployment_id = d.id AND h.new_status = 'pending') AS history
      FROM deployments d JOIN users u ON u.id = d.user_id LEFT JOIN deployment_resources r ON r.deployment_id = d.id
      WHERE d.deleted_at IS NULL AND d.name LIKE 'batch-%' ORDER BY owner, name`.execute(db());
    return rows;
  };

  beforeAll(async () => {
    alice = await ensureUser(db(), 'batch-alice', null);
    bob = await ensureUser(db(), 'batch-bob', null);
  });

  it('creates many at once and answers a taken name with 409 alone, as if the creates had run one after the other', async () => {
    const [taken] = await createDeployments(db(), [request(alice, 'batch-taken')]);
    expect(taken?.ok).toBe(true);
    const outcomes = await createDeployments(db(), [
      request(alice, 'batch-a'),
      request(alice, 'batch-taken'),
      request(alice, 'batch-x', 3),
      request(alice, 'batch-x', 5),
      request(bob, 'batch-x'),
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true, false, true]);
    for (const i of [1, 3]) {
      const o = outcomes[i]!;
      expect(!o.ok && o.error).toBeInstanceOf(ConflictError);
    }
    // One transaction wrote all three (no create ran alone after a failed batch).
    const createdIds = outcomes.flatMap((o) => (o.ok ? [o.value] : []));
    const { rows: xmins } = await sql<{ n: number }>`SELECT count(DISTINCT xmin::text)::int AS n FROM deployments WHERE id = ANY(${createdIds}::uuid[])`.execute(db());
    expect(xmins[0]!.n).toBe(1);
    // The first create of batch-x won, with its own spec.
    const xId = outcomes[2]!.ok ? outcomes[2]!.value : '';
    const x = await db().selectFrom('deployments').select(['target_replicas', 'user_id']).where('id', '=', xId).executeTakeFirstOrThrow();
    expect(x).toEqual({ target_replicas: 3, user_id: alice });
    expect(await stored()).toEqual([
      { owner: 'batch-alice', name: 'batch-a', cpu: 1.5, history: 1 },
      { owner: 'batch-alice', name: 'batch-taken', cpu: 1.5, history: 1 },
      { owner: 'batch-alice', name: 'batch-x', cpu: 1.5, history: 1 },
      { owner: 'batch-bob', name: 'batch-x', cpu: 1.5, history: 1 },
    ]);
  });

  it('lets a create that fails for another reason fail alone, and writes nothing of it', async () => {
    const outcomes = await createDeployments(db(), [request(bob, 'batch-b1'), request(UNKNOWN_USER, 'batch-orphan'), request(bob, 'batch-b2')]);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    const failed = outcomes[1]!;
    expect(!failed.ok && (failed.error as { code?: string }).code).toBe('23503');
    const names = (await stored()).filter((r) => r.owner === 'batch-bob').map((r) => [r.name, r.history]);
    expect(names).toEqual([
      ['batch-b1', 1],
      ['batch-b2', 1],
      ['batch-x', 1],
    ]);
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM deployments WHERE name = 'batch-orphan'`.execute(db());
    expect(rows[0]!.n).toBe(0);
  });

  it('answers concurrent API creates each on its own: one 201 per name, 409 for the rest, every body its own deployment', async () => {
    const api = createTestApp(t().database);
    const token = await userToken('batch-api');
    const names = Array.from({ length: 24 }, (_, i) => `batch-api-${i % 8}`);
    const responses = await Promise.all(
      names.map((name, i) =>
        api.call('POST', '/api/deployment/deploy', {
          token,
          body: { name, container_image: 'nginx:1.27', target_replicas: 1 + (i % 3), resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 } },
        }),
      ),
    );
    const created = responses.filter((r) => r.status === 201);
    expect(created).toHaveLength(8);
    expect(responses.filter((r) => r.status === 409)).toHaveLength(16);
    const bodies = (await Promise.all(created.map((r) => r.json()))) as { name: string; deployment_id: string }[];
    expect(bodies.map((b) => b.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `batch-api-${i}`).sort());
    expect(new Set(bodies.map((b) => b.deployment_id)).size).toBe(8);
  });
});
