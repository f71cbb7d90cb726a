import { Api, mapLimit, sleep } from '../lib/api.js';
import { insertNodes, placedReplicas, profileArgs, serveEnv, type BenchEnv } from '../lib/cluster.js';
import type { Figure } from '../lib/report.js';
import { ProcessWatcher, serve } from '../lib/steady.js';

/**
 * End to end, as a user meets it: one `steady serve --role all` (API and controller in one process),
 * N nodes, one user creating D deployments × 10 replicas through the API, 32 requests at a time, while
 * the controller places them. Timed from the first request until every replica is placed.
 * Baseline: pgbench TPC-B with as many clients, on the same server.
 */
export async function endToEnd(env: BenchEnv): Promise<Figure[]> {
  const deployments = env.quick ? 500 : 2_000;
  const nodes = 400;
  const replicas = deployments * 10;
  const database = 'bench_e2e';
  const pool = await env.pg.createDatabase(database);
  const bench = await env.baselines.pgbench(32);
  const all = await serve(`all(${database})`, 'all', serveEnv(env, database, 'api'), { migrate: true, nodeArgs: profileArgs(env, `all-${database}`) });
  const watch = new ProcessWatcher(all.proc.pid);
  try {
    await insertNodes(pool, nodes);
    const user = await Api.as(all.url, env.secret, 'e2e-user');
    await user.ok('GET', '/api/deployment/list');
    env.log(`end to end: ${deployments} deployments × 10 through the API, placed on ${nodes} nodes by the same process`);
    const t0 = performance.now();
    await mapLimit(Array.from({ length: deployments }, (_, i) => i), 32, (i) => user.deploy(`e2e-${i}`, 10));
    const submitSec = (performance.now() - t0) / 1000;
    for (;;) {
      if ((await placedReplicas(pool)) >= replicas) break;
      if (performance.now() - t0 > 600_000) throw new Error('end to end: not placed within 600 s');
      await sleep(20);
    }
    const totalSec = (performance.now() - t0) / 1000;
    watch.stop();
    return [
      {
        scenario: 'End to end',
        metric: `${deployments}×10 submitted and placed, serve --role all, ${nodes} nodes`,
        value: replicas / totalSec,
        unit: 'replicas/s',
        target: '≥ 5,000/s',
        met: replicas / totalSec >= 5_000,
        note: `${totalSec.toFixed(1)} s; placed ${(totalSec - submitSec).toFixed(2)} s after the last create`,
      },
      {
        scenario: 'End to end',
        metric: 'creates per second while the controller places',
        value: deployments / submitSec,
        unit: '/s',
        baseline: { name: 'pgbench TPC-B -c 32', value: bench.tps, unit: 'tps' },
        ratio: deployments / submitSec / bench.tps,
        note: '32 concurrent requests, one user',
      },
      { scenario: 'Memory', metric: 'serve --role all peak RSS (VmHWM), end to end', value: watch.peakHwmMb, unit: 'MB', target: '≤ 300 MB', met: watch.peakHwmMb <= 300 },
    ];
  } finally {
    watch.stop();
    await all.proc.stop();
    await pool.end();
  }
}
