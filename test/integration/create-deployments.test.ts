import { sql, type KyselyPlugin } from 'kysely';
import { beforeAll, expect, it } from 'vitest';
import { createDeployments, type CreateRequest } from '../../src/db/queries/create-deployments.js';
import { deleteDeployment } from '../../src/db/queries/deployment-commands.js';
import { loadDeploymentStatuses, statusKeyOf } from '../../src/db/queries/deployment-status.js';
import type { Template } from '../../src/db/queries/revisions.js';
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
  const request = (userId: string, name: string, replicas = 2, template: Partial<Template> = {}): CreateRequest => ({
    userId,
    spec: {
      name,
      targetReplicas: replicas,
      template: {
        containerImage: 'nginx:1.27',
        resources: { cpuCores: 1.5, memoryMb: 1024, gpuUnits: 0, storageGb: 5 },
        command: null,
        env: null,
        ...template,
      },
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
    const createdIds = outcomes.flatMap((o) => (o.ok ? [o.value.id] : []));
    const { rows: xmins } = await sql<{ n: number }>`SELECT count(DISTINCT xmin::text)::int AS n FROM deployments WHERE id = ANY(${createdIds}::uuid[])`.execute(db());
    expect(xmins[0]!.n).toBe(1);
    // The first create of batch-x won, with its own spec.
    const xId = outcomes[2]!.ok ? outcomes[2]!.value.id : '';
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
          body: {
            name,
            container_image: 'nginx:1.27',
            target_replicas: 1 + (i % 3),
            resources: { cpu_cores: 1.1, memory_mb: 512, storage_gb: 1 },
            command: ['sh', '-c', `echo ${i}`],
            env: { ZED: 'z', A: 'a', LONGER_NAME: `${i}` },
          },
        }),
      ),
    );
    const created = responses.filter((r) => r.status === 201);
    expect(created).toHaveLength(8);
    expect(responses.filter((r) => r.status === 409)).toHaveLength(16);
    const bodies = (await Promise.all(created.map((r) => r.json()))) as { name: string; deployment_id: string }[];
    expect(bodies.map((b) => b.name).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `batch-api-${i}`).sort());
    expect(new Set(bodies.map((b) => b.deployment_id)).size).toBe(8);
    // The answer is the status object a read gives.
    for (const [i, body] of bodies.entries()) {
      expect(created[i]!.headers.get('location')).toBe(`/api/deployment/status/${body.deployment_id}`);
      const status = await api.call('GET', `/api/deployment/status/${body.deployment_id}`, { token });
      expect(await status.json()).toEqual(body);
    }
  });
  /** A deployment as stored, without what differs between any two creates (ids, names, times). */
  const snapshot = async (id: string) => {
    const same = (table: string, where: string, order: string) =>
      sql.raw(`SELECT coalesce(jsonb_agg((SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(x))
                                          WHERE key NOT LIKE '%\\_at' AND key NOT IN ('id', 'name', 'deployment_id')) ORDER BY ${order}), '[]') AS rows
               FROM ${table} x WHERE ${where} = '${id}'`);
    const rows = async (table: string, where: string, order: string) =>
      (await sql<{ rows: unknown[] }>`${same(table, where, order)}`.execute(db())).rows[0]!.rows;
    const { rows: events } = await sql<Record<string, unknown>>`
      SELECT e.kind, e.status, e.target_replicas, e.running_replicas, e.failed_replicas, e.revision, e.rollout_state, e.reason,
             e.updated_replicas, e.available_replicas, h.new_status AS history_status
      FROM steady_events e LEFT JOIN deployment_status_history h ON h.id = e.subject_id AND h.deployment_id = e.deployment_id
      WHERE e.deployment_id = ${id} ORDER BY e.id`.execute(db());
    return {
      deployment: await rows('deployments', 'id', 'x.id'),
      resources: await rows('deployment_resources', 'deployment_id', 'x.id'),
      revisions: await rows('deployment_revisions', 'deployment_id', 'x.revision'),
      history: await rows('deployment_status_history', 'deployment_id', 'x.changed_at'),
      events,
    };
  };

  it('writes each create of a batch exactly as a create on its own: rows, revision, history, events and notifications', async () => {
    const notified: string[] = [];
    const listener = await t().database.listen(['steady_deployment'], { onNotification: (n) => notified.push(n.payload) });
    try {
      const template = { command: ['sh', '-c', 'echo "a, b" {c} \\ d'], env: { QUOTE: 'say "hi"', BRACES: '{x,y}', EMPTY: '' } };
      const [alone] = await createDeployments(db(), [request(alice, 'batch-same-0', 4, template)]);
      const batch = await createDeployments(db(), [
        request(alice, 'batch-same-1', 4, template),
        request(alice, 'batch-same-plain', 1),
        request(alice, 'batch-same-2', 4, template),
      ]);
      const ids = [alone, batch[0], batch[2]].map((o) => (o?.ok ? o.value.id : ''));
      // Each is answered with its status as a read after the commit finds it.
      const answered = [alone, ...batch].map((o) => (o?.ok ? o.value : null));
      const read = await loadDeploymentStatuses(db(), answered.map((r) => ({ userId: alice, id: r?.id ?? '' })));
      expect(read.size).toBe(4);
      for (const r of answered) expect(r).toEqual(read.get(statusKeyOf({ userId: alice, id: r?.id ?? '' }))?.record);
      const [expected, ...others] = await Promise.all(ids.map(snapshot));
      expect(expected!.revisions).toMatchObject([{ revision: 1, template_revision: 1, command: template.command, env: template.env, created_by: alice }]);
      expect(expected!.history).toEqual([{ old_status: 'none', new_status: 'pending', reason: 'Deployment created', changed_by: alice }]);
      expect(expected!.events.map((e) => [e.kind, e.status ?? e.history_status])).toEqual([
        ['deployment', 'pending'],
        ['history', 'pending'],
      ]);
      for (const other of others) expect(other).toEqual(expected);
      const plain = await snapshot(batch[1]!.ok ? batch[1]!.value.id : '');
      expect(plain.revisions).toMatchObject([{ command: null, env: null, memory_mb: 1024 }]);
      // The controller hears of every new deployment.
      for (let i = 0; i < 200 && !ids.every((id) => notified.some((p) => p.includes(id))); i++) await new Promise((r) => setTimeout(r, 50));
      expect(ids.filter((id) => !notified.some((p) => p.includes(id)))).toEqual([]);
    } finally {
      await listener.close();
    }
  });

  it('writes a batch in as many statements as a single create, whatever its size', async () => {
    let statements = 0;
    const counting: KyselyPlugin = {
      transformQuery: (args) => {
        statements++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const counted = db().withPlugin(counting);
    const countFor = async (requests: CreateRequest[]) => {
      statements = 0;
      const outcomes = await createDeployments(counted, requests);
      expect(outcomes.every((o) => o.ok || o.error instanceof ConflictError)).toBe(true);
      return statements;
    };
    const small = await countFor([request(bob, 'batch-count-a'), request(bob, 'batch-count-b')]);
    const large = await countFor([
      ...Array.from({ length: 40 }, (_, i) => request(bob, `batch-count-${i}`)),
      request(bob, 'batch-count-a'),
      request(bob, 'batch-count-3'),
    ]);
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThanOrEqual(4);
    expect(large).toBe(small);
  });

  it('lets a later create of a name win when the earlier one fails for another reason, and frees the names of deleted deployments', async () => {
    const [old] = await createDeployments(db(), [request(bob, 'batch-reuse')]);
    await deleteDeployment(db(), bob, old!.ok ? old!.value.id : '');
    const outcomes = await createDeployments(db(), [
      request(bob, 'batch-second', 1, { containerImage: `nginx:${'x'.repeat(600)}` }),
      request(bob, 'batch-reuse', 7),
      request(bob, 'batch-second', 2),
      request(bob, 'batch-second', 3),
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([false, true, true, false]);
    expect(!outcomes[0]!.ok && (outcomes[0]!.error as { code?: string }).code).toBe('22001');
    expect(!outcomes[3]!.ok && outcomes[3]!.error).toBeInstanceOf(ConflictError);
    const second = await db().selectFrom('deployments').select('target_replicas').where('id', '=', outcomes[2]!.ok ? outcomes[2]!.value.id : '').executeTakeFirstOrThrow();
    expect(second.target_replicas).toBe(2);
    const reused = await db().selectFrom('deployments').select(['target_replicas', 'deleted_at']).where('id', '=', outcomes[1]!.ok ? outcomes[1]!.value.id : '').executeTakeFirstOrThrow();
    expect(reused).toEqual({ target_replicas: 7, deleted_at: null });
  });
});
