import type pg from 'pg';
import { Api, mapLimit, sleep } from '../lib/api.js';
import { agentsTick, insertNodes, metricSum, placedReplicas, startApi, startController, waitControllerQuiet, type BenchEnv } from '../lib/cluster.js';
import { cpuMark, cpuSplit } from '../lib/cpu-split.js';
import { API_ROLE, controllerStatements, databaseCounters, resetStatementsOf, statementsOf } from '../lib/postgres.js';
import type { Figure } from '../lib/report.js';
import { ProcessWatcher, sampleProcess, type SteadyChild } from '../lib/steady.js';

export const COLD_DB = 'bench_cold';

export interface ColdCluster {
  readonly pool: pg.Pool;
  readonly api: { proc: SteadyChild; url: string };
  readonly controller: { proc: SteadyChild; url: string };
  readonly topQueries: { query: string; calls: number; ms: number }[];
  /** What the API sent per create (pg_stat_statements of its role during the submissions). */
  readonly createStatements: { perCreate: number; top: { query: string; calls: number; ms: number }[] };
  close(): Promise<void>;
}

/**
 * Cold start: D deployments × 10 replicas are submitted through the API while no controller runs;
 * then the controller starts and is timed from "became the leader" until every replica is placed.
 * Baselines on the same server: pgbench TPC-B, and one INSERT … SELECT of as many replica-shaped rows.
 * Memory: peak RSS (VmHWM) of the API during the submissions and of the controller during placement.
 */
