import { Api, mapLimit, until } from '../lib/api.js';
import { insertNodes, startAgents, startApi, startController, type BenchEnv } from '../lib/cluster.js';
import { databaseCounters } from '../lib/postgres.js';
import type { Figure } from '../lib/report.js';

const STORM_DB = 'bench_storm';

/**
 * A rollout storm: D deployments × 10 replicas (default strategy: surge and unavailable 25 %) change
 * their image at once, agents marking replicas running as soon as they are placed. Timed from the
 * first PATCH until every active replica runs its deployment's desired revision and every rollout is
 * complete. The baseline, in the same run on the same server and processes: the cold start of the
 * same D × 10 replicas (from the first create until every replica runs).
 */
export async function rolloutStorm(env: BenchEnv): Promise<Figure[]> {
  const deployments = env.quick ? 100 : 1_000;
  const nodes = env.quick ? 10 : 100;
  const replicas = deployments * 10;
  const pool = await env.pg.createDatabase(STORM_DB);
  const api = await startApi(env, STORM_DB);
  const controller = await startController(env, STORM_DB, 'rollout-storm');
  await controller.proc.waitForLine(/became the leader/, 30_000);
  await insertNodes(pool, nodes);
  const agents = startAgents(pool, 50);
  const timeoutMs = env.quick ? 300_000 : 1_800_000;
  try {
    const users = await Promise.all(Array.from({ length: 10 }, (_, i) => Api.as(api.url, env.secret, `storm-user-${i}`)));
    await Promise.all(users.map((u) => u.ok('GET', '/api/deployment/list')));
    const count = async (sql: string): Promise<number> => (await pool.query<{ n: number }>(sql)).rows[0]!.n;

    env.log(`rollout storm: cold start of ${deployments} deployments × 10`);
    const counters0 = await databaseCounters(pool);
    const coldStarted = performance.now();
    const ids = await mapLimit(Array.from({ length: deployments }, (_, i) => i), 32, (i) => users[i % users.length]!.deploy(`storm-${i}`, 10));
    await until(async () => (await count(`SELECT count(*)::int AS n FROM deployment_replicas WHERE status = 'running'`)) === replicas, timeoutMs, 200, 'every replica running');
    const coldSec = (performance.now() - coldStarted) / 1000;
    await until(async () => (await count(`SELECT count(*)::int AS n FROM deployments WHERE rollout_state <> 'complete'`)) === 0, timeoutMs, 200, 'first rollouts complete');

    env.log(`rollout storm: ${deployments} deployments change image at once`);
    const stormStarted = performance.now();
    await mapLimit(ids, 32, (id, i) => users[i % users.length]!.ok('PATCH', `/api/deployment/${id}`, { container_image: 'nginx:1.28' }));
    const patchedSec = (performance.now() - stormStarted) / 1000;
    await until(
      async () =>
        (await count(`SELECT count(*)::int AS n FROM deployment_replicas r JOIN deployments d ON d.id = r.deployment_id
                      WHERE r.status = 'running' AND r.revision = d.revision`)) === replicas &&
        (await count(`SELECT count(*)::int AS n FROM deployments WHERE rollout_state <> 'complete'`)) === 0,
      timeoutMs,
      200,
      'every replica on the new revision',
    );
    const stormSec = (performance.now() - stormStarted) / 1000;
    const counters1 = await databaseCounters(pool);
    const metrics = await (await fetch(`${controller.url}/metrics`)).text();
    const reconciles = (outcome: string) =>
      metrics.split('\n').filter((l) => l.startsWith(`steady_reconciles_total{outcome="${outcome}"`)).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const scenario = `Rollout storm (${deployments} × 10)${env.label}`;
    return [
      {
        scenario,
        metric: 'every replica running the new revision',
        value: stormSec,
        unit: 's',
        baseline: { name: `cold start of the same ${replicas} replicas`, value: coldSec, unit: 's' },
        ratio: stormSec / coldSec,
        note: `ratio = storm / cold start (lower is better); ${deployments} PATCHes took ${patchedSec.toFixed(1)} s`,
      },
      {
        scenario,
        metric: 'deadlocks detected, cold start and storm (pg_stat_database)',
        value: counters1.deadlocks - counters0.deadlocks,
        unit: '',
        note: `${counters1.xactRollback - counters0.xactRollback} rollbacks (agents included); each deadlock costs deadlock_timeout = 1 s; reconciles: ${reconciles('changed')} changed, ${reconciles('unchanged')} unchanged, ${reconciles('error')} failed`,
      },
    ];
  } finally {
    await agents.stop();
    await controller.proc.stop();
    await api.proc.stop();
    await pool.end();
  }
}
