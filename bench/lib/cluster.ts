import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import type pg from 'pg';
import { AfterCommitWake } from '../../src/db/after-commit-wake.js';
import type { Tables } from '../../src/db/tables.js';
import { API_ROLE, CONTROLLER_ROLE, type BenchPostgres } from './postgres.js';
import { serve, type SteadyChild } from './steady.js';

export interface BenchEnv {
  readonly quick: boolean;
  readonly pg: BenchPostgres;
  /** Appended to every scenario name of this server's figures: '' when durable, ' · fsync off' otherwise. */
  readonly label: string;
  /** Baselines on this server, measured once per run and reused by every scenario. */
  readonly baselines: Baselines;
  readonly secret: string;
  /** Where controller CPU profiles go when --profile is given, else null. */
  readonly profileDir: string | null;
  log(message: string): void;
}

export interface Baselines {
  /** pgbench TPC-B with `clients` clients (scale = clients), once per client count per server. */
  pgbench(clients: number): Promise<{ tps: number; latencyMs: number }>;
}

/**
 * Nodes as the agents would register them, written directly: the controller is what is measured.
 * Big enough that capacity never limits a scenario (256 replicas of 0.5 CPU / 512 MB each).
 */
export async function insertNodes(pool: pg.Pool, count: number, prefix = 'node'): Promise<void> {
  await pool.query(
    `INSERT INTO nodes (name, cpu_cores, memory_mb, gpu_units, storage_gb, last_heartbeat_at)
     SELECT $1 || '-' || i, 128, 524288, 0, 100000, now() FROM generate_series(1, $2::int) i`,
    [prefix, count],
  );
}

/** The agents' part, for every node at once and with zero delay: start what is placed, finish what is stopping. */
export async function agentsTick(pool: pg.Pool): Promise<void> {
  for (const text of [
    `UPDATE deployment_replicas SET status = 'running', started_at = now(), updated_at = now()
     WHERE node_id IS NOT NULL AND status IN ('pending', 'starting')`,
    `UPDATE deployment_replicas SET status = 'stopped', stopped_at = now(), updated_at = now() WHERE status = 'stopping'`,
  ]) {
    for (let attempt = 1; ; attempt++) {
      try {
        await pool.query(text);
        break;
      } catch (err) {
        // A bulk update across many nodes can deadlock with a reconcile; like any agent, try again.
        if ((err as { code?: string }).code !== '40P01' || attempt >= 10) throw err;
      }
    }
  }
}

/**
 * Agents as they really behave: each node's agent reports only its own replicas, in its own small
 * transaction (a replica stopping on a node releases that node's allocation, which locks that node's
 * row only), and wakes the controller after its commit as the API's report route does (the
 * triggers kept quiet, the deployments' ids of reports that commit together sent in one
 * notification: AfterCommitWake). Every `everyMs`, each node with work starts what is placed on it
 * and finishes what it was told to stop, with zero delay. Agents run on their own clocks, not in
 * step: the nodes are spread over slots of about 10 ms across the period (by a hash of their id),
 * and each slot's nodes act at their own moment of every period.
 */
export function startAgents(pool: pg.Pool, everyMs: number): { stop(): Promise<void> } {
  let stopped = false;
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  const wake = new AfterCommitWake(db, () => undefined);
  const slots = Math.max(1, Math.min(25, Math.round(everyMs / 10)));
  const slotMs = everyMs / slots;
  const perNode = async (nodeId: string): Promise<void> => {
    const ids = await db.transaction().execute(async (tx) => {
      await sql`SELECT set_config('steady.quiet', 'on', true), set_config('steady.events_wake', 'after_commit', true)`.execute(tx);
      const { rows } = await sql<{ deployment_id: string }>`
        UPDATE deployment_replicas
        SET status = CASE WHEN status = 'stopping' THEN 'stopped'::replicastatus ELSE 'running'::replicastatus END,
            started_at = CASE WHEN status = 'stopping' THEN started_at ELSE now() END,
            stopped_at = CASE WHEN status = 'stopping' THEN now() ELSE stopped_at END,
            updated_at = now()
        WHERE node_id = ${nodeId} AND status IN ('pending', 'starting', 'stopping')
        RETURNING deployment_id`.execute(tx);
      return rows.map((r) => r.deployment_id);
    });
    if (ids.length > 0) wake.deployments(ids);
  };
  const runSlot = async (slot: number): Promise<void> => {
    const { rows } = await pool.query<{ node_id: string }>(
      `SELECT DISTINCT node_id FROM deployment_replicas
       WHERE node_id IS NOT NULL AND status IN ('pending', 'starting', 'stopping') AND abs(hashtext(node_id::text)) % $1 = $2`,
      [slots, slot],
    );
    const queue = rows.map((r) => r.node_id);
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let id = queue.shift(); id !== undefined; id = queue.shift()) await perNode(id).catch(() => undefined);
      }),
    );
  };
  const loop = (async () => {
    const started = performance.now();
    for (let tick = 0; !stopped; tick++) {
      try {
        await runSlot(tick % slots);
      } catch {
        // The next period tries again, as an agent would.
      }
      // A slot that ran late does not push the others back: the next one starts at its own moment.
      await new Promise((r) => setTimeout(r, Math.max(0, started + (tick + 1) * slotMs - performance.now())));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await wake.settled();
    },
  };
}

