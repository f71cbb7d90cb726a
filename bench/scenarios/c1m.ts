import { Api, mapLimit, sleep } from '../lib/api.js';
import { agentsTick, HeapWatcher, insertNodes, metricSum, placedReplicas, startApi, startController, waitControllerQuiet, type BenchEnv } from '../lib/cluster.js';
import { API_ROLE, controllerStatements, resetStatementsOf, statementsOf } from '../lib/postgres.js';
import type { Figure } from '../lib/report.js';
import { ProcessWatcher, sampleProcess } from '../lib/steady.js';

/**
 * C1M (Nomad's "one million containers", on one box): 100,000 deployments × 10 replicas on 10,000
 * nodes. Submitted through the API (32 clients, 100 users) with the controller running, as in
 * production; then placement finishes; then the agents start everything and the cluster is left alone
 * for a minute. `npm run bench -- --only c1m` (not in the default run: it takes longer than 10
 * minutes on 2 cores). `--quick`: 10,000 × 10 on 1,000 nodes.
 */
export async function c1m(env: BenchEnv): Promise<Figure[]> {
  const deployments = env.quick ? 10_000 : 100_000;
  const nodes = env.quick ? 1_000 : 10_000;
  const replicas = deployments * 10;
  const database = 'bench_c1m';
  const pool = await env.pg.createDatabase(database);
  const bench = await env.baselines.pgbench(32);
  const api = await startApi(env, database);
  const controller = await startController(env, database, 'c1m');
  const apiWatch = new ProcessWatcher(api.proc.pid, 500);
  const ctlWatch = new ProcessWatcher(controller.proc.pid, 500);
  const ctlHeap = new HeapWatcher(controller.url);
  const apiHeap = new HeapWatcher(api.url);
  try {
    await insertNodes(pool, nodes);
    const users = await Promise.all(Array.from({ length: 100 }, (_, i) => Api.as(api.url, env.secret, `c1m-user-${i}`)));
    await Promise.all(users.map((u) => u.ok('GET', '/api/deployment/list')));
    await resetStatementsOf(pool, API_ROLE);
    env.log(`c1m: submitting ${deployments} deployments × 10 through the API, controller placing on ${nodes} nodes`);
    const t0 = performance.now();
    let done = 0;
    await mapLimit(Array.from({ length: deployments }, (_, i) => i), 32, async (i) => {
      await users[i % users.length]!.deploy(`c1m-${i}`, 10);
      if (++done % 10_000 === 0) env.log(`  ${done} submitted, ${Math.round(done / ((performance.now() - t0) / 1000))}/s`);
    });
    const submitSec = (performance.now() - t0) / 1000;
    const perCreate = (await statementsOf(pool, API_ROLE)).calls / deployments;
    for (;;) {
      const placed = await placedReplicas(pool);
      if (placed >= replicas) break;
      if (performance.now() - t0 > 3_600_000) throw new Error(`c1m: ${placed} of ${replicas} placed after an hour`);
      await sleep(500);
    }
    const placedSec = (performance.now() - t0) / 1000;
    env.log(`c1m: all placed after ${placedSec.toFixed(1)} s; agents start everything`);
    await agentsTick(pool);
    for (;;) {
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM deployments WHERE status <> 'running'`);
      if (rows[0]!.n === 0) break;
      await sleep(1_000);
    }
    const runningSec = (performance.now() - t0) / 1000;
    await waitControllerQuiet(controller.url, 3_000, 900_000);
    const windowSec = env.quick ? 30 : 60;
    env.log(`c1m: at rest, measuring ${windowSec} s`);
    const s0 = await controllerStatements(pool);
    const c0 = sampleProcess(controller.proc.pid)!;
    const w0 = performance.now();
    await sleep(windowSec * 1000);
    const sec = (performance.now() - w0) / 1000;
    const s1 = await controllerStatements(pool);
    const c1 = sampleProcess(controller.proc.pid)!;
    const reconciles = await metricSum(controller.url, 'steady_reconciles_total');
    const { rows: size } = await pool.query<{ mb: number; rows: string }>(
      `SELECT pg_database_size(current_database()) / 1048576.0 AS mb, (SELECT count(*) FROM deployment_replicas)::text AS rows`,
    );
    for (const w of [apiWatch, ctlWatch, apiHeap, ctlHeap]) w.stop();
    const scenario = 'C1M';
    return [
      {
        scenario,
        metric: `${deployments} deployments created through the API (32 clients, controller running)`,
        value: deployments / submitSec,
        unit: '/s',
        baseline: { name: 'pgbench TPC-B -c 32', value: bench.tps, unit: 'tps' },
        ratio: deployments / submitSec / bench.tps,
        note: `${submitSec.toFixed(0)} s; ${perCreate.toFixed(1)} statements per create`,
      },
      {
        scenario,
        metric: `${replicas} replicas submitted and placed on ${nodes} nodes`,
        value: placedSec,
        unit: 's',
        note: `${Math.round(replicas / placedSec)} replicas/s; last placed ${(placedSec - submitSec).toFixed(1)} s after the last create; ${reconciles} reconciles`,
      },
      { scenario, metric: 'all deployments running (agents report at once)', value: runningSec, unit: 's' },
      { scenario, metric: 'database size', value: Number(size[0]!.mb), unit: 'MB', note: `${size[0]!.rows} replica rows` },
      {
        scenario,
        metric: 'controller statements/s at rest',
        value: (s1.calls - s0.calls) / sec,
        unit: '/s',
        target: '< 1 /s',
        met: (s1.calls - s0.calls) / sec < 1,
        note: `${s1.calls - s0.calls} in ${Math.round(sec)} s; controller CPU ${(((c1.cpuSec - c0.cpuSec) / sec) * 100).toFixed(1)} % of a core`,
      },
      { scenario, metric: 'controller peak RSS (VmHWM)', value: ctlWatch.peakHwmMb, unit: 'MB', target: '≤ 300 MB', met: ctlWatch.peakHwmMb <= 300, note: ctlHeap.describe() },
      { scenario, metric: 'API peak RSS (VmHWM)', value: apiWatch.peakHwmMb, unit: 'MB', target: '≤ 300 MB', met: apiWatch.peakHwmMb <= 300, note: apiHeap.describe() },
    ];
  } finally {
    for (const w of [apiWatch, ctlWatch, apiHeap, ctlHeap]) w.stop();
    await controller.proc.stop();
    await api.proc.stop();
    await pool.end();
  }
}
