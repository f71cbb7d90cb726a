import autocannon from 'autocannon';
import { Api, mapLimit, sleep } from '../lib/api.js';
import { agentsTick, placedReplicas, waitControllerQuiet, type BenchEnv } from '../lib/cluster.js';
import { cpuMark, cpuSplit } from '../lib/cpu-split.js';
import type { Figure } from '../lib/report.js';
import { API_ROLE, resetStatementsOf, statementsOf } from '../lib/postgres.js';
import type { ColdCluster } from './cold-start.js';

/**
 * Status API: autocannon, 50 connections, against the API process of the cold-start cluster (so the
 * database holds every other deployment too). One user with U deployments of 10 running replicas;
 * GET status with a random id per request, and GET list (first page of a random user). Baseline: /healthz of the same
 * process, a constant JSON Hono route behind the same request-log middleware (but no auth, no SQL).
 */
export interface TopStatement {
  readonly query: string;
  readonly calls: number;
  readonly ms: number;
}

export async function statusApi(env: BenchEnv, cluster: ColdCluster): Promise<{ figures: Figure[]; topStatements: Record<string, TopStatement[]> }> {
  const count = env.quick ? 50 : 100;
  const seconds = env.quick ? 5 : 10;
  const { api, pool } = cluster;
  const user = await Api.as(api.url, env.secret, 'status-user');
  const before = await placedReplicas(pool);
  const ids = await mapLimit(Array.from({ length: count }, (_, i) => i), 8, (i) => user.deploy(`status-${i}`, 10));
  for (;;) {
    if ((await placedReplicas(pool)) >= before + count * 10) break;
    await sleep(100);
  }
  await agentsTick(pool);
  await waitControllerQuiet(cluster.controller.url, 2_000, 120_000);

  const run = async (label: string, next: () => { path: string; token: string | null }) => {
    const from = cpuMark(api.proc.pid);
    const result = await hammer(env, api.url, label, seconds, next);
    return { ...result, cpu: cpuSplit(from, cpuMark(api.proc.pid)) };
  };
  // What the API asks PostgreSQL per route (pg_stat_statements of the API's role, reset before each run).
  const topStatements: Record<string, TopStatement[]> = {};
  const measured = async (label: string, next: () => { path: string; token: string }) => {
    await resetStatementsOf(pool, API_ROLE);
    const result = await run(label, next);
    topStatements[label] = (await statementsOf(pool, API_ROLE)).byQuery
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 6)
      .map((q) => ({ calls: q.calls, ms: Math.round(q.ms), query: q.query.replace(/\s+/g, ' ').slice(0, 400) }));
    return result;
  };
  // Lists: the first page of one of 11 users at random (the status user and the cold start's ten, who
  // hold every other deployment), so concurrent reads are not all the same page.
  const listUsers = [user, ...(await Promise.all(Array.from({ length: 10 }, (_, i) => Api.as(api.url, env.secret, `cold-user-${i}`))))];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
  const healthz = () => ({ path: '/healthz', token: null });
  const constant = await run('GET /healthz (constant JSON)', healthz);
  const status = await measured('GET /api/deployment/status/{random id}', () => ({ path: `/api/deployment/status/${pick(ids)}`, token: user.token }));
  const list = await measured('GET /api/deployment/list (first page, random user of 11)', () => ({ path: '/api/deployment/list', token: pick(listUsers).token }));
  const constantAgain = await run('GET /healthz again', healthz);
  const baseRps = (constant.rps + constantAgain.rps) / 2;
  const baseline = { name: 'GET /healthz, same process', value: baseRps, unit: 'req/s' };
  const figures: Figure[] = [
    { scenario: 'Status API', metric: 'GET /healthz p99', value: Math.max(constant.p99, constantAgain.p99), unit: 'ms', note: `before ${Math.round(constant.rps)}, after ${Math.round(constantAgain.rps)} req/s; ${constant.cpu}` },
    { scenario: 'Status API', metric: 'GET status/{id} throughput', value: status.rps, unit: 'req/s', baseline, ratio: status.rps / baseRps, target: '≥ 40%', met: status.rps / baseRps >= 0.4, note: status.cpu },
    { scenario: 'Status API', metric: 'GET status/{id} p99', value: status.p99, unit: 'ms' },
    { scenario: 'Status API', metric: 'GET list throughput', value: list.rps, unit: 'req/s', baseline, ratio: list.rps / baseRps, target: '≥ 40%', met: list.rps / baseRps >= 0.4, note: list.cpu },
    { scenario: 'Status API', metric: 'GET list p99', value: list.p99, unit: 'ms' },
  ];
  return { figures, topStatements };
}

/** autocannon, 50 connections for `seconds`; `next` gives each request's path and bearer token (none for the constant route). */
export async function hammer(
  env: BenchEnv,
  url: string,
  label: string,
  seconds: number,
  next: () => { path: string; token: string | null },
): Promise<{ rps: number; p99: number; total: number }> {
  env.log(`status API: ${label}, 50 connections, ${seconds} s`);
  const result = await autocannon({
    url,
    connections: 50,
    duration: seconds,
    requests: [
      {
        method: 'GET',
        setupRequest: (req) => {
          const { path, token } = next();
          const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
          return { ...req, path, headers };
        },
      },
    ],
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${label}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, p99: result.latency.p99, total: result.requests.total };
}