export async function placedReplicas(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM deployment_replicas WHERE node_id IS NOT NULL AND status IN ('pending', 'starting', 'running')`,
  );
  return rows[0]!.n;
}

/** Environment for `steady serve`; the controller and the API connect as their own roles (for pg_stat_statements). */
export function serveEnv(env: BenchEnv, database: string, role: 'api' | 'controller'): Record<string, string> {
  return {
    DATABASE_URL: env.pg.url(database, role === 'controller' ? CONTROLLER_ROLE : API_ROLE),
    JWT_SECRET: env.secret,
    // Agents are simulated by SQL and send no heartbeats: keep nodes ready for the whole run.
    STEADY_NODE_GRACE_PERIOD: '24h',
    // The benchmarks are one client at full speed: measure the work, not the per-client limit.
    STEADY_RATE_LIMIT: '0',
  };
}

/**
 * Node flags that write CPU profiles of the process when --profile is given, one directory per
 * process: each thread (a loader thread too, when run from source) writes its own file there.
 */
export function profileArgs(env: BenchEnv, name: string): string[] {
  return env.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(env.profileDir, `${name}-${Date.now()}`)}`] : [];
}

export async function startApi(env: BenchEnv, database: string, migrate = true): Promise<{ proc: SteadyChild; url: string }> {
  return serve(`api(${database})`, 'api', serveEnv(env, database, 'api'), { migrate, nodeArgs: profileArgs(env, `api-${database}`) });
}

export async function startController(env: BenchEnv, database: string, label: string): Promise<{ proc: SteadyChild; url: string }> {
  return serve(`controller(${database})`, 'controller', serveEnv(env, database, 'controller'), { nodeArgs: profileArgs(env, `controller-${label}`) });
}

/** Sum of a Prometheus metric's samples, from the process's /metrics. */
export async function metricSum(url: string, name: string): Promise<number> {
  return (await metricSums(url, [name]))[0]!;
}

/** Sums of several Prometheus metrics' samples, from one read of /metrics. */
export async function metricSums(url: string, names: readonly string[]): Promise<number[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return names.map((name) => sumOf(text, name));
}

function sumOf(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * The peaks of a steady process's V8 heap (used and reserved) and of its memory outside the heap,
 * from its /metrics, sampled every `everyMs`: where its resident memory goes.
 */
export class HeapWatcher {
  private readonly timer: NodeJS.Timeout;
  private readonly peaks = { used: 0, total: 0, external: 0 };

  constructor(
    private readonly url: string,
    everyMs = 1_000,
  ) {
    this.timer = setInterval(() => void this.sample().catch(() => undefined), everyMs);
    this.timer.unref();
  }

  private async sample(): Promise<void> {
    const [used, total, external] = await metricSums(this.url, [
      'steady_nodejs_heap_size_used_bytes',
      'steady_nodejs_heap_size_total_bytes',
      'steady_nodejs_external_memory_bytes',
    ]);
    this.peaks.used = Math.max(this.peaks.used, used!);
    this.peaks.total = Math.max(this.peaks.total, total!);
    this.peaks.external = Math.max(this.peaks.external, external!);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** For a figure's note. */
  describe(): string {
    const mb = (b: number) => `${Math.round(b / 1_048_576)} MB`;
    return `peak V8 heap used ${mb(this.peaks.used)} of ${mb(this.peaks.total)} reserved; outside the heap ${mb(this.peaks.external)}`;
  }
}

/** Waits until the controller has done nothing for `quietMs` (no reconcile counted, queue empty). */
export async function waitControllerQuiet(controllerUrl: string, quietMs: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = -1;
  let since = performance.now();
  for (;;) {
    const [n, depth] = (await metricSums(controllerUrl, ['steady_reconciles_total', 'steady_workqueue_depth'])) as [number, number];
    if (n !== last || depth > 0) {
      last = n;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) {
      return;
    }
    if (performance.now() > deadline) throw new Error('controller never went quiet');
    await new Promise((r) => setTimeout(r, 250));
  }
}
