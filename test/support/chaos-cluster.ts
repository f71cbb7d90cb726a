import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';
import { signToken } from '../../src/api/tokens.js';
import type { Tables } from '../../src/db/tables.js';
import { PATIENCE_MS } from './patience.js';

/**
 * Real steady processes for the fault scenarios (test/e2e/faults-*.test.ts, test/chaos/*.chaos.ts):
 * a spawner that keeps only the tail of the output (a 30-minute soak logs far more than a test
 * process should hold), an HTTP client that records every answer, and the invariant queries.
 */

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/steady.js');

export const CHAOS_SECRET = 'chaos-secret-that-is-long-enough-for-hs256-0123456789';

/** `STEADY_CHAOS=long` (set by `npm run test:chaos`) turns the default counts into the big ones. */
export const LONG = process.env.STEADY_CHAOS === 'long';

/** A seeded generator (mulberry32), so a failing run can be replayed: the seed is in every message. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const testSeed = (): number => Number(process.env.STEADY_TEST_SEED ?? Date.now() % 1_000_000);
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export { freePort } from './postgres-server.js';

// ---------------------------------------------------------------- processes

export interface ChaosProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last ~256 KiB of stdout and stderr. */
  tail(): string;
  /** Log lines at level error or fatal (pino 50/60), and anything that looks like a stack trace. */
  readonly errors: string[];
  /** The first 200 log lines at level warn (pino 40). */
  readonly warnings: string[];
  /** Resolves with the first line matching, from now on or already in the tail. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited(): Promise<number | string>;
  readonly alive: boolean;
  kill(signal?: NodeJS.Signals): void;
}

const TAIL_BYTES = 256 * 1024;

export function spawnSteady(name: string, args: readonly string[], env: Record<string, string | undefined>): ChaosProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_FORMAT: 'json', STEADY_FROM_SOURCE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  let partial = '';
  let alive = true;
  const errors: string[] = [];
  const warnings: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    tail = (tail + text).slice(-TAIL_BYTES);
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (/"level":(50|60)/.test(line) || /^\s+at .+:\d+:\d+\)?$/.test(line)) errors.push(line.slice(0, 2000));
      else if (/"level":40/.test(line) && warnings.length < 200) warnings.push(line.slice(0, 2000));
      for (const w of watchers) w(line);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      alive = false;
      resolve(code ?? signal ?? -1);
    }),
  );
  return {
    name,
    child,
    pid: child.pid!,
    tail: () => tail,
    errors,
    warnings,
    get alive() {
      return alive;
    },
    waitFor(pattern, timeoutMs = PATIENCE_MS) {
      const already = tail.match(pattern);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const done = (): void => {
          watchers.delete(watch);
          clearTimeout(timer);
        };
        const watch = (line: string): void => {
          const match = line.match(pattern);
          if (match) {
            done();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: timed out waiting for ${pattern}; output:\n${tail.slice(-3000)}`));
        }, timeoutMs);
        watchers.add(watch);
        void exit.then((code) =>
          setTimeout(() => {
            if (!watchers.has(watch)) return;
            done();
            reject(new Error(`${name}: exited (${code}) before ${pattern}; output:\n${tail.slice(-3000)}`));
          }, 50),
        );
      });
    },
    exited: () => exit,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}

/** The environment every steady process of a scenario shares. */
export function steadyEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: databaseUrl, JWT_SECRET: CHAOS_SECRET, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: '0', ...extra };
}

/** `steady serve --role R`, resolved once it logs "steady is up", with its URL. */
export async function startServe(
  name: string,
  role: 'api' | 'controller' | 'all',
  env: Record<string, string>,
  extraArgs: readonly string[] = [],
): Promise<{ proc: ChaosProcess; url: string }> {
  const proc = spawnSteady(name, ['serve', '--role', role, ...extraArgs], env);
  try {
    const [, url] = await proc.waitFor(/"url":"(http:\/\/[^"]+)".*steady is up/);
    return { proc, url: url! };
  } catch (err) {
    // Never leave a process behind that no test holds (it needs LOG_LEVEL info or lower to say it is up).
    proc.kill('SIGKILL');
    throw err;
  }
}

