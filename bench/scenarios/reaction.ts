import type pg from 'pg';
import { Api, mapLimit, sleep, until } from '../lib/api.js';
import { insertNodes, placedReplicas, startAgents, startApi, startController, waitControllerQuiet, type BenchEnv } from '../lib/cluster.js';
import { databaseCounters } from '../lib/postgres.js';
import type { Figure } from '../lib/report.js';
import { LatencyHistogram, type Percentiles } from '../lib/stats.js';

/**
 * Reaction: a scale request is sent → every new replica row of that deployment is placed on a node.
 * Measured from just before the HTTP request to the first poll that sees the rows placed (polling
 * every ~1 ms on its own connection), over many sequential scales of +2, at idle and again while
 * other deployments are scaled up and down at 100/s through the same API. "Idle" has the simulated
 * agents reporting every 250 ms (they mark the new replicas running, which the controller then
 * records); it is measured once more before they start, to show what their reports cost. The idle
 * run starts once the agents have started what the first run placed and the controller is quiet.
 */
export async function reaction(env: BenchEnv): Promise<Figure[]> {
  const scales = env.quick ? 200 : 1_000;
  const deployments = env.quick ? 50 : 100;
  const nodes = env.quick ? 50 : 100;
  const churnRate = 100;
  // One durable transaction's latency on the same server (measured first, alone): a scale is at least
  // a commit of the API and one of the controller.
  const txn = await env.baselines.pgbench(1);
  const pool = await env.pg.createDatabase('bench_reaction');
  const api = await startApi(env, 'bench_reaction');
  await insertNodes(pool, nodes);
  const controller = await startController(env, 'bench_reaction', 'reaction');
  let agents: { stop(): Promise<void> } | null = null;
  try {
    const user = await Api.as(api.url, env.secret, 'reaction-user');
    const measured = await mapLimit(Array.from({ length: deployments }, (_, i) => i), 8, (i) => user.deploy(`measured-${i}`, 1));
    const churned = await mapLimit(Array.from({ length: deployments }, (_, i) => i), 8, (i) => user.deploy(`churn-${i}`, 1));
    const targets = new Map<string, number>(measured.map((id) => [id, 1]));
    await until(async () => (await placedReplicas(pool)) >= deployments * 2, 60_000, 100, 'the first replicas placed');

    env.log(`reaction: ${scales} scales at idle, agents not reporting`);
    const quiet = await measureScales(pool, user, measured, targets, scales, env.log);
    agents = startAgents(pool, 250);
    // Idle means idle: the agents first start the replicas the scales above placed, and the
    // controller records them, before anything is measured.
    await until(async () => (await activeNotRunning(pool)) === 0, 60_000, 50, 'the agents to start every replica');
    await waitControllerQuiet(controller.url, 1_000, 60_000);
    env.log(`reaction: ${scales} scales at idle`);
    const idle = await measureScales(pool, user, measured, targets, scales, env.log);

    env.log(`reaction: ${scales} scales under ${churnRate} scales/s of churn`);
    const churn = startChurn(user, churned, churnRate);
    await sleep(1_000);
    const before = await databaseCounters(pool);
    const busy = await measureScales(pool, user, measured, targets, scales, env.log, env.quick ? 45_000 : 180_000);
    const after = await databaseCounters(pool);
    const achieved = await churn.stop();

    const baseline = { name: 'pgbench TPC-B -c 1, mean latency', value: txn.latencyMs, unit: 'ms' };
    const fig = (metric: string, p: Percentiles, key: 'p50' | 'p99' | 'max', target?: number): Figure => ({
      scenario: 'Reaction',
      metric: `${metric} ${key}`,
      value: p[key],
      unit: 'ms',
      baseline,
      ratio: p[key] / txn.latencyMs,
      ...(target === undefined ? {} : { target: `≤ ${target} ms`, met: p[key] <= target }),
      note: key === 'p50' ? `n=${p.count}, ratio = times the baseline` : 'ratio = times the baseline',
    });
    return [
      fig('scale → placed, idle', idle.placed, 'p50'),
      fig('scale → placed, idle', idle.placed, 'p99', 20),
      fig('scale → placed, idle', idle.placed, 'max'),
      fig('scale request (HTTP), idle', idle.request, 'p99'),
      fig('scale → placed, idle, agents not reporting', quiet.placed, 'p50'),
      fig('scale → placed, idle, agents not reporting', quiet.placed, 'p99'),
      fig(`scale → placed, churn ${Math.round(achieved)}/s`, busy.placed, 'p50'),
      fig(`scale → placed, churn ${Math.round(achieved)}/s`, busy.placed, 'p99', 1_000),
      fig(`scale → placed, churn ${Math.round(achieved)}/s`, busy.placed, 'max'),
      fig(`scale request (HTTP), churn`, busy.request, 'p99', 1_000),
      {
        scenario: 'Reaction',
        metric: 'deadlocks detected during churn (pg_stat_database)',
        value: after.deadlocks - before.deadlocks,
        unit: '',
        note: `${after.xactRollback - before.xactRollback} rollbacks; each deadlock costs deadlock_timeout = 1 s`,
      },
    ];
  } finally {
    await agents?.stop();
    await controller.proc.stop();
    await api.proc.stop();
    await pool.end();
  }
}