export async function coldStart(env: BenchEnv): Promise<{ figures: Figure[]; cluster: ColdCluster }> {
  const deployments = env.quick ? 1_000 : 10_000;
  const nodes = env.quick ? 100 : 1_000;
  const replicas = deployments * 10;
  const pool = await env.pg.createDatabase(COLD_DB);
  const api = await startApi(env, COLD_DB);
  const apiWatch = new ProcessWatcher(api.proc.pid);
  await insertNodes(pool, nodes);

  env.log(`cold start: submitting ${deployments} deployments × 10 through the API`);
  const users = await Promise.all(Array.from({ length: 10 }, (_, i) => Api.as(api.url, env.secret, `cold-user-${i}`)));
  // Users and their tokens known to the API before the clock starts (first requests upsert the user).
  await Promise.all(users.map((u) => u.ok('GET', '/api/deployment/list')));
  await resetStatementsOf(pool, API_ROLE);
  const submitStarted = performance.now();
  const submitCpu = cpuMark(api.proc.pid);
  await mapLimit(Array.from({ length: deployments }, (_, i) => i), 32, (i) => users[i % users.length]!.deploy(`app-${i}`, 10));
  const submitSec = (performance.now() - submitStarted) / 1000;
  const submitCpuSplit = cpuSplit(submitCpu, cpuMark(api.proc.pid));
  apiWatch.stop();
  const apiStatements = await statementsOf(pool, API_ROLE);
  const createStatements = {
    perCreate: apiStatements.calls / deployments,
    top: apiStatements.byQuery
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 8)
      .map((q) => ({ calls: q.calls, ms: Math.round(q.ms), query: q.query.replace(/\s+/g, ' ').slice(0, 400) })),
  };

  await pool.query('SELECT pg_stat_statements_reset()').catch(() => undefined);
  env.log(`cold start: starting the controller; placing ${replicas} replicas on ${nodes} nodes`);
  const controller = await startController(env, COLD_DB, 'cold-start');
  const ctlWatch = new ProcessWatcher(controller.proc.pid, 100);
  const counters0 = await databaseCounters(pool);
  const { at: t0 } = await controller.proc.waitForLine(/became the leader/, 30_000);
  const cpu0 = sampleProcess(controller.proc.pid)?.cpuSec ?? 0;
  const timeoutMs = env.quick ? 120_000 : 900_000;
  for (;;) {
    if ((await placedReplicas(pool)) >= replicas) break;
    if (performance.now() - t0 > timeoutMs) throw new Error(`cold start did not finish within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
  const placeSec = (performance.now() - t0) / 1000;
  const counters1 = await databaseCounters(pool);
  const reconciles = await metricSum(controller.url, 'steady_reconciles_total');
  const ctlCpuSec = (sampleProcess(controller.proc.pid)?.cpuSec ?? 0) - cpu0;
  ctlWatch.stop();
  const topQueries = (await controllerStatements(pool)).byQuery.sort((a, b) => b.ms - a.ms).slice(0, 12);

  env.log('cold start: baselines (raw INSERT … SELECT, pgbench)');
  const raw = await rawInsertRowsPerSec(pool, replicas);
  const bench = await env.baselines.pgbench(4);
  const bench32 = await env.baselines.pgbench(32);

  const figures: Figure[] = [
    {
      scenario: 'Cold start',
      metric: `${deployments}×10 placed on ${nodes} nodes`,
      value: placeSec,
      unit: 's',
      baseline: { name: `one INSERT…SELECT (median of 3) of ${replicas} rows`, value: replicas / raw, unit: 's' },
      ratio: placeSec / (replicas / raw),
      target: env.quick ? '≤ 6× raw' : '≤ 5 s and ≤ 6× raw',
      met: placeSec / (replicas / raw) <= 6 && (env.quick || placeSec <= 5),
      note: 'ratio = times slower than the raw insert',
    },
    {
      scenario: 'Cold start',
      metric: 'replicas placed per second',
      value: replicas / placeSec,
      unit: 'rows/s',
      baseline: { name: 'raw INSERT…SELECT', value: raw, unit: 'rows/s' },
      ratio: replicas / placeSec / raw,
    },
    {
      scenario: 'Cold start',
      metric: 'reconciles per second',
      value: reconciles / placeSec,
      unit: '/s',
      baseline: { name: 'pgbench TPC-B -c 4', value: bench.tps, unit: 'tps' },
      ratio: reconciles / placeSec / bench.tps,
      note: `${reconciles} reconciles`,
    },
    {
      scenario: 'Cold start',
      metric: 'controller CPU while placing',
      value: (ctlCpuSec / placeSec) * 100,
      unit: '% of a core',
    },
    {
      scenario: 'Creates',
      metric: 'deployments created through the API, 32 clients',
      value: deployments / submitSec,
      unit: '/s',
      baseline: { name: 'pgbench TPC-B -c 32', value: bench32.tps, unit: 'tps' },
      ratio: deployments / submitSec / bench32.tps,
      target: '≥ 1,000/s and ≥ 0.5× pgbench',
      met: deployments / submitSec >= 1_000 && deployments / submitSec / bench32.tps >= 0.5,
      note: `${deployments} creates × 10 replicas, 10 users, no controller running; ${submitCpuSplit}`,
    },
    {
      scenario: 'Creates',
      metric: 'statements the API sent per create',
      value: createStatements.perCreate,
      unit: '',
      note: 'pg_stat_statements of the API role, BEGIN/COMMIT included; round trips per create',
    },
    {
      scenario: 'Cold start',
      metric: 'deadlocks detected while placing (pg_stat_database)',
      value: counters1.deadlocks - counters0.deadlocks,
      unit: '',
      note: `${counters1.xactRollback - counters0.xactRollback} rollbacks; each deadlock costs deadlock_timeout = 1 s`,
    },
    { scenario: 'Memory', metric: 'controller peak RSS (VmHWM), cold start', value: ctlWatch.peakHwmMb, unit: 'MB', target: '< 200 MB', met: ctlWatch.peakHwmMb < 200 },
    { scenario: 'Memory', metric: 'API peak RSS (VmHWM), submissions', value: apiWatch.peakHwmMb, unit: 'MB', target: '< 200 MB', met: apiWatch.peakHwmMb < 200 },
  ];
  return {
    figures,
    cluster: {
      pool,
      api,
      controller,
      topQueries,
      createStatements,
      async close() {
        await controller.proc.stop();
        await api.proc.stop();
        await pool.end();
      },
    },
  };
}

/** The floor: the same number of replica-shaped rows in one statement, into a copy of the table without triggers or FKs. */
async function rawInsertRowsPerSec(pool: pg.Pool, rows: number): Promise<number> {
  // The median of three: one insert's time moves by half between runs on a shared machine.
  const secs: number[] = [];
  for (let i = 0; i < 3; i++) {
    await pool.query('CREATE TABLE bench_raw_replicas (LIKE deployment_replicas INCLUDING DEFAULTS INCLUDING INDEXES)');
    const started = performance.now();
    await pool.query(
      `WITH n AS (SELECT array_agg(id) AS ids FROM nodes)
       INSERT INTO bench_raw_replicas (deployment_id, node_id, status, revision)
       SELECT d.id, n.ids[1 + abs(hashtext(d.id::text || g::text)) % cardinality(n.ids)], 'pending', d.revision
       FROM deployments d CROSS JOIN generate_series(1, 10) g CROSS JOIN n
       LIMIT $1`,
      [rows],
    );
    secs.push((performance.now() - started) / 1000);
    await pool.query('DROP TABLE bench_raw_replicas');
  }
  return rows / secs.sort((a, b) => a - b)[1]!;
}

/**
 * Steady state: every replica running, nothing changing. Counts the statements the controller's role
 * sends (pg_stat_statements), the database's transactions (pg_stat_database) and the controller's CPU.
 */
export async function steadyState(env: BenchEnv, cluster: ColdCluster): Promise<Figure[]> {
  const windowSec = env.quick ? 30 : 60;
  const { pool, controller } = cluster;
  env.log('steady state: agents start everything; waiting for the controller to settle');
  await agentsTick(pool);
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM deployments WHERE status <> 'running'`);
    if (rows[0]!.n === 0) break;
    await sleep(250);
  }
  await waitControllerQuiet(controller.url, 3_000, 300_000);
  const deployments = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM deployments')).rows[0]!.n);
  env.log(`steady state: measuring ${windowSec} s with ${deployments} converged deployments`);
  const s0 = await controllerStatements(pool);
  const d0 = await databaseCounters(pool);
  const c0 = sampleProcess(controller.proc.pid)!;
  const t0 = performance.now();
  await sleep(windowSec * 1000);
  const sec = (performance.now() - t0) / 1000;
  const c1 = sampleProcess(controller.proc.pid)!;
  const s1 = await controllerStatements(pool);
  const d1 = await databaseCounters(pool);
  // Our own snapshot queries are autocommit transactions too: two per snapshot pair.
  const xacts = d1.xactCommit + d1.xactRollback - d0.xactCommit - d0.xactRollback - 2;
  const stmts = s1.calls - s0.calls;
  const commits = s1.commits - s0.commits;
  return [
    {
      scenario: 'Steady state',
      metric: `controller statements/s, ${deployments} converged`,
      value: stmts / sec,
      unit: '/s',
      target: '< 1 /s',
      met: stmts / sec < 1,
      note: `${stmts} in ${Math.round(sec)} s, incl. BEGIN/COMMIT; resync every 30 s`,
    },
    { scenario: 'Steady state', metric: 'controller transactions/s (COMMITs)', value: commits / sec, unit: '/s' },
    { scenario: 'Steady state', metric: 'database transactions/s (pg_stat_database)', value: xacts / sec, unit: '/s', note: 'all clients; nothing else runs' },
    { scenario: 'Steady state', metric: 'controller CPU', value: ((c1.cpuSec - c0.cpuSec) / sec) * 100, unit: '% of a core' },
    { scenario: 'Memory', metric: 'controller RSS, steady state', value: c1.rssMb, unit: 'MB', target: '< 200 MB', met: c1.rssMb < 200 },
  ];
}
