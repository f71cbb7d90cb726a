import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { openPostgres } from '../../src/db/postgres.js';
import type { Database } from '../../src/db/database.js';
import { silentLogger } from '../support/databases.js';
import { startPostgresServer, type PostgresServer } from '../support/postgres-server.js';
import {
  LEAKY_BODY,
  LONG,
  call,
  describeProcesses,
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
import { LONG_TEST_MS, PATIENCE_MS } from '../support/patience.js';

/**
 * Scenario 2 of issue 7: PostgreSQL stops (fast and immediate shutdown) under load and comes back.
 * A server of its own, so the other test files' databases are never disturbed. The daemon must not
 * exit; while the database is away /readyz is 503 and API calls are 503 within a bounded time
 * (never a 500, never a hang, never a stack trace); when it is back, the NOTIFY listener is in place
 * again and work resumes by itself.
 */

const RESTARTS: readonly ('fast' | 'immediate')[] = LONG ? ['fast', 'immediate', 'fast', 'immediate', 'fast', 'immediate'] : ['fast', 'immediate'];
const AWAY_MS = 4_000;
/** Longer than the test: a convergence after the database is back can only be NOTIFY's doing. */
const RESYNC_MS = 3_600_000;
/** A client gives up on an answer after this long: only a hang takes that long (the pool's connect timeout is 5 s). */
const HANG_MS = 60_000;

interface Timed {
  readonly what: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly answer: Answer;
}

describe('database restart under load', () => {
  let server: PostgresServer;
  let database: Database;
  const procs: ChaosProcess[] = [];
  let daemon: ChaosProcess;
  let url = '';

  beforeAll(async () => {
    server = await startPostgresServer();
    const env = steadyEnv(server.url, {
      STEADY_LEASE_DURATION: '3s',
      STEADY_LEASE_RENEW: '1s',
      STEADY_LEASE_RETRY: '300ms',
      STEADY_RESYNC_PERIOD: `${RESYNC_MS}ms`,
      // Load from one user as fast as it goes: the per-caller limit would throttle the load this test needs.
      STEADY_RATE_LIMIT: '0',
    });
    const started = await startServe('daemon', 'all', env, ['--migrate']);
    daemon = started.proc;
    url = started.url;
    procs.push(daemon, await startAgents('agents', url, env, { nodes: 4, prefix: 'dbr', heartbeat: '500ms', startDelay: '100ms' }));
    database = openPostgres({ url: server.url, poolMax: 2, logger: silentLogger });
  }, LONG_TEST_MS);

  afterAll(async () => {
    await Promise.all(procs.map((p) => stopGracefully(p)));
    await database?.close();
    await server?.destroy();
  });

  it(`survives ${RESTARTS.length} restarts (${RESTARTS.join(', ')}): 503 while away, then work resumes by itself`, async () => {
    onTestFailed(() => console.log(describeProcesses(procs)));
    const token = await userTokenFor('chaos-dbr-user');
    const spec = (name: string, target: number) => ({
      name,
      container_image: 'nginx:1.27',
      target_replicas: target,
      resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 },
    });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await call(url, 'POST', '/api/deployment/deploy', { token, body: spec(`dbr-${i}`, 2) });
      expect(a.status, a.text).toBe(201);
      ids.push((a.json as { deployment_id: string }).deployment_id);
    }
    await waitUntilClean('initial convergence', () => unconvergedDeployments(database.db), PATIENCE_MS);

    // Load: reads and writes from four clients, all the time.
    const log: Timed[] = [];
    let loading = true;
    let counter = 0;
    const load = Array.from({ length: 4 }, async (_, worker) => {
      while (loading) {
        const id = ids[Math.floor(Math.random() * ids.length)]!;
        const roll = Math.random();
        const startedAt = performance.now();
        let what: string;
        let answer: Answer;
        if (roll < 0.4) {
          what = 'status';
          answer = await call(url, 'GET', `/api/deployment/status/${id}`, { token, timeoutMs: HANG_MS });
        } else if (roll < 0.6) {
          what = 'list';
          answer = await call(url, 'GET', '/api/deployment/list?limit=5', { token, timeoutMs: HANG_MS });
        } else if (roll < 0.9) {
          what = 'scale';
          answer = await call(url, 'POST', `/api/deployment/scale/${id}`, { token, body: { target_replicas: 1 + Math.floor(Math.random() * 3) }, timeoutMs: HANG_MS });
        } else if (counter < 40) {
          what = 'deploy';
          answer = await call(url, 'POST', '/api/deployment/deploy', { token, body: spec(`dbr-load-${worker}-${counter++}`, 1), timeoutMs: HANG_MS });
        } else {
          what = 'status';
          answer = await call(url, 'GET', `/api/deployment/status/${id}`, { token, timeoutMs: HANG_MS });
        }
        log.push({ what, startedAt, endedAt: performance.now(), answer });
        await sleep(50);
      }
    });

    const summary: string[] = [];
    for (const mode of RESTARTS) {
      await sleep(1_500);
      await server.stop(mode);
      const awayFrom = performance.now();
      // While away: readiness says so, liveness does not, and nothing hangs.
      const probes: Answer[] = [];
      while (performance.now() - awayFrom < AWAY_MS) {
        probes.push(await call(url, 'GET', '/readyz', { timeoutMs: HANG_MS }));
        expect((await call(url, 'GET', '/healthz')).status).toBe(200);
        await sleep(250);
      }
      const awayUntil = performance.now();
      await server.start();
      expect(probes.map((p) => p.status)).not.toContain(200);
      // Every probe answered (none hung until the client gave up), and each one 503.
      expect(new Set(probes.map((p) => p.status))).toEqual(new Set([503]));
      expect(daemon.alive).toBe(true);

      const readyMs = await waitUntilClean(
        `readiness after the ${mode} restart`,
        async () => ((await call(url, 'GET', '/readyz')).status === 200 ? [] : ['not ready']),
        PATIENCE_MS,
        100,
      );
      // Requests that began and ended entirely inside the outage were all refused with 503.
      const during = log.filter((t) => t.startedAt >= awayFrom && t.endedAt <= awayUntil);
      expect(during.length).toBeGreaterThan(0);
      expect(during.filter((t) => t.answer.status !== 503).map((t) => `${t.what} ${t.answer.status} ${t.answer.text.slice(0, 200)}`)).toEqual([]);
      for (const t of during) expect((t.answer.json as { error: { code: string } }).error.code).toBe('service_unavailable');

      // Work resumes by itself: a new deployment converges, and then a scale converges, with the
      // resync an hour away: only the re-established NOTIFY listener can explain it.
      const fresh = await call(url, 'POST', '/api/deployment/deploy', { token, body: spec(`dbr-after-${mode}-${summary.length}`, 2) });
      expect(fresh.status, fresh.text).toBe(201);
      // The load goes on changing the other deployments, so only this one (which nothing else touches) is watched.
      const freshId = (fresh.json as { deployment_id: string }).deployment_id;
      const freshUnconverged = async () => (await unconvergedDeployments(database.db)).filter((d) => d.id === freshId);
      await waitUntilClean(`convergence after the ${mode} restart`, freshUnconverged, PATIENCE_MS);
      await sleep(1_000);
      expect((await call(url, 'POST', `/api/deployment/scale/${freshId}`, { token, body: { target_replicas: 3 } })).status).toBe(200);
      const notifyMs = await waitUntilClean(`NOTIFY-driven convergence after the ${mode} restart`, freshUnconverged, PATIENCE_MS, 100);
      summary.push(`${mode}: ${during.length} requests answered 503 while away, ready ${Math.round(readyMs)} ms after start, scale converged in ${Math.round(notifyMs)} ms`);
    }
    loading = false;
    await Promise.all(load);
    await waitUntilClean('convergence once the load stopped', () => unconvergedDeployments(database.db), PATIENCE_MS);

    // Across the whole run: never a 500 or another 5xx than 503, never a hang, never a leaked internal.
    const wrong = log.filter((t) => (t.answer.status >= 500 && t.answer.status !== 503) || t.answer.status === 0);
    expect(wrong.map((t) => `${t.what} ${t.answer.status} ${Math.round(t.endedAt - t.startedAt)} ms ${t.answer.networkError ?? t.answer.text.slice(0, 200)}`)).toEqual([]);
    expect(log.filter((t) => LEAKY_BODY.test(t.answer.text)).map((t) => t.answer.text.slice(0, 300))).toEqual([]);
    expect(daemon.alive).toBe(true);
    expect(procs.flatMap((p) => p.errors.map((e) => `${p.name}: ${e}`))).toEqual([]);
    // The controller noticed and recovered: it lost the lease or the listener, and got it back.
    expect(daemon.tail()).toMatch(/notification listener reconnected|became the leader/);
    const count503 = log.filter((t) => t.answer.status === 503).length;
    console.log(`[faults-db-restart] ${RESTARTS.length} restarts survived; ${log.length} requests, ${count503} answered 503 while away, max answer ${Math.round(Math.max(...log.map((t) => t.endedAt - t.startedAt)))} ms; ${summary.join('; ')}`);
  }, LONG_TEST_MS);
});
