import os from 'node:os';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { openPostgres } from '../../src/db/postgres.js';
import {
  LEAKY_BODY,
  call,
  describeProcesses,
  historyBreaks,
  orphanReplicas,
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
import { silentLogger } from '../support/databases.js';
import { driftedAllocations, overcommittedNodes } from '../support/fixtures.js';
import { LONG_TEST_MS, PATIENCE_MS } from '../support/patience.js';
import { startReplicatedPair, type ReplicatedPair } from '../support/postgres-replication.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/**
 * PostgreSQL failover with nothing acknowledged lost (issue 15). A primary and a synchronous standby;
 * steady (an API process, a controller process, simulated agents) reaches them through one TCP proxy,
 * the address a Patroni/HAProxy endpoint or an operator's service gives clients. Under a crowd of API
 * requests and agent reports the primary stops (immediate), the standby is promoted and the proxy
 * points at it. Then: every request answered 2xx is in the promoted database; while no primary was
 * reachable the API answered 503, never 500; the controller leads again and every invariant holds.
 */

/** How long no primary is reachable: the time an HA manager takes to notice and promote. */
const OUTAGE_MS = 4_000;
const WORKERS = 6;
const DEPLOYMENTS_PER_WORKER = 4;
const HANG_MS = 60_000;

interface Logged {
  readonly worker: number;
  readonly what: 'deploy' | 'scale' | 'status' | 'list';
  readonly deploymentId?: string;
  readonly name?: string;
  readonly target?: number;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly answer: Answer;
}

const spec = (name: string, target: number) => ({
  name,
  container_image: 'nginx:1.27',
  target_replicas: target,
  resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 },
});