/** Replicas an agent has still to act on: placed or waiting, not yet running, or stopping. */
async function activeNotRunning(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM deployment_replicas WHERE status IN ('pending', 'starting', 'stopping')`);
  return rows[0]!.n;
}

async function measureScales(
  pool: pg.Pool,
  user: Api,
  ids: readonly string[],
  targets: Map<string, number>,
  count: number,
  log: (m: string) => void,
  budgetMs = Infinity,
): Promise<{ placed: Percentiles; request: Percentiles }> {
  const placed = new LatencyHistogram();
  const request = new LatencyHistogram();
  const probe = await pool.connect();
  try {
    const started = performance.now();
    for (let i = 0; i < count && performance.now() - started < budgetMs; i++) {
      const id = ids[i % ids.length]!;
      const target = targets.get(id)! + 2;
      targets.set(id, target);
      const t0 = performance.now();
      await user.scale(id, target);
      request.recordMs(performance.now() - t0);
      for (;;) {
        const { rows } = await probe.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM deployment_replicas
           WHERE deployment_id = $1 AND node_id IS NOT NULL AND status IN ('pending', 'starting', 'running')`,
          [id],
        );
        if (rows[0]!.n >= target) break;
        if (performance.now() - t0 > 30_000) throw new Error(`scale of ${id} to ${target} not placed within 30 s`);
        await sleep(1);
      }
      placed.recordMs(performance.now() - t0);
      if ((i + 1) % 50 === 0) log(`  ${i + 1}/${count}, last ${Math.round(performance.now() - t0)} ms`);
    }
  } finally {
    probe.release();
  }
  return { placed: placed.summary(), request: request.summary() };
}

/** Scales the churn deployments between 1 and 3 replicas at `perSecond`, open loop; returns the rate achieved. */
function startChurn(user: Api, ids: readonly string[], perSecond: number): { stop(): Promise<number> } {
  const targets = new Map(ids.map((id) => [id, 1]));
  let sent = 0;
  let done = 0;
  const inFlight = new Set<Promise<unknown>>();
  const started = performance.now();
  const timer = setInterval(() => {
    // Catch up to the schedule (timers on a busy machine fire late), but never more than 64 in flight.
    const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
    while (sent < due && inFlight.size < 64) {
      const id = ids[sent % ids.length]!;
      const target = targets.get(id) === 1 ? 3 : 1;
      targets.set(id, target);
      sent++;
      const p = user
        .scale(id, target)
        .then(() => done++)
        .catch(() => undefined)
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  }, 5);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      return done / ((performance.now() - started) / 1000);
    },
  };
}
