import type pg from 'pg';
import { sleep } from '../lib/api.js';
import { insertNodes, placedReplicas, startApi, startController, type BenchEnv } from '../lib/cluster.js';
import { CONTROLLER_ROLE } from '../lib/postgres.js';
import type { Figure } from '../lib/report.js';
import { sampleProcess } from '../lib/steady.js';

/** The triggers that write the event stream (migrations 0005 and 0009), as `table: triggers`. */
const EVENT_TRIGGERS: Record<string, string[]> = {
  deployment_replicas: ['replicas_events_insert', 'replicas_events_update'],
  deployments: ['deployments_events_insert', 'deployments_events_update'],
  deployment_status_history: ['history_events_insert'],
  nodes: ['nodes_events_insert', 'nodes_events_update', 'nodes_events_delete'],
};

/**
 * What the event stream costs the controller: the same cold start (D × 10 replicas on D/10 nodes,
 * deployments inserted by SQL, controller timed from "became the leader" until every replica is
 * placed) with the event triggers and with them disabled, on the same server, alternating
 * (five rounds of both, which goes first changing from round to round) so that a change in the
 * machine's load falls on both. Each run starts right after a CHECKPOINT, so that every run writes
 * the same full-page images and none meets a checkpoint half-way. A round's wall time still moves by
 * up to a quarter with the machine: the figure is the median of the five rounds' ratios, with the
 * mean beside it.
 */
export async function eventsCost(env: BenchEnv): Promise<Figure[]> {
  const deployments = env.quick ? 2_000 : 10_000;
  const nodes = deployments / 10;
  // BENCH_EVENTS_ROUNDS=N for more rounds: the spread between rounds is larger than the cost measured.
  const rounds = Math.max(1, Number(process.env.BENCH_EVENTS_ROUNDS ?? 5) || 5);
  const times = { with: [] as number[], without: [] as number[] };
  const cpu = { with: [] as number[], without: [] as number[] };
  const wal = { with: [] as number[], without: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    for (const events of round % 2 === 0 ? [false, true] : [true, false]) {
      const run = await placement(env, deployments, nodes, events, `bench_events_${round}_${events ? 'on' : 'off'}`);
      env.log(`events cost: round ${round + 1}, event triggers ${events ? 'on' : 'off'}: ${run.sec.toFixed(2)} s, ${run.cpuSec.toFixed(2)} CPU s`);
      times[events ? 'with' : 'without'].push(run.sec);
      cpu[events ? 'with' : 'without'].push(run.cpuSec);
      wal[events ? 'with' : 'without'].push(run.walMb);
    }
  }
  const withSec = times.with.reduce((a, b) => a + b, 0) / rounds;
  const withoutSec = times.without.reduce((a, b) => a + b, 0) / rounds;
  const ratios = times.with.map((t, i) => t / times.without[i]!).sort((a, b) => a - b);
  const ratio = ratios[Math.floor(rounds / 2)]!;
  const withCpu = cpu.with.reduce((a, b) => a + b, 0) / rounds;
  const withoutCpu = cpu.without.reduce((a, b) => a + b, 0) / rounds;
  const withWal = wal.with.reduce((a, b) => a + b, 0) / rounds;
  const withoutWal = wal.without.reduce((a, b) => a + b, 0) / rounds;
  return [
    {
      scenario: 'Event stream cost',
      metric: `cold start ${deployments}×10 on ${nodes} nodes with the event triggers`,
      value: withSec,
      unit: 's',
      baseline: { name: 'the same with the event triggers disabled', value: withoutSec, unit: 's' },
      ratio,
      target: '≤ 1.10×',
      met: ratio <= 1.1,
      note:
        `values: means of ${rounds} alternating rounds; ratio: the median round's (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')}; ` +
        `of the means: ${(withSec / withoutSec).toFixed(2)}); with ${times.with.map((t) => t.toFixed(2)).join(', ')} s; without ${times.without.map((t) => t.toFixed(2)).join(', ')} s`,
    },
    {
      scenario: 'Event stream cost',
      metric: 'CPU spent placing, controller and its PostgreSQL backends',
      value: withCpu,
      unit: 'CPU s',
      baseline: { name: 'the same with the event triggers disabled', value: withoutCpu, unit: 'CPU s' },
      ratio: withCpu / withoutCpu,
      note: 'CPU time does not move with the machine\'s load as wall time does',
    },
    {
      scenario: 'Event stream cost',
      metric: 'WAL written while placing',
      value: withWal,
      unit: 'MB',
      baseline: { name: 'the same with the event triggers disabled', value: withoutWal, unit: 'MB' },
      ratio: withWal / withoutWal,
      note: 'every commit waits for its WAL to reach the disk',
    },
  ];
}

