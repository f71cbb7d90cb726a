import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { overcommittedNodes } from '../support/fixtures.js';
import {
  call,
  connectionsByApplication,
  describeProcesses,
  rssMiB,
  sleep,
  startAgents,
  startServe,
  steadyEnv,
  stopGracefully,
  unconvergedDeployments,
  userTokenFor,
  waitUntilClean,
  type Answer,
  type ChaosProcess,
} from '../support/chaos-cluster.js';
import { PATIENCE_MS } from '../support/patience.js';

/**
 * Scenario 6 of issue 7, load held (long mode only): 30 minutes (STEADY_SOAK_MINUTES) of mixed load —
 * deploys, scales, stops, starts, deletes, status reads, lists, node listings, agent heartbeats and
 * reports, a few failing starts — against an API process, a controller process and an agent process.
 * Every 5 s it samples each process's RSS and the database's connections (pg_stat_activity). It
 * passes when no request failed (5xx or no answer), nothing logged an error, memory levels off and
 * connections stay within the pools. The samples go to test/chaos/results/, a summary to stdout.
 */

const MINUTES = Number(process.env.STEADY_SOAK_MINUTES ?? 30);
const SAMPLE_MS = 5_000;
const LIVE_DEPLOYMENTS = 60;
const POOL_MAX = 10;
const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');

interface Sample {
  t_s: number;
  rss_mib: Record<string, number | null>;
  connections: Record<string, number>;
  requests: number;
  failures: number;
  replica_rows: number;
}

