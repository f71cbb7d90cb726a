import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { findPostgresBin, startPostgresServer, type PostgresServer } from '../../test/support/postgres-server.js';

const run = promisify(execFile);

export interface BenchPostgres {
  readonly server: PostgresServer;
  readonly version: string;
  /** fsync, synchronous_commit and full_page_writes all on (PostgreSQL's defaults), as the server reports them. */
  readonly durable: boolean;
  /** `fsync=on synchronous_commit=on full_page_writes=on`, read back from the running server. */
  readonly settings: string;
  readonly statStatements: boolean;
  /** A URL for database `db`, as `user` (default postgres). */
  url(db: string, user?: string): string;
  /** Creates a fresh database and returns an admin pool on it. */
  createDatabase(name: string): Promise<pg.Pool>;
  /** Drops a database made by createDatabase (its pools closed first). */
  dropDatabase(name: string): Promise<void>;
  destroy(): Promise<void>;
  /** For signal handlers: stops the server and removes its files before returning. */
  destroySync(): void;
}

/** The roles the controller and the API connect as, so pg_stat_statements can tell their queries apart. */
export const CONTROLLER_ROLE = 'steady_controller';
export const API_ROLE = 'steady_api';

/**
 * The same throwaway server the tests use, durable unless asked otherwise, plus pg_stat_statements (it
 * must be preloaded, so: ALTER SYSTEM, restart) and a login role for the controller and the API.
 */
export async function startBenchPostgres(options: { durable: boolean }): Promise<BenchPostgres> {
  const server = await startPostgresServer({ durable: options.durable });
  const base = new URL(server.url);
  const url = (db: string, user = 'postgres'): string => {
    const u = new URL(base.href);
    u.pathname = `/${db}`;
    u.username = user;
    return u.href;
  };
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  let statStatements = false;
  try {
    await admin.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
    await admin.end();
    await server.restart();
    statStatements = true;
  } catch {
    await admin.end().catch(() => undefined);
  }
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  const version = ((await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? '?').split(' ')[0]!;
  const { rows: durability } = await c.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') ORDER BY name`,
  );
  const settings = durability.map((r) => `${r.name}=${r.setting}`).join(' ');
  const durable = durability.length === 3 && durability.every((r) => r.setting === 'on');
  if (durable !== options.durable) throw new Error(`PostgreSQL runs with ${settings}, not the ${options.durable ? 'durable' : 'fsync-off'} settings asked for`);
  await c.query(`CREATE ROLE ${CONTROLLER_ROLE} LOGIN SUPERUSER`);
  await c.query(`CREATE ROLE ${API_ROLE} LOGIN SUPERUSER`);
  await c.end();
  return {
    server,
    version,
    durable,
    settings,
    statStatements,
    url,
    async createDatabase(name) {
      const a = new pg.Client({ connectionString: server.url });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name}`);
      await a.query(`CREATE DATABASE ${name}`);
      await a.end();
      const pool = new pg.Pool({ connectionString: url(name), max: 8 });
      // A scenario that failed before ending its pool leaves idle clients behind; the server's stop
      // at the end of the run closes them, which must not crash the run that reports the failure.
      pool.on('error', () => undefined);
      if (statStatements) await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements').catch(() => undefined);
      return pool;
    },
    async dropDatabase(name) {
      const a = new pg.Client({ connectionString: server.url });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
    destroy: () => server.destroy(),
    destroySync() {
      const pgData = path.join(server.dataDir, 'data');
      const args = ['-D', pgData, '-m', 'immediate', '-w', 'stop'];
      const ctl = path.join(findPostgresBin(), 'pg_ctl');
      try {
        if (process.getuid?.() === 0) execFileSync('runuser', ['-u', 'postgres', '--', ctl, ...args], { stdio: 'ignore' });
        else execFileSync(ctl, args, { stdio: 'ignore' });
      } catch {
        // Already stopped.
      }
      fs.rmSync(server.dataDir, { recursive: true, force: true });
    },
  };
}

const pgbenchDatabases = new WeakMap<BenchPostgres, Set<string>>();

/**
 * pgbench TPC-B (the default script) on its own database of the same server: tps, excluding
 * connections. Scale defaults to the number of clients (pgbench's own advice: at scale 1 every
 * transaction updates the one branch row, and clients queue on its lock instead of sharing commits).
 */
export async function pgbenchTps(bp: BenchPostgres, seconds: number, clients = 4, scale = clients): Promise<{ tps: number; latencyMs: number }> {
  const bin = findPostgresBin();
  const db = `bench_pgbench_s${scale}`;
  const ready = pgbenchDatabases.get(bp) ?? new Set<string>();
  pgbenchDatabases.set(bp, ready);
  const asRoot = process.getuid?.() === 0;
  const as = (cmd: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args];
  const conn = ['-h', '127.0.0.1', '-p', String(bp.server.port), '-U', 'postgres'];
  if (!ready.has(db)) {
    await (await bp.createDatabase(db)).end();
    await run(...as('pgbench', ['-i', '-q', '-s', String(scale), ...conn, db]), { cwd: '/tmp' });
    ready.add(db);
  }
  const { stdout } = await run(...as('pgbench', ['-T', String(seconds), '-c', String(clients), '-j', '2', ...conn, db]), {
    cwd: '/tmp',
  });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1] ?? NaN);
  const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1] ?? NaN);
  return { tps, latencyMs };
}

/** The controller role's statements so far: total calls, and calls of COMMIT (its transactions). */
export interface StatementStats {
  readonly calls: number;
  readonly commits: number;
  readonly byQuery: { query: string; calls: number; ms: number }[];
}

/** What `role` has run in this pool's database so far (pg_stat_statements). */
export async function statementsOf(pool: pg.Pool, role: string): Promise<StatementStats> {
  const { rows } = await pool.query<{ query: string; calls: string; ms: number }>(
    `SELECT s.query, s.calls::text AS calls, s.total_exec_time AS ms
     FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
     WHERE r.rolname = $1 AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [role],
  );
  let calls = 0;
  let commits = 0;
  const byQuery = rows.map((r) => ({ query: r.query, calls: Number(r.calls), ms: r.ms }));
  for (const r of byQuery) {
    calls += r.calls;
    if (/^\s*commit\b/i.test(r.query)) commits += r.calls;
  }
  return { calls, commits, byQuery };
}

/** pg_stat_database counters for the current database (flushed by backends at most once a second). */
export async function databaseCounters(pool: pg.Pool): Promise<{ xactCommit: number; xactRollback: number; deadlocks: number }> {
  const { rows } = await pool.query<{ c: string; r: string; d: string }>(
    `SELECT xact_commit::text AS c, xact_rollback::text AS r, deadlocks::text AS d FROM pg_stat_database WHERE datname = current_database()`,
  );
  const row = rows[0]!;
  return { xactCommit: Number(row.c), xactRollback: Number(row.r), deadlocks: Number(row.d) };
}

export const controllerStatements = (pool: pg.Pool): Promise<StatementStats> => statementsOf(pool, CONTROLLER_ROLE);

/** Forgets what `role` ran in this pool's database, to measure one phase alone. */
export async function resetStatementsOf(pool: pg.Pool, role: string): Promise<void> {
  await pool.query(
    `SELECT pg_stat_statements_reset((SELECT oid FROM pg_roles WHERE rolname = $1), (SELECT oid FROM pg_database WHERE datname = current_database()))`,
    [role],
  );
}