describe('PostgreSQL failover', () => {
  let pair: ReplicatedPair;
  let proxy: TcpProxy;
  let promoted: Database | null = null;
  const procs: ChaosProcess[] = [];
  let api: ChaosProcess;
  let controller: ChaosProcess;
  let apiUrl = '';

  beforeAll(async () => {
    pair = await startReplicatedPair();
    proxy = await startTcpProxy(pair.primary.port);
    const env = steadyEnv(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`, {
      STEADY_LEASE_DURATION: '3s',
      STEADY_LEASE_RENEW: '1s',
      STEADY_LEASE_RETRY: '300ms',
      STEADY_RESYNC_PERIOD: '5s',
      STEADY_RATE_LIMIT: '0',
    });
    const served = await startServe('api', 'api', env, ['--migrate']);
    api = served.proc;
    apiUrl = served.url;
    controller = (await startServe('controller', 'controller', env)).proc;
    procs.push(api, controller, await startAgents('agents', apiUrl, env, { nodes: 8, prefix: 'ha', heartbeat: '500ms', startDelay: '100ms' }));
  }, LONG_TEST_MS);

  afterAll(async () => {
    await Promise.all(procs.map((p) => stopGracefully(p)));
    await promoted?.close();
    await proxy?.close();
    await pair?.destroy();
  });

  it('loses no acknowledged write, answers 503 while no primary is reachable, and leads again on the promoted standby', async () => {
    onTestFailed(() => console.log(describeProcesses(procs)));
    const token = await userTokenFor('ha-user');
    const log: Logged[] = [];

    // Each worker owns its deployments, so the writes to one deployment are in order.
    const owned: string[][] = [];
    for (let w = 0; w < WORKERS; w++) {
      owned.push([]);
      for (let i = 0; i < DEPLOYMENTS_PER_WORKER; i++) {
        const a = await call(apiUrl, 'POST', '/api/deployment/deploy', { token, body: spec(`ha-${w}-${i}`, 2) });
        expect(a.status, a.text).toBe(201);
        owned[w]!.push((a.json as { deployment_id: string }).deployment_id);
      }
    }

    let loading = true;
    const load = Array.from({ length: WORKERS }, async (_, worker) => {
      let serial = 0;
      // Each scale asks for another target than the worker's previous request for that deployment
      // (2 for the first), so a lost scale leaves a value the check can tell apart.
      const requested = new Map<string, number>();
      while (loading) {
        const ids = owned[worker]!;
        const id = ids[Math.floor(Math.random() * ids.length)]!;
        const roll = Math.random();
        const startedAt = performance.now();
        let entry: Omit<Logged, 'startedAt' | 'endedAt' | 'answer'>;
        let answer: Answer;
        if (roll < 0.45) {
          const previous = requested.get(id) ?? 2;
          const target = 1 + ((previous + Math.floor(Math.random() * 2)) % 3);
          requested.set(id, target);
          entry = { worker, what: 'scale', deploymentId: id, target };
          answer = await call(apiUrl, 'POST', `/api/deployment/scale/${id}`, { token, body: { target_replicas: target }, timeoutMs: HANG_MS });
        } else if (roll < 0.6) {
          const name = `ha-load-${worker}-${serial++}`;
          entry = { worker, what: 'deploy', name, target: 1 };
          answer = await call(apiUrl, 'POST', '/api/deployment/deploy', { token, body: spec(name, 1), timeoutMs: HANG_MS });
          if (answer.status === 201) {
            const created = (answer.json as { deployment_id: string }).deployment_id;
            ids.push(created);
            requested.set(created, 1);
          }
        } else if (roll < 0.85) {
          entry = { worker, what: 'status', deploymentId: id };
          answer = await call(apiUrl, 'GET', `/api/deployment/status/${id}`, { token, timeoutMs: HANG_MS });
        } else {
          entry = { worker, what: 'list' };
          answer = await call(apiUrl, 'GET', '/api/deployment/list?limit=10', { token, timeoutMs: HANG_MS });
        }
        log.push({ ...entry, startedAt, endedAt: performance.now(), answer });
        await sleep(20);
      }
    });

    await sleep(3_000);
    const okBefore = log.filter((l) => l.answer.status < 300).length;
    await pair.primary.stop('immediate');
    const stoppedAt = performance.now();
    await sleep(OUTAGE_MS);
    const promoteStart = performance.now();
    await pair.promote();
    proxy.retarget(pair.standby.port);
    const promotedAt = performance.now();
    const promotedAtWall = Date.now();
    promoted = openPostgres({ url: pair.standby.url, poolMax: 2, logger: silentLogger });
    const db = promoted.db;

    // The controller leads again (on the promoted server) and reconciles.
    await waitUntilClean(
      'a lease on the promoted server',
      async () => ((await sql<{ n: number }>`SELECT count(*)::int AS n FROM steady_leader WHERE expires_at > now()`.execute(db)).rows[0]!.n === 1 ? [] : ['no leader']),
      PATIENCE_MS,
      100,
    );
    await sleep(5_000);
    loading = false;
    await Promise.all(load);

    // Every request answered: never a 500 (nor any 5xx but 503), never no answer, never an internal leaked.
    const wrong = log.filter((l) => (l.answer.status >= 500 && l.answer.status !== 503) || l.answer.status === 0);
    expect(wrong.map((l) => `${l.what} ${l.answer.status} ${l.answer.networkError ?? l.answer.text.slice(0, 200)}`)).toEqual([]);
    expect(log.filter((l) => LEAKY_BODY.test(l.answer.text)).map((l) => l.answer.text.slice(0, 300))).toEqual([]);
    // While no primary was reachable (requests begun after the stop and answered before the proxy
    // pointed at the promoted standby): 503, each one.
    const during = log.filter((l) => l.startedAt >= stoppedAt && l.endedAt <= promotedAt);
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((l) => l.answer.status !== 503).map((l) => `${l.what} ${l.answer.status} ${l.answer.text.slice(0, 200)}`)).toEqual([]);
    const okAfter = log.filter((l) => l.startedAt >= promotedAt && l.answer.status < 300);
    expect(okAfter.length).toBeGreaterThan(0);

    // Nothing acknowledged is lost. A deploy answered 201 exists under its name. Every scale answered
    // 200 is in the deployment's history of targets (each scale writes `replicas:old → replicas:new`
    // in its transaction), in the order the worker sent them: walking the targets the deployment
    // went through, each acknowledged target is found at or after the previous one's place (a scale
    // to the value the deployment already had writes no row and is found in place). And the
    // deployment's target is the last acknowledged one, or that of a later scale not answered 2xx
    // (which may have committed).
    const acknowledgedDeploys = log.filter((l) => l.what === 'deploy' && l.answer.status === 201);
    const { rows: deployments } = await sql<{ id: string; name: string; target_replicas: number }>`
      SELECT id, name, target_replicas FROM deployments`.execute(db);
    const byName = new Map(deployments.map((d) => [d.name, d]));
    const byId = new Map(deployments.map((d) => [d.id, d]));
    const lost = acknowledgedDeploys
      .filter((l) => byName.get(l.name!)?.id !== (l.answer.json as { deployment_id: string }).deployment_id)
      .map((l) => `deploy ${l.name}: missing`);
    const { rows: scaleRows } = await sql<{ deployment_id: string; new_status: string }>`
      SELECT deployment_id, new_status FROM deployment_status_history
      WHERE new_status LIKE 'replicas:%' ORDER BY deployment_id, changed_at`.execute(db);
    const targetsOf = new Map<string, number[]>();
    for (const d of deployments) targetsOf.set(d.id, [d.name.startsWith('ha-load-') ? 1 : 2]);
    for (const r of scaleRows) targetsOf.get(r.deployment_id)?.push(Number(r.new_status.slice('replicas:'.length)));
    const scalesOf = new Map<string, Logged[]>();
    for (const l of log) if (l.what === 'scale') scalesOf.set(l.deploymentId!, [...(scalesOf.get(l.deploymentId!) ?? []), l]);
    let acknowledgedScales = 0;
    for (const [id, scales] of scalesOf) {
      const targets = targetsOf.get(id);
      let at = 0;
      for (const s of scales) {
        if (s.answer.status !== 200) continue;
        acknowledgedScales++;
        const found = targets === undefined ? -1 : targets.indexOf(s.target!, at);
        if (found < 0) lost.push(`scale ${id} to ${s.target}: not in its targets ${JSON.stringify(targets?.slice(at))}`);
        else at = found;
      }
      const lastOk = scales.map((s) => s.answer.status === 200).lastIndexOf(true);
      if (lastOk < 0) continue;
      const possible = new Set([scales[lastOk]!.target, ...scales.slice(lastOk + 1).map((s) => s.target)]);
      const actual = byId.get(id)?.target_replicas;
      if (actual === undefined || !possible.has(actual)) lost.push(`deployment ${id}: target ${actual}, last acknowledged ${scales[lastOk]!.target}`);
    }
    expect(lost).toEqual([]);

    // Every invariant, on the promoted database: exact counts, no overcommit, allocation equal to the
    // replicas, no orphan, every history chain whole.
    await waitUntilClean('convergence on the promoted server', () => unconvergedDeployments(db), PATIENCE_MS);
    expect(await overcommittedNodes(db)).toEqual([]);
    expect(await driftedAllocations(db)).toEqual([]);
    expect(await orphanReplicas(db)).toBe(0);
    const { rows: created } = await sql<{ deployment_id: string; new_status: string }>`
      SELECT deployment_id, new_status FROM deployment_status_history WHERE old_status = 'none'`.execute(db);
    const createdTargets = new Map<string, number>();
    for (const d of deployments) if (created.some((c) => c.deployment_id === d.id)) createdTargets.set(d.id, d.name.startsWith('ha-load-') ? 1 : 2);
    expect(await historyBreaks(db, createdTargets)).toEqual([]);
    expect(procs.every((p) => p.alive)).toBe(true);

    // The figures: from promotion to the first write answered 2xx, and to the first reconcile that
    // changed something (the controller's own log line, stamped by its clock, which is this machine's).
    const firstWrite = log
      .filter((l) => (l.what === 'deploy' || l.what === 'scale') && l.answer.status < 300 && l.endedAt >= promotedAt)
      .reduce((min, l) => Math.min(min, l.endedAt), Infinity);
    const reconciledAt = controller
      .tail()
      .split('\n')
      .filter((line) => line.includes('"msg":"reconciled"'))
      .map((line) => Date.parse(/"time":"([^"]+)"/.exec(line)?.[1] ?? ''))
      .filter((t) => t >= promotedAtWall);
    expect(reconciledAt.length).toBeGreaterThan(0);
    // The writes most at risk: answered in the last second before the stop.
    const lastSecond = log.filter((l) => (l.what === 'deploy' || l.what === 'scale') && l.answer.status < 300 && l.endedAt >= stoppedAt - 1_000 && l.endedAt < stoppedAt).length;
    const cpu = os.cpus()[0]?.model ?? 'unknown';
    console.log(`[figure] failover: ${log.length} requests (${okBefore} answered 2xx before the stop), ${during.length} answered 503 while no primary was reachable (${OUTAGE_MS} ms), promotion took ${Math.round(promotedAt - promoteStart)} ms`);
    console.log(`[figure] failover: first 2xx write ${Math.round(firstWrite - promotedAt)} ms after promotion`);
    console.log(`[figure] failover: first successful reconcile ${Math.max(0, Math.min(...reconciledAt) - promotedAtWall)} ms after promotion`);
    console.log(`[figure] failover: ${acknowledgedDeploys.length} acknowledged deploys and ${acknowledgedScales} acknowledged scales checked (${lastSecond} answered in the last second before the stop), none lost; CPU ${cpu} × ${os.cpus().length}`);
  }, LONG_TEST_MS);
});