async function placement(env: BenchEnv, deployments: number, nodes: number, events: boolean, database: string): Promise<{ sec: number; cpuSec: number; walMb: number }> {
  const pool = await env.pg.createDatabase(database);
  try {
    await seedColdStart(env, pool, database, deployments, nodes, async () => {
      if (events) return;
      for (const [table, triggers] of Object.entries(EVENT_TRIGGERS)) {
        for (const trigger of triggers) await pool.query(`ALTER TABLE ${table} DISABLE TRIGGER ${trigger}`);
      }
    });
    const replicas = deployments * 10;
    const controller = await startController(env, database, `events-${events ? 'on' : 'off'}`);
    try {
      const { at: t0 } = await controller.proc.waitForLine(/became the leader/, 30_000);
      const cpu0 = await cpuOf(pool, database, controller.proc.pid);
      const wal0 = await walLsn(pool);
      await untilPlaced(pool, replicas, t0, 'events cost');
      const sec = (performance.now() - t0) / 1000;
      const cpu1 = await cpuOf(pool, database, controller.proc.pid);
      const walMb = Number((await pool.query<{ b: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text AS b', [wal0])).rows[0]!.b) / 1048576;
      // Backends that exist at both ends (the controller's pool; a backend's CPU is gone once it exits).
      let cpuSec = cpu1.controller - cpu0.controller;
      for (const [pid, c] of cpu1.backends) cpuSec += c - (cpu0.backends.get(pid) ?? 0);
      return { sec, cpuSec, walMb };
    } finally {
      await controller.proc.stop();
    }
  } finally {
    await pool.end();
    await env.pg.dropDatabase(database);
  }
}

/**
 * The database of a cold start: migrated (by the API, which starts and stops), then whatever
 * `prepare` does, then N nodes and D deployments × 10 inserted by SQL, analysed, and a CHECKPOINT so
 * that the placement timed next meets none half-way.
 */
export async function seedColdStart(
  env: BenchEnv,
  pool: pg.Pool,
  database: string,
  deployments: number,
  nodes: number,
  prepare: () => Promise<void> = async () => undefined,
): Promise<void> {
  const api = await startApi(env, database);
  await api.proc.stop();
  await prepare();
  await insertNodes(pool, nodes);
  await insertDeployments(pool, deployments);
  await pool.query('VACUUM ANALYZE');
  await pool.query('CHECKPOINT');
}

/** Waits until `replicas` replicas are placed, at most 900 s after `t0`. */
export async function untilPlaced(pool: pg.Pool, replicas: number, t0: number, what: string): Promise<void> {
  while ((await placedReplicas(pool)) < replicas) {
    if (performance.now() - t0 > 900_000) throw new Error(`${what}: not placed within 900 s`);
    await sleep(100);
  }
}

/** D deployments × 10 of 0.1 core and 64 MB, with their resources and revision 1, as the API writes them. */
async function insertDeployments(pool: pg.Pool, count: number): Promise<void> {
  await pool.query(`INSERT INTO users (subject) VALUES ('events-cost')`);
  await pool.query(
    `WITH d AS (
       INSERT INTO deployments (name, user_id, container_image, target_replicas)
       SELECT 'app-' || i, (SELECT id FROM users WHERE subject = 'events-cost'), 'nginx:1.27', 10
       FROM generate_series(1, $1::int) i
       RETURNING id, container_image
     ), res AS (
       INSERT INTO deployment_resources (deployment_id, cpu_cores, memory_mb, gpu_units, storage_gb)
       SELECT id, 0.1, 64, 0, 1 FROM d
     )
     INSERT INTO deployment_revisions (deployment_id, revision, template_revision, container_image, cpu_cores, memory_mb, gpu_units, storage_gb)
     SELECT id, 1, 1, container_image, 0.1, 64, 0, 1 FROM d`,
    [count],
  );
}

/** CPU seconds so far of the controller and of its backends (its role's connections to the database). */
async function cpuOf(pool: pg.Pool, database: string, controllerPid: number): Promise<{ controller: number; backends: Map<number, number> }> {
  const { rows } = await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2', [database, CONTROLLER_ROLE]);
  const backends = new Map<number, number>();
  for (const { pid } of rows) {
    const s = sampleProcess(pid);
    if (s) backends.set(pid, s.cpuSec);
  }
  return { controller: sampleProcess(controllerPid)?.cpuSec ?? 0, backends };
}

const walLsn = async (pool: pg.Pool): Promise<string> => (await pool.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