describe('load held', () => {
  let testDb: TestDatabase;
  const procs: ChaosProcess[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
    const env = steadyEnv(testDb.url!, {
      STEADY_DB_POOL_MAX: String(POOL_MAX),
      STEADY_RESYNC_PERIOD: '10s',
      STEADY_RETENTION: '2m',
      STEADY_BACKOFF_BASE: '1s',
      STEADY_BACKOFF_MAX: '10s',
      // One user at ~45 requests/s from four workers, with bursts: this measures leaks under load, not the per-caller limit.
      STEADY_RATE_LIMIT: '0',
    });
    const api = await startServe('api', 'api', env);
    const controller = await startServe('controller', 'controller', env);
    procs.push(api.proc, controller.proc);
    procs.push(await startAgents('agents', api.url, env, { nodes: 12, prefix: 'soak', heartbeat: '1s', startDelay: '300ms', failRate: 0.01 }));
    apiUrl = api.url;
  }, 180_000);
  let apiUrl = '';

  afterAll(async () => {
    await Promise.all(procs.map((p) => stopGracefully(p)));
    await testDb?.destroy();
  });

  it(`holds ${MINUTES} minutes of mixed load without errors or unbounded growth`, async () => {
    onTestFailed(() => console.log(describeProcesses(procs)));
    const db = testDb.database.db;
    const dbName = new URL(testDb.url!).pathname.slice(1);
    const token = await userTokenFor('soak-user');
    const admin = await userTokenFor('soak-admin', ['admin']);
    const live: string[] = [];
    const failures: string[] = [];
    let requests = 0;
    let serial = 0;
    const check = (what: string, a: Answer, ok: number[]): Answer => {
      requests++;
      if (a.status === 0 || a.status >= 500 || !ok.includes(a.status)) failures.push(`${what}: ${a.status} ${a.networkError ?? a.text.slice(0, 200)}`);
      return a;
    };
    const deploy = async (): Promise<void> => {
      const body = {
        name: `soak-${serial++}`,
        container_image: 'nginx:1.27',
        target_replicas: 1 + Math.floor(Math.random() * 3),
        resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 },
      };
      const a = check('deploy', await call(apiUrl, 'POST', '/api/deployment/deploy', { token, body }), [201]);
      if (a.status === 201) live.push((a.json as { deployment_id: string }).deployment_id);
    };
    while (live.length < LIVE_DEPLOYMENTS / 2) await deploy();

    const endAt = performance.now() + MINUTES * 60_000;
    const busy = new Set<string>();
    const worker = async (): Promise<void> => {
      while (performance.now() < endAt) {
        const roll = Math.random();
        const id = live[Math.floor(Math.random() * live.length)];
        if (roll < 0.08 || id === undefined) {
          if (live.length < LIVE_DEPLOYMENTS) await deploy();
        } else if (busy.has(id)) {
          // One command at a time per deployment; read instead.
          check('list', await call(apiUrl, 'GET', '/api/deployment/list?limit=20', { token }), [200]);
        } else {
          busy.add(id);
          if (roll < 0.35) check('scale', await call(apiUrl, 'POST', `/api/deployment/scale/${id}`, { token, body: { target_replicas: 1 + Math.floor(Math.random() * 4) } }), [200]);
          else if (roll < 0.42) check('stop', await call(apiUrl, 'POST', `/api/deployment/${id}/stop`, { token }), [200]);
          else if (roll < 0.52) check('start', await call(apiUrl, 'POST', `/api/deployment/${id}/start`, { token }), [200]);
          else if (roll < 0.56) {
            const a = check('delete', await call(apiUrl, 'DELETE', `/api/deployment/${id}`, { token }), [200, 204]);
            if (a.status < 300) live.splice(live.indexOf(id), 1);
          } else if (roll < 0.9) check('status', await call(apiUrl, 'GET', `/api/deployment/status/${id}`, { token }), [200]);
          else if (roll < 0.96) check('list', await call(apiUrl, 'GET', '/api/deployment/list?limit=50', { token }), [200]);
          else check('nodes', await call(apiUrl, 'GET', '/api/nodes', { token: admin }), [200]);
          busy.delete(id);
        }
        await sleep(40 + Math.random() * 80);
      }
    };

    const samples: Sample[] = [];
    const started = performance.now();
    const sampler = (async () => {
      while (performance.now() < endAt) {
        const replicaRows = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM deployment_replicas`.execute(db)).rows[0]!.n;
        samples.push({
          t_s: Math.round((performance.now() - started) / 1000),
          rss_mib: Object.fromEntries(procs.map((p) => [p.name, rssMiB(p.pid)])),
          connections: await connectionsByApplication(db, dbName),
          requests,
          failures: failures.length,
          replica_rows: replicaRows,
        });
        const last = samples.at(-1)!;
        if (samples.length % 12 === 1) {
          console.log(`[soak] ${last.t_s}s rss ${JSON.stringify(last.rss_mib)} conns ${JSON.stringify(last.connections)} requests ${requests} failures ${failures.length} replica rows ${replicaRows}`);
        }
        await sleep(SAMPLE_MS);
      }
    })();
    await Promise.all([...Array.from({ length: 4 }, worker), sampler]);

    await waitUntilClean('convergence after the soak', () => unconvergedDeployments(db), PATIENCE_MS);
    expect(await overcommittedNodes(db)).toEqual([]);

    // Memory levels off: after a warm-up, the last third of the run is not materially above the middle third.
    const warm = samples.filter((s) => s.t_s >= Math.min(180, (MINUTES * 60) / 5));
    const third = Math.floor(warm.length / 3);
    const mean = (xs: (number | null)[]): number => {
      const v = xs.filter((x): x is number => x !== null);
      return Math.round((v.reduce((a, b) => a + b, 0) / Math.max(1, v.length)) * 10) / 10;
    };
    const curve: Record<string, { first: number; middle: number; last: number; max: number }> = {};
    for (const p of procs) {
      const of = (part: Sample[]) => mean(part.map((s) => s.rss_mib[p.name] ?? null));
      curve[p.name] = {
        first: of(warm.slice(0, third)),
        middle: of(warm.slice(third, 2 * third)),
        last: of(warm.slice(2 * third)),
        max: Math.max(...samples.map((s) => s.rss_mib[p.name] ?? 0)),
      };
    }
    const totalConnections = samples.map((s) => Object.values(s.connections).reduce((a, b) => a + b, 0));
    const summary = {
      minutes: MINUTES,
      samples: samples.length,
      requests,
      failures: failures.length,
      rss_mib: curve,
      connections: { max: Math.max(...totalConnections), last: totalConnections.at(-1), by_application_last: samples.at(-1)?.connections },
      replica_rows: { max: Math.max(...samples.map((s) => s.replica_rows)), last: samples.at(-1)?.replica_rows },
    };
    fs.mkdirSync(RESULTS, { recursive: true });
    const file = path.join(RESULTS, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(file, `${JSON.stringify({ summary, samples }, null, 1)}\n`);
    console.log(`[soak] summary ${JSON.stringify(summary)}\n[soak] samples in ${path.relative(process.cwd(), file)}`);

    const dbWarnings = procs.flatMap((p) => p.warnings.filter((w) => /database unavailable|deadlock|could not serialize/.test(w)).map((w) => `${p.name}: ${w}`));
    if (failures.length > 0 || dbWarnings.length > 0) console.log(`[soak] failures:\n${failures.slice(0, 20).join('\n')}\n[soak] database warnings:\n${dbWarnings.slice(0, 20).join('\n')}`);
    expect(failures.slice(0, 20)).toEqual([]);
    expect(procs.every((p) => p.alive)).toBe(true);
    expect(procs.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`))).toEqual([]);
    for (const [name, c] of Object.entries(curve)) {
      expect(c.last, `${name} RSS ${JSON.stringify(c)}`).toBeLessThanOrEqual(c.middle * 1.15 + 20);
    }
    // Two pools, the listener and the election's own connection, at most, and no creep.
    expect(summary.connections.max).toBeLessThanOrEqual(2 * POOL_MAX + 2);
  }, (MINUTES + 10) * 60_000);
});
