import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Api, mapLimit, sleep } from '../lib/api.js';
import type { BenchEnv } from '../lib/cluster.js';
import type { Figure } from '../lib/report.js';
import { LatencyHistogram, type Percentiles } from '../lib/stats.js';
import { ProcessWatcher, startSteady } from '../lib/steady.js';

interface EmbeddedRun {
  readonly reaction: Percentiles;
  readonly coldSec: number;
  readonly replicas: number;
  readonly peakMb: number;
}

/**
 * Embedded: `steady dev --nodes 0` (API, controller and database in one process), on PGlite and, the
 * baseline, on the real PostgreSQL server (dev with DATABASE_URL). Both measured the same way, through
 * the API only: nodes registered with an admin token minted from the data directory's dev secret,
 * reaction polled with GET status, cold start polled with GET /api/nodes (replicas per node).
 */
export async function embedded(env: BenchEnv): Promise<Figure[]> {
  const sizes = { scales: env.quick ? 50 : 200, deployments: env.quick ? 200 : 1_000, nodes: env.quick ? 20 : 100 };
  env.log(`embedded: PGlite (${sizes.scales} scales, cold start ${sizes.deployments}×10)`);
  const lite = await runDev(env, null, sizes);
  env.log('embedded: the same on PostgreSQL');
  const pool = await env.pg.createDatabase('bench_embedded_pg');
  await pool.end();
  const real = await runDev(env, env.pg.url('bench_embedded_pg'), sizes);
  const base = (metric: string, p: keyof Percentiles): Figure => ({
    scenario: 'Embedded',
    metric: `PGlite reaction ${p}`,
    value: lite.reaction[p],
    unit: 'ms',
    baseline: { name: 'dev on PostgreSQL', value: real.reaction[p], unit: 'ms' },
    ratio: lite.reaction[p] / real.reaction[p],
    note: metric,
  });
  return [
    base(`n=${lite.reaction.count}, ratio = times slower`, 'p50'),
    base('ratio = times slower', 'p99'),
    {
      scenario: 'Embedded',
      metric: `PGlite cold start ${sizes.deployments}×10, submit → placed`,
      value: lite.replicas / lite.coldSec,
      unit: 'replicas/s',
      baseline: { name: 'dev on PostgreSQL', value: real.replicas / real.coldSec, unit: 'replicas/s' },
      ratio: real.coldSec / lite.coldSec,
      note: `${Math.round(lite.coldSec * 10) / 10} s vs ${Math.round(real.coldSec * 10) / 10} s`,
    },
    {
      scenario: 'Memory',
      metric: 'steady dev peak RSS (VmHWM), PGlite',
      value: lite.peakMb,
      unit: 'MB',
      baseline: { name: 'steady dev on PostgreSQL', value: real.peakMb, unit: 'MB' },
      ratio: lite.peakMb / real.peakMb,
    },
  ];
}

async function runDev(env: BenchEnv, databaseUrl: string | null, sizes: { scales: number; deployments: number; nodes: number }): Promise<EmbeddedRun> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-bench-dev-'));
  const proc = startSteady({
    name: databaseUrl ? 'dev(postgres)' : 'dev(pglite)',
    args: ['dev', '--nodes', '0'],
    // XDG_CONFIG_HOME: the context file `steady dev` writes stays out of the user's own.
    env: { PORT: '0', STEADY_DATA_DIR: dataDir, XDG_CONFIG_HOME: dataDir, STEADY_NODE_GRACE_PERIOD: '24h', STEADY_RATE_LIMIT: '0', ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}), JWT_SECRET: '' },
  });
  const watch = new ProcessWatcher(proc.pid, 200);
  try {
    const { line } = await proc.waitForLine(/"msg":"steady is up"/, 120_000);
    const url = (JSON.parse(line) as { url: string }).url;
    const banner = await proc.waitForLine(/^\s+token\s+\S+\s*$/, 30_000);
    const user = new Api(url, banner.line.trim().split(/\s+/)[1]!);
    const secret = fs.readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim();
    const admin = await Api.as(url, secret, 'bench-admin', ['admin']);
    await mapLimit(Array.from({ length: sizes.nodes }, (_, i) => i), 8, (i) =>
      admin.registerNode(`node-${i}`, { cpu_cores: 128, memory_mb: 524288, gpu_units: 0, storage_gb: 100000 }),
    );

    // Reaction, through the API only.
    const ids = await mapLimit(Array.from({ length: 20 }, (_, i) => i), 4, (i) => user.deploy(`react-${i}`, 1));
    await sleep(500);
    const hist = new LatencyHistogram();
    const targets = new Map(ids.map((id) => [id, 1]));
    for (let i = 0; i < sizes.scales; i++) {
      const id = ids[i % ids.length]!;
      const target = targets.get(id)! + 2;
      targets.set(id, target);
      const t0 = performance.now();
      await user.scale(id, target);
      for (;;) {
        const s = await user.ok<{ replicas: { node_id: string | null; status: string }[] }>('GET', `/api/deployment/status/${id}`);
        const placed = s.replicas.filter((r) => r.node_id !== null && ['pending', 'starting', 'running'].includes(r.status)).length;
        if (placed >= target) break;
        if (performance.now() - t0 > 30_000) throw new Error(`embedded: scale not placed within 30 s`);
        await sleep(2);
      }
      hist.recordMs(performance.now() - t0);
    }
    const reaction = hist.summary();

    // Cold start: everything submitted as fast as the API takes it; timed until every replica is placed.
    const already = await placedOnNodes(admin);
    const replicas = sizes.deployments * 10;
    const t0 = performance.now();
    await mapLimit(Array.from({ length: sizes.deployments }, (_, i) => i), 16, (i) => user.deploy(`cold-${i}`, 10));
    for (;;) {
      if ((await placedOnNodes(admin)) - already >= replicas) break;
      if (performance.now() - t0 > 600_000) throw new Error('embedded cold start did not finish within 600 s');
      await sleep(250);
    }
    const coldSec = (performance.now() - t0) / 1000;
    watch.stop();
    return { reaction, coldSec, replicas, peakMb: watch.peakHwmMb };
  } finally {
    watch.stop();
    await proc.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function placedOnNodes(admin: Api): Promise<number> {
  const nodes = await admin.ok<{ replica_counts: Record<string, number> }[] | { items: { replica_counts: Record<string, number> }[] }>('GET', '/api/nodes');
  const list = Array.isArray(nodes) ? nodes : nodes.items;
  return list.reduce((sum, n) => sum + (n.replica_counts.pending ?? 0) + (n.replica_counts.starting ?? 0) + (n.replica_counts.running ?? 0), 0);
}
