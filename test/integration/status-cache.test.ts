import { sql } from 'kysely';
import { beforeEach, expect, it } from 'vitest';
import { StatusCache } from '../../src/api/status-cache.js';
import { loadDeploymentStatuses, statusKeyOf, type StatusKey } from '../../src/db/queries/deployment-status.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { until } from '../support/patience.js';
import { describeBackends } from '../support/databases.js';
import { insertDeployment, insertNode, insertUser, softDelete } from '../support/fixtures.js';

/**
 * A status read answered from the cache must equal a read from scratch at the same moment, whatever
 * changed in between: each change below is made the way no API call of this process would see it
 * (straight SQL), then the cached read is compared with a fresh one.
 */
describeBackends('status reads kept with their version', (t) => {
  const db = () => t().database.db;
  let cache: StatusCache;
  let metrics: Metrics;
  let key: StatusKey;
  let nodeId: string;

  const fresh = async (k: StatusKey = key) => (await loadDeploymentStatuses(db(), [k])).get(statusKeyOf(k))?.record;
  /** The cached answer equals a fresh read; `built` says whether the cache had to read it whole. */
  const expectFresh = async (built: boolean) => {
    const before = await answered();
    const answer = await cache.get(key);
    expect(answer).toBeDefined();
    expect(answer).toEqual(await fresh());
    const after = await answered();
    expect(after.built - before.built).toBe(built ? 1 : 0);
    expect(after.kept - before.kept).toBe(built ? 0 : 1);
  };
  /** steady_status_reads_total by answer. */
  const answered = async () => {
    const { values } = await metrics.statusReads.get();
    const of = (answer: string) => values.find((v) => v.labels.answer === answer)?.value ?? 0;
    return { kept: of('kept'), built: of('built') };
  };
  const replicas = async () =>
    (await sql<{ id: string }>`SELECT id FROM deployment_replicas WHERE deployment_id = ${key.id} ORDER BY created_at, id`.execute(db())).rows.map((r) => r.id);

  beforeEach(async () => {
    metrics = createMetrics({ defaultMetrics: false });
    cache = new StatusCache(db(), { metric: metrics.statusReads });
    const userId = await insertUser(db());
    const id = await insertDeployment(db(), { userId, target: 3, cpu: 0.5, memoryMb: 256 });
    key = { userId, id };
    nodeId = await insertNode(db());
    await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, container_id, started_at, revision)
              SELECT ${id}, ${nodeId}, 'running', 'c-' || i, now() - interval '1 minute', 1 FROM generate_series(1, 3) i`.execute(db());
    await expectFresh(true);
    await expectFresh(false);
  });

  it('reads whole again after any change to the replicas, the deployment, its resources, history or revisions', async () => {
    const [first, second] = await replicas();
    await sql`UPDATE deployment_replicas SET status = 'stopping', updated_at = now() WHERE id = ${first}`.execute(db());
    await expectFresh(true);
    await expectFresh(false);
    // A field that no count shows: only the replica list does.
    await sql`UPDATE deployment_replicas SET container_id = 'c-other' WHERE id = ${second}`.execute(db());
    await expectFresh(true);
    await sql`INSERT INTO deployment_replicas (deployment_id, status, revision) VALUES (${key.id}, 'pending', 1)`.execute(db());
    await expectFresh(true);
    await sql`DELETE FROM deployment_replicas WHERE id = ${first}`.execute(db());
    await expectFresh(true);
    await sql`INSERT INTO deployment_status_history (deployment_id, old_status, new_status, reason)
              VALUES (${key.id}, 'pending', 'running', 'written alone')`.execute(db());
    await expectFresh(true);
    await sql`UPDATE deployments SET rollout_reason = 'changed by hand' WHERE id = ${key.id}`.execute(db());
    await expectFresh(true);
    await sql`UPDATE deployment_resources SET storage_gb = 7 WHERE deployment_id = ${key.id}`.execute(db());
    await expectFresh(true);
    await expectFresh(false);
  });

  it('reads whole again when another revision comes to share the desired template', async () => {
    // Revision 2, another template, with a running replica: not counted as updated to revision 1's.
    await sql`INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb)
              VALUES (${key.id}, 2, 2, 'nginx:1.28', 0.5, 256, 0, 1)`.execute(db());
    await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, started_at, revision)
              VALUES (${key.id}, ${nodeId}, 'running', now() - interval '1 minute', 2)`.execute(db());
    await expectFresh(true);
    const updated = (await fresh())!.rollout.updatedReplicas;
    await sql`UPDATE deployment_revisions SET template_revision = 1 WHERE deployment_id = ${key.id} AND revision = 2`.execute(db());
    expect((await fresh())!.rollout.updatedReplicas).toBe(updated + 1);
    await expectFresh(true);
  });

  it('reads whole again when a node goes (its replicas lose their node)', async () => {
    await sql`DELETE FROM nodes WHERE id = ${nodeId}`.execute(db());
    await expectFresh(true);
    expect((await cache.get(key))!.replicas.every((r) => r.nodeId === null && r.nodeName === null)).toBe(true);
  });

  it('reads whole again once a running replica has been running for min_ready_seconds', async () => {
    await sql`UPDATE deployments SET strategy = jsonb_build_object('min_ready_seconds', 1) WHERE id = ${key.id}`.execute(db());
    await sql`INSERT INTO deployment_replicas (deployment_id, node_id, status, started_at, revision)
              VALUES (${key.id}, ${nodeId}, 'running', now(), 1)`.execute(db());
    await expectFresh(true);
    const available = (await cache.get(key))!.rollout.availableReplicas;
    // Nothing is written: only time passes.
    await until('the replica is available', async () => (await fresh())!.rollout.availableReplicas === available + 1);
    expect((await cache.get(key))!.rollout.availableReplicas).toBe(available + 1);
    await expectFresh(false);
  });

  it('answers nothing for a deployment deleted since, or another user’s', async () => {
    const other = { userId: await insertUser(db()), id: key.id };
    expect(await cache.get(other)).toBeUndefined();
    await softDelete(db(), key.id);
    expect(await cache.get(key)).toBeUndefined();
    expect(await fresh()).toBeUndefined();
  });

  it('shares statements among reads that arrive together, each answered with its own deployment', async () => {
    const ids = [key.id];
    for (let i = 0; i < 4; i++) ids.push(await insertDeployment(db(), { userId: key.userId, name: `together-${i}` }));
    const answers = await Promise.all(ids.map((id) => cache.get({ userId: key.userId, id })));
    expect(answers.map((a) => a?.id)).toEqual(ids);
    for (const [i, id] of ids.entries()) expect(answers[i]).toEqual(await fresh({ userId: key.userId, id }));
  });
});