/** `steady agent --simulate` with a node token per node (minted from JWT_SECRET); resolves once every node registered. */
export async function startAgents(
  name: string,
  apiUrl: string,
  env: Record<string, string>,
  options: { nodes: number; prefix: string; heartbeat?: string; startDelay?: string; failRate?: number },
): Promise<ChaosProcess> {
  const args = ['agent', '--simulate', '--api', apiUrl, '--nodes', String(options.nodes), '--name-prefix', options.prefix];
  args.push('--heartbeat', options.heartbeat ?? '1s', '--start-delay', options.startDelay ?? '200ms');
  if (options.failRate !== undefined) args.push('--fail-rate', String(options.failRate));
  const proc = spawnSteady(name, args, env);
  try {
    await proc.waitFor(/simulated node agents started/);
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return proc;
}

/** SIGTERM, and the exit code (a clean stop is 0); SIGKILL if it takes longer than the daemon's 10 s budget. */
export async function stopGracefully(proc: ChaosProcess, budgetMs = 15_000): Promise<number | string> {
  if (!proc.alive) return proc.exited();
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), budgetMs);
  try {
    return await proc.exited();
  } finally {
    clearTimeout(timer);
  }
}

/** Resident set size of a process, in MiB, from /proc; null once it is gone. */
export function rssMiB(pid: number): number | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return Number.isFinite(kb) ? Math.round((kb / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- HTTP

export const userTokenFor = (sub: string, roles?: string[]): Promise<string> => signToken(CHAOS_SECRET, { sub, roles, ttlSec: 6 * 3600 });

export interface Answer {
  readonly status: number;
  readonly text: string;
  readonly json: unknown;
  readonly ms: number;
  /** Set when no HTTP answer came (connection refused, reset, timeout). */
  readonly networkError?: string;
}

/** One request; never throws: a network failure is an Answer with status 0. */
export async function call(
  baseUrl: string,
  method: string,
  pathname: string,
  options: { token?: string; body?: unknown; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const started = performance.now();
  const headers: Record<string, string> = { ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}), ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['Content-Type'] ??= 'application/json';
  }
  try {
    const res = await fetch(baseUrl + pathname, { method, headers, body, signal: AbortSignal.timeout(options.timeoutMs ?? PATIENCE_MS) });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: res.status, text, json, ms: performance.now() - started };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { status: 0, text: '', json: null, ms: performance.now() - started, networkError: cause?.code ?? (err as Error).name ?? String(err) };
  }
}

/** A body that gives away internals: a stack frame, a source path, a SQL error. */
export const LEAKY_BODY = /\n\s+at |node_modules|\.ts:\d+|\.js:\d+|SQLSTATE|syntax error at|duplicate key|violates/i;

// ---------------------------------------------------------------- invariants

type Db = Kysely<Tables>;

/** Live deployments without exactly their target of active replicas, and stopped/deleted ones with any. */
export async function unconvergedDeployments(db: Db): Promise<{ id: string; status: string; target: number; active: number }[]> {
  const { rows } = await sql<{ id: string; status: string; target: number; active: number }>`
    SELECT d.id, d.status::text AS status, d.target_replicas AS target, coalesce(a.n, 0)::int AS active
    FROM deployments d
    LEFT JOIN (SELECT deployment_id, count(*) AS n FROM deployment_replicas
               WHERE status IN ('pending', 'starting', 'running') GROUP BY deployment_id) a ON a.deployment_id = d.id
    WHERE coalesce(a.n, 0) <> CASE WHEN d.status IN ('stopped', 'deleted', 'failed') THEN 0 ELSE d.target_replicas END`.execute(db);
  return rows;
}

