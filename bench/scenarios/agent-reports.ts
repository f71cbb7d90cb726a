import { Api, mapLimit, sleep } from '../lib/api.js';
import { insertNodes, placedReplicas, startApi, startController, type BenchEnv } from '../lib/cluster.js';
import type { Figure } from '../lib/report.js';
import { LatencyHistogram } from '../lib/stats.js';

/**
 * Agents reporting through the API, as real node agents do (`POST /api/replicas/{id}/status`, one
 * replica per request, a node token each): D deployments × 2 replicas placed on 200 nodes, then 32
 * agents at once report every replica `starting`, then every one `running`, while the controller
 * follows each report. Every report is a durable transaction of its own, the most numerous writes
 * of a cluster. Timed per pass; then until the controller has every deployment `running`.
 * Baseline: pgbench TPC-B with as many clients, on the same server.
 */
export async function agentReports(env: BenchEnv): Promise<Figure[]> {
  const deployments = env.quick ? 250 : 1_000;
  const clients = 32;
  const database = 'bench_reports';
  const pool = await env.pg.createDatabase(database);
  const bench = await env.baselines.pgbench(clients);
  const api = await startApi(env, database);
  await insertNodes(pool, 200);
  const controller = await startController(env, database, 'reports');
  try {
    const user = await Api.as(api.url, env.secret, 'reports-user');
    await mapLimit(Array.from({ length: deployments }, (_, i) => i), 8, (i) => user.deploy(`reports-${i}`, 2));
    while ((await placedReplicas(pool)) < deployments * 2) await sleep(100);
    const { rows } = await pool.query<{ id: string; node: string }>(
      `SELECT r.id, n.name AS node FROM deployment_replicas r JOIN nodes n ON n.id = r.node_id ORDER BY random()`,
    );
    const agents = new Map<string, Api>();
    for (const r of rows) if (!agents.has(r.node)) agents.set(r.node, await Api.as(api.url, env.secret, r.node, ['node']));
    const figures: Figure[] = [];
    const baseline = { name: `pgbench TPC-B -c ${clients}`, value: bench.tps, unit: 'tps' };
    for (const status of ['starting', 'running'] as const) {
      env.log(`agent reports: ${rows.length} replicas reported ${status} by ${clients} agents at once`);
      const latency = new LatencyHistogram();
      const t0 = performance.now();
      await mapLimit(rows, clients, async (r) => {
        const t = performance.now();
        await agents.get(r.node)!.ok('POST', `/api/replicas/${r.id}/status`, { status });
        latency.recordMs(performance.now() - t);
      });
      const perSecond = rows.length / ((performance.now() - t0) / 1000);
      const p = latency.summary();
      figures.push({
        scenario: 'Agent reports',
        metric: `reports per second, ${status} (${clients} agents at once, ${deployments}×2 replicas)`,
        value: perSecond,
        unit: '/s',
        baseline,
        ratio: perSecond / bench.tps,
        note: `p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms per report`,
      });
    }
    const t1 = performance.now();
    for (;;) {
      const { rows: [running] } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM deployments WHERE status = 'running'`);
      if (running!.n >= deployments) break;
      if (performance.now() - t1 > 300_000) throw new Error('agent reports: deployments not running within 300 s of the last report');
      await sleep(10);
    }
    figures.push({ scenario: 'Agent reports', metric: 'every deployment running, after the last report', value: performance.now() - t1, unit: 'ms' });
    return figures;
  } finally {
    await controller.proc.stop();
    await api.proc.stop();
    await pool.end();
  }
}
