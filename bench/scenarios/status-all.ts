import { Api, mapLimit, sleep } from '../lib/api.js';
import { agentsTick, insertNodes, placedReplicas, profileArgs, serveEnv, startAgents, type BenchEnv } from '../lib/cluster.js';
import { cpuMark, cpuSplit } from '../lib/cpu-split.js';
import type { Figure } from '../lib/report.js';
import { serve } from '../lib/steady.js';
import { hammer } from './status-api.js';

/**
 * Status and list on one `steady serve --role all` (API and controller in one process, as the issue
 * measured it): 400 nodes, one user with 200 deployments × 10 running replicas, simulated agents
 * reporting every 250 ms. Baseline: /healthz of the same process, before and after.
 */
export async function statusAll(env: BenchEnv): Promise<Figure[]> {
  const count = 200;
  const seconds = env.quick ? 5 : 10;
  const database = 'bench_status_all';
  const pool = await env.pg.createDatabase(database);
  const all = await serve(`all(${database})`, 'all', serveEnv(env, database, 'api'), { migrate: true, nodeArgs: profileArgs(env, `all-${database}`) });
  let agents: { stop(): Promise<void> } | null = null;
  try {
    await insertNodes(pool, 400);
    const user = await Api.as(all.url, env.secret, 'status-all-user');
    const ids = await mapLimit(Array.from({ length: count }, (_, i) => i), 16, (i) => user.deploy(`status-${i}`, 10));
    while ((await placedReplicas(pool)) < count * 10) await sleep(100);
    await agentsTick(pool);
    agents = startAgents(pool, 250);
    await sleep(2_000);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
    const run = async (label: string, next: () => { path: string; token: string | null }) => {
      const from = cpuMark(all.proc.pid);
      const result = await hammer(env, all.url, `serve --role all: ${label}`, seconds, next);
      return { ...result, cpu: cpuSplit(from, cpuMark(all.proc.pid)) };
    };
    const healthz = () => ({ path: '/healthz', token: null });
    const before = await run('GET /healthz', healthz);
    const status = await run('GET status/{random id}', () => ({ path: `/api/deployment/status/${pick(ids)}`, token: user.token }));
    const list = await run('GET list (first page)', () => ({ path: '/api/deployment/list', token: user.token }));
    const after = await run('GET /healthz again', healthz);
    const baseRps = (before.rps + after.rps) / 2;
    const baseline = { name: 'GET /healthz, same process', value: baseRps, unit: 'req/s' };
    const fig = (metric: string, r: { rps: number; p99: number; cpu: string }): Figure => ({
      scenario: 'Status API, serve --role all',
      metric: `${metric} throughput`,
      value: r.rps,
      unit: 'req/s',
      baseline,
      ratio: r.rps / baseRps,
      target: '≥ 40%',
      met: r.rps / baseRps >= 0.4,
      note: `p99 ${r.p99} ms; 400 nodes, ${count} deployments of one user, agents reporting; ${r.cpu}`,
    });
    return [
      { scenario: 'Status API, serve --role all', metric: 'GET /healthz p99', value: Math.max(before.p99, after.p99), unit: 'ms', note: `before ${Math.round(before.rps)}, after ${Math.round(after.rps)} req/s; ${before.cpu}` },
      fig('GET status/{id}', status),
      fig('GET list', list),
    ];
  } finally {
    await agents?.stop();
    await all.proc.stop();
    await pool.end();
  }
}