/** Replicas whose deployment row is missing, or that are placed on a node that does not exist. */
export async function orphanReplicas(db: Db): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM deployment_replicas r
    LEFT JOIN deployments d ON d.id = r.deployment_id
    LEFT JOIN nodes n ON n.id = r.node_id
    WHERE d.id IS NULL OR (r.node_id IS NOT NULL AND n.id IS NULL)`.execute(db);
  return rows[0]!.n;
}

/**
 * Every status change has its history row: per deployment, the status rows form one unbroken chain
 * from `none` to the current status, and the `replicas:N` rows one chain from the created target to
 * the current target, and the `revision:N` rows one chain from revision 1 to the current revision.
 * Returns the breaks found.
 */
export async function historyBreaks(db: Db, createdTargets: ReadonlyMap<string, number>): Promise<string[]> {
  // One snapshot for both reads: the controller may be committing a status change (and its row) meanwhile.
  const { history, current } = await db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (tx) => ({
      history: await tx
        .selectFrom('deployment_status_history')
        .select(['deployment_id', 'old_status', 'new_status'])
        .orderBy('changed_at')
        .orderBy('id')
        .execute(),
      current: await tx.selectFrom('deployments').select(['id', 'status', 'target_replicas', 'revision']).execute(),
    }));
  const byDeployment = new Map<string, { old_status: string; new_status: string }[]>();
  for (const h of history) {
    const list = byDeployment.get(h.deployment_id) ?? [];
    list.push(h);
    byDeployment.set(h.deployment_id, list);
  }
  const breaks: string[] = [];
  for (const d of current) {
    let status = 'none';
    let target = createdTargets.get(d.id);
    let revision = 1;
    for (const h of byDeployment.get(d.id) ?? []) {
      // Rollout rows (progressing, complete, failed, blocked) say what a rollout did, beside the status chain.
      if (h.old_status.startsWith('rollout:')) continue;
      if (h.old_status.startsWith('revision:')) {
        if (h.old_status !== `revision:${revision}`) breaks.push(`${d.id}: revision ${revision} then ${h.old_status}→${h.new_status}`);
        revision = Number(h.new_status.slice('revision:'.length));
        continue;
      }
      if (h.old_status.startsWith('replicas:')) {
        if (target !== undefined && h.old_status !== `replicas:${target}`) breaks.push(`${d.id}: target ${target} then ${h.old_status}→${h.new_status}`);
        target = Number(h.new_status.slice('replicas:'.length));
        continue;
      }
      if (h.old_status !== status) breaks.push(`${d.id}: status ${status} then ${h.old_status}→${h.new_status}`);
      status = h.new_status;
    }
    if (status !== d.status) breaks.push(`${d.id}: history ends at ${status}, deployment is ${d.status}`);
    if (target !== undefined && target !== d.target_replicas) breaks.push(`${d.id}: history ends at replicas:${target}, target is ${d.target_replicas}`);
    if (revision !== d.revision) breaks.push(`${d.id}: history ends at revision:${revision}, deployment is at revision ${d.revision}`);
  }
  return breaks;
}

/** Rows per table and the latest updates: a rejected request must leave all of it as it was. */
export async function databaseFingerprint(db: Db): Promise<Record<string, unknown>> {
  const { rows } = await sql<Record<string, unknown>>`
    SELECT (SELECT count(*)::int FROM users) AS users,
           (SELECT count(*)::int FROM deployments) AS deployments,
           (SELECT coalesce(sum(generation), 0)::int FROM deployments) AS generations,
           (SELECT max(updated_at)::text FROM deployments) AS deployments_updated,
           (SELECT string_agg(status::text || ':' || target_replicas, ',' ORDER BY id) FROM deployments) AS deployment_states,
           (SELECT count(*)::int FROM deployment_resources) AS resources,
           (SELECT count(*)::int FROM deployment_status_history) AS history,
           (SELECT count(*)::int FROM deployment_replicas) AS replicas,
           (SELECT max(updated_at)::text FROM deployment_replicas) AS replicas_updated,
           (SELECT string_agg(status::text || ':' || coalesce(container_id, ''), ',' ORDER BY id) FROM deployment_replicas) AS replica_states,
           (SELECT count(*)::int FROM nodes) AS nodes,
           (SELECT max(updated_at)::text FROM nodes) AS nodes_updated,
           (SELECT string_agg(name || ':' || status::text || ':' || cpu_cores || ':' || labels::text, ',' ORDER BY id) FROM nodes) AS node_states`.execute(db);
  return rows[0]!;
}

/**
 * Client connections to the database by application_name (pg_stat_activity), excluding our own.
 * Client backends only: autovacuum workers show up in the same view with the database's name.
 */
export async function connectionsByApplication(db: Db, database: string): Promise<Record<string, number>> {
  const { rows } = await sql<{ app: string; n: number }>`
    SELECT coalesce(application_name, '') AS app, count(*)::int AS n FROM pg_stat_activity
    WHERE datname = ${database} AND backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1`.execute(db);
  return Object.fromEntries(rows.map((r) => [r.app, r.n]));
}

/** Polls until `check` returns an empty list (or zero); resolves with the milliseconds it took, or throws with the last findings. */
export async function waitUntilClean<T>(
  what: string,
  check: () => Promise<readonly T[] | number>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<number> {
  const started = performance.now();
  let last: readonly T[] | number = [];
  for (;;) {
    last = await check();
    if (typeof last === 'number' ? last === 0 : last.length === 0) return performance.now() - started;
    if (performance.now() - started > timeoutMs) {
      throw new Error(`${what}: still not clean after ${timeoutMs} ms: ${JSON.stringify(last).slice(0, 2000)}`);
    }
    await sleep(intervalMs);
  }
}

/** The last output of each process, for a failed test's report. */
export function describeProcesses(procs: readonly (ChaosProcess | undefined)[]): string {
  return procs
    .filter((p): p is ChaosProcess => p !== undefined)
    .map((p) => `----- ${p.name} (pid ${p.pid}, ${p.alive ? 'alive' : 'exited'}) -----\n${p.tail().slice(-4000)}`)
    .join('\n');
}
