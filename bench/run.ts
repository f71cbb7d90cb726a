/**
 * steady's benchmark suite: `npm run bench` (full) or `npm run bench -- --quick`. Starts its own
 * PostgreSQL with production durability (fsync, synchronous_commit and full_page_writes on), drives
 * steady through `steady serve` / `steady dev` and the HTTP API, and writes bench/results/latest.{json,md}.
 * Every figure is reported beside a baseline measured in the same run on the same server. The write
 * scenarios (creates, cold start, end to end) run once more on a second server with fsync off,
 * labelled `· fsync off` (what the tests use; no production server runs so).
 *
 *   --quick            smaller sizes
 *   --only a,b         run only these scenarios: reaction, reports (agents reporting through the API), cold (cold start + steady state + status API),
 *                      events (the event triggers' cost to a cold start), e2e (submit and place at once), status-all (status and list on `serve --role all`),
 *                      embedded, storm (a rollout storm beside a cold start of the same replicas),
 *                      c1m (a million replicas; not in the default run)
 *   --fsync-off        every scenario on the fsync-off server only
 *   --no-extra         no fsync-off repeat of the write scenarios
 *   --profile          run the controller and the API with --cpu-prof (profiles in bench/results/profiles/)
 *   --out NAME         results file stem (default latest)
 *   --from-source      run steady from src/ through tsx instead of the compiled dist/ the image ships
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchEnv } from './lib/cluster.js';
import { pgbenchTps, startBenchPostgres, type BenchPostgres } from './lib/postgres.js';
import { killAllChildren } from './lib/steady.js';
import { machineInfo, markdown, textTable, writeResults, type Figure, type Machine } from './lib/report.js';
import { agentReports } from './scenarios/agent-reports.js';
import { c1m } from './scenarios/c1m.js';
import { coldStart, steadyState } from './scenarios/cold-start.js';
import { endToEnd } from './scenarios/end-to-end.js';
import { embedded } from './scenarios/embedded.js';
import { eventsCost } from './scenarios/events-cost.js';
import { reaction } from './scenarios/reaction.js';
import { rolloutStorm } from './scenarios/rollout-storm.js';
import { statusAll } from './scenarios/status-all.js';
import { statusApi } from './scenarios/status-api.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCENARIOS = ['reaction', 'reports', 'cold', 'events', 'e2e', 'status-all', 'embedded', 'storm', 'c1m'] as const;
const DEFAULT_SCENARIOS = ['reaction', 'reports', 'cold', 'events', 'e2e', 'status-all', 'embedded', 'storm'];
/** What the fsync-off repeat runs: where commits are the work. */
const WRITE_SCENARIOS = ['cold', 'e2e'];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      profile: { type: 'boolean' },
      out: { type: 'string' },
      'from-source': { type: 'boolean' },
      'fsync-off': { type: 'boolean' },
      'no-extra': { type: 'boolean' },
    },
    strict: true,
  });
  const quick = values.quick ?? false;
  const only = new Set(values.only ? values.only.split(',').map((s) => s.trim()) : DEFAULT_SCENARIOS);
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--only: unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`);
  const resultsDir = path.join(HERE, 'results');
  const profileDir = values.profile ? path.join(resultsDir, 'profiles') : null;
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });

  const started = performance.now();
  const log = (m: string): void => void process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`);
  const pgliteVersion = (JSON.parse(fs.readFileSync(path.join(HERE, '../node_modules/@electric-sql/pglite/package.json'), 'utf8')) as { version: string }).version;
  if (!values['from-source']) {
    // Measure what the container image runs: the compiled build, with no TypeScript loader in the process.
    log('building dist/');
    execFileSync(process.execPath, [path.join(HERE, '../node_modules/typescript/bin/tsc'), '-p', path.join(HERE, '../tsconfig.build.json')], { stdio: 'inherit' });
    process.env.STEADY_FROM_DIST = '1';
  }
  // One server after the other: durable with every scenario asked for, then fsync off with the write ones.
  const runs: { durable: boolean; scenarios: Set<string> }[] = values['fsync-off']
    ? [{ durable: false, scenarios: only }]
    : [{ durable: true, scenarios: only }, ...(values['no-extra'] ? [] : [{ durable: false, scenarios: new Set(WRITE_SCENARIOS.filter((s) => only.has(s))) }])];
  const live = new Set<BenchPostgres>();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping everything this run started`);
      killAllChildren();
      for (const pg of live) pg.destroySync();
      process.exit(130);
    });
  }
  const secret = randomBytes(32).toString('base64url');
  const figures: Figure[] = [];
  const notes: string[] = [];
  const extra: Record<string, unknown> = {};
  const servers: string[] = [];
  let machine: Machine | null = null;
  let failed = false;
  for (const { durable, scenarios } of runs) {
    if (scenarios.size === 0) continue;
    log(`starting PostgreSQL (${durable ? 'durable' : 'fsync off'})`);
    const pg = await startBenchPostgres({ durable });
    live.add(pg);
    machine ??= machineInfo(pg.version, pgliteVersion);
    servers.push(`${durable ? 'durable' : 'fsync off'}: ${pg.settings}`);
    const label = durable ? '' : ' · fsync off';
    const pgbench = new Map<number, Promise<{ tps: number; latencyMs: number }>>();
    const env: BenchEnv = {
      quick,
      pg,
      label,
      secret,
      profileDir,
      log: (m) => log(durable ? m : `[fsync off] ${m}`),
      baselines: {
        pgbench(clients) {
          if (!pgbench.has(clients)) pgbench.set(clients, pgbenchTps(pg, quick ? 5 : 10, clients));
          return pgbench.get(clients)!;
        },
      },
    };
    if (!pg.statStatements) notes.push('pg_stat_statements could not be loaded: controller statement counts are missing');
    const attempt = async (name: string, fn: () => Promise<Figure[]>): Promise<void> => {
      try {
        figures.push(...(await fn()).map((f) => ({ ...f, scenario: f.scenario + label })));
      } catch (err) {
        failed = true;
        const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
        log(`${name}${label} FAILED: ${msg}`);
        notes.push(`${name}${label} failed: ${msg.split('\n')[0]}`);
      }
    };
    try {
      if (scenarios.has('reaction')) await attempt('Reaction', () => reaction(env));
      if (scenarios.has('reports')) await attempt('Agent reports', () => agentReports(env));
      if (scenarios.has('cold')) {
        await attempt('Cold start', async () => {
          const { figures: cold, cluster } = await coldStart(env);
          figures.push(...cold.map((f) => ({ ...f, scenario: f.scenario + label })));
          extra[`coldStartTopControllerQueries${durable ? '' : 'FsyncOff'}`] = cluster.topQueries.map((q) => ({ ...q, ms: Math.round(q.ms), query: q.query.replace(/\s+/g, ' ').slice(0, 400) }));
          extra[`createTopApiStatements${durable ? '' : 'FsyncOff'}`] = cluster.createStatements;
          try {
            // The fsync-off repeat measures writes only: reads and a converged cluster commit nothing.
            if (durable) {
              await attempt('Steady state', () => steadyState(env, cluster));
              await attempt('Status API', async () => {
                const { figures: api, topStatements } = await statusApi(env, cluster);
                extra.statusApiTopStatements = topStatements;
                return api;
              });
            }
          } finally {
            await cluster.close();
          }
          return [];
        });
      }
      if (scenarios.has('events')) await attempt('Event stream cost', () => eventsCost(env));
      if (scenarios.has('e2e')) await attempt('End to end', () => endToEnd(env));
      if (scenarios.has('status-all')) await attempt('Status API, serve --role all', () => statusAll(env));
      if (scenarios.has('storm')) await attempt('Rollout storm', () => rolloutStorm(env));
      if (scenarios.has('c1m')) await attempt('C1M', () => c1m(env));
      if (scenarios.has('embedded')) await attempt('Embedded', () => embedded(env));
    } finally {
      await pg.destroy();
      live.delete(pg);
    }
  }

  const mode = quick ? 'quick' : 'full';
  notes.push(
    `PostgreSQL ${servers.join('; ')}. Figures whose scenario ends in "· fsync off" come from the second, non-durable server (what the tests run; no production server runs so).`,
    'Baselines: pgbench TPC-B (default script, scale = clients, -j 2) on the same server in the same run; /healthz of the same process; one INSERT … SELECT of as many replica rows (the median of three).',
    'Reaction: from just before the scale request to the first ~1 ms poll that sees every new replica placed; scales of +2, sequential.',
    'Cold start: deployments submitted through the API with no controller running; timed from the controller\'s "became the leader" log line until every replica is placed (polled every 100 ms).',
    'Simulated agents are SQL (zero delay); nodes are inserted by SQL and never miss heartbeats (STEADY_NODE_GRACE_PERIOD=24h).',
    `PostgreSQL, steady and the load generators share the same ${os.cpus().length} cores (load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end of the run; other work ran on the machine).`,
  );
  const totalSec = (performance.now() - started) / 1000;
  machine ??= machineInfo('-', pgliteVersion);
  const md = markdown('steady benchmarks', machine, mode, figures, notes);
  writeResults(resultsDir, values.out ?? 'latest', { date: new Date().toISOString(), mode, durationSec: Math.round(totalSec), machine, servers, figures, notes, ...extra }, md);
  process.stdout.write(`\n${textTable(figures)}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n\nwritten to bench/results/${values.out ?? 'latest'}.{json,md} in ${Math.round(totalSec)} s\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
