/**
 * Where the database time of a cold start goes, statement by statement, triggers included: the
 * events benchmark's cold start (D deployments × 10 inserted by SQL, D/10 nodes, the controller
 * timed from "became the leader" until every replica is placed) on a durable server with
 * pg_stat_statements tracking nested statements (`track = all`), then the controller's statements
 * by total time and how many node updates were HOT.
 *   npx tsx bench/statement-profile.ts [deployments=10000] [top=25]
 * A top-level statement's time includes the statements its triggers ran (listed too, unmarked).
 */
import { randomBytes } from 'node:crypto';
import { startController, type BenchEnv } from './lib/cluster.js';
import { CONTROLLER_ROLE, startBenchPostgres } from './lib/postgres.js';
import { seedColdStart, untilPlaced } from './scenarios/events-cost.js';

const deployments = Number(process.argv[2] ?? 10_000);
const top = Number(process.argv[3] ?? 25);
const log = (message: string): void => void process.stderr.write(`${message}\n`);

const pg = await startBenchPostgres({ durable: true });
if (!pg.statStatements) throw new Error('pg_stat_statements is not available on this server');
const env: BenchEnv = {
  quick: false,
  pg,
  label: '',
  baselines: { pgbench: () => Promise.reject(new Error('no baseline here')) } as unknown as BenchEnv['baselines'],
  secret: randomBytes(32).toString('hex'),
  profileDir: null,
  log,
};
try {
  const database = 'bench_statements';
  const pool = await pg.createDatabase(database);
  await seedColdStart(env, pool, database, deployments, deployments / 10, async () => {
    await pool.query(`ALTER SYSTEM SET pg_stat_statements.track = 'all'`);
    await pool.query('SELECT pg_reload_conf()');
  });
  await pool.query('SELECT pg_stat_statements_reset()');
  const controller = await startController(env, database, 'statements');
  try {
    const { at: t0 } = await controller.proc.waitForLine(/became the leader/, 30_000);
    await untilPlaced(pool, deployments * 10, t0, 'statement profile');
    log(`${deployments} × 10 placed on ${deployments / 10} nodes in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  } finally {
    await controller.proc.stop();
  }
  const { rows } = await pool.query<{ ms: string; calls: string; mean: string; toplevel: boolean; query: string }>(
    `SELECT round(total_exec_time::numeric)::text AS ms, calls::text, round(mean_exec_time::numeric, 3)::text AS mean, toplevel,
            left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS query
     FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
     WHERE r.rolname = $1 ORDER BY total_exec_time DESC LIMIT $2`,
    [CONTROLLER_ROLE, top],
  );
  process.stdout.write('total ms   calls  mean ms  top  statement\n');
  for (const r of rows) {
    process.stdout.write(`${r.ms.padStart(8)} ${r.calls.padStart(7)} ${r.mean.padStart(8)}  ${r.toplevel ? 'yes' : '   '}  ${r.query}\n`);
  }
  const { rows: hot } = await pool.query<{ upd: string; hot: string }>(
    `SELECT n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables WHERE relname = 'nodes'`,
  );
  process.stdout.write(`node updates: ${hot[0]?.upd}, of which HOT: ${hot[0]?.hot}\n`);
  await pool.end();
} finally {
  await pg.destroy();
}
