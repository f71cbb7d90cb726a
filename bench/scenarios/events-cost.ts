import type pg from 'pg';
import { sleep } from '../lib/api.js';
import { insertNodes, placedReplicas, startApi, startController, type BenchEnv } from '../lib/cluster.js';
import type { Figure } from '../lib/report.js';

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
 * (without, with, without, with) so that a change in the machine's load falls on both.
 */
export async function eventsCost(env: BenchEnv): Promise<Figure[]> {
  const deployments = env.quick ? 2_000 : 10_000;
  const nodes = deployments / 10;
  const rounds = 2;
  const times = { with: [] as number[], without: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    for (const events of [false, true]) {
      const sec = await placement(env, deployments, nodes, events, `bench_events_${round}_${events ? 'on' : 'off'}`);
      env.log(`events cost: round ${round + 1}, event triggers ${events ? 'on' : 'off'}: ${sec.toFixed(2)} s`);
      times[events ? 'with' : 'without'].push(sec);
    }
  }
  const withSec = times.with.reduce((a, b) => a + b, 0) / rounds;
  const withoutSec = times.without.reduce((a, b) => a + b, 0) / rounds;
  const ratio = withSec / withoutSec;
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
      note: `mean of ${rounds} alternating rounds each: with ${times.with.map((t) => t.toFixed(2)).join(', ')} s; without ${times.without.map((t) => t.toFixed(2)).join(', ')} s`,
    },
  ];
}

async function placement(env: BenchEnv, deployments: number, nodes: number, events: boolean, database: string): Promise<number> {
  const pool = await env.pg.createDatabase(database);
  try {
    // The API migrates the database on start; nothing else of it is needed.
    const api = await startApi(env, database);
    await api.proc.stop();
    if (!events) {
      for (const [table, triggers] of Object.entries(EVENT_TRIGGERS)) {
        for (const trigger of triggers) await pool.query(`ALTER TABLE ${table} DISABLE TRIGGER ${trigger}`);
      }
    }
    await insertNodes(pool, nodes);
    await insertDeployments(pool, deployments);
    await pool.query('VACUUM ANALYZE');
    const replicas = deployments * 10;
    const controller = await startController(env, database, `events-${events ? 'on' : 'off'}`);
    try {
      const { at: t0 } = await controller.proc.waitForLine(/became the leader/, 30_000);
      for (;;) {
        if ((await placedReplicas(pool)) >= replicas) break;
        if (performance.now() - t0 > 900_000) throw new Error(`events cost: not placed within 900 s`);
        await sleep(100);
      }
      return (performance.now() - t0) / 1000;
    } finally {
      await controller.proc.stop();
    }
  } finally {
    await pool.end();
    await env.pg.dropDatabase(database);
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
