/**
 * steady's benchmark suite: `npm run bench` (full, ~4 min on 2 cores) or `npm run bench -- --quick`
 * (< 3 min). Starts its own PostgreSQL, drives steady through `steady serve` / `steady dev` and the
 * HTTP API, and writes bench/results/latest.{json,md}. Every figure is reported beside a baseline
 * measured in the same run where one exists.
 *
 *   --quick            smaller sizes
 *   --only a,b         run only these scenarios: reaction, cold (cold start + steady state + status API), embedded
 *   --profile          run the controller and the API with --cpu-prof (profiles in bench/results/profiles/)
 *   --out NAME         results file stem (default latest)
 *   --from-source      run steady from src/ through tsx instead of the compiled dist/ the image ships
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchEnv } from './lib/cluster.js';
import { startBenchPostgres } from './lib/postgres.js';
import { killAllChildren } from './lib/steady.js';
import { machineInfo, markdown, textTable, writeResults, type Figure } from './lib/report.js';
import { coldStart, steadyState } from './scenarios/cold-start.js';
import { embedded } from './scenarios/embedded.js';
import { reaction } from './scenarios/reaction.js';
import { statusApi } from './scenarios/status-api.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCENARIOS = ['reaction', 'cold', 'embedded'] as const;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, only: { type: 'string' }, profile: { type: 'boolean' }, out: { type: 'string' }, 'from-source': { type: 'boolean' } },
    strict: true,
  });
  const quick = values.quick ?? false;
  const only = new Set(values.only ? values.only.split(',').map((s) => s.trim()) : SCENARIOS);
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
  log('starting PostgreSQL');
  const pg = await startBenchPostgres();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping everything this run started`);
      killAllChildren();
      pg.destroySync();
      process.exit(130);
    });
  }
  const machine = machineInfo(pg.version, pgliteVersion);
  const env: BenchEnv = { quick, pg, secret: randomBytes(32).toString('base64url'), profileDir, log };
  const figures: Figure[] = [];
  const notes: string[] = [];
  const extra: Record<string, unknown> = {};
  if (!pg.statStatements) notes.push('pg_stat_statements could not be loaded: controller statement counts are missing');
  let failed = false;
  const attempt = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      log(`${name} FAILED: ${msg}`);
      notes.push(`${name} failed: ${msg.split('\n')[0]}`);
    }
  };
  try {
    if (only.has('reaction')) await attempt('Reaction', async () => void figures.push(...(await reaction(env))));
    if (only.has('cold')) {
      await attempt('Cold start', async () => {
        const { figures: cold, cluster } = await coldStart(env);
        figures.push(...cold);
        extra.coldStartTopControllerQueries = cluster.topQueries.map((q) => ({ ...q, ms: Math.round(q.ms), query: q.query.replace(/\s+/g, ' ').slice(0, 400) }));
        try {
          await attempt('Steady state', async () => void figures.push(...(await steadyState(env, cluster))));
          await attempt('Status API', async () => {
            const { figures: api, topStatements } = await statusApi(env, cluster);
            figures.push(...api);
            extra.statusApiTopStatements = topStatements;
          });
        } finally {
          await cluster.close();
        }
      });
    }
    if (only.has('embedded')) await attempt('Embedded', async () => void figures.push(...(await embedded(env))));
  } finally {
    await pg.destroy();
  }

  const mode = quick ? 'quick' : 'full';
  notes.push(
    'Reaction: from just before the scale request to the first ~1 ms poll that sees every new replica placed; scales of +2, sequential.',
    'Cold start: deployments submitted through the API with no controller running; timed from the controller\'s "became the leader" log line until every replica is placed (polled every 100 ms).',
    'Simulated agents are SQL (zero delay); nodes are inserted by SQL and never miss heartbeats (STEADY_NODE_GRACE_PERIOD=24h).',
    'PostgreSQL is a throwaway cluster with fsync=off, synchronous_commit=off (as the tests use), on the same 2 cores as everything else.',
  );
  const totalSec = (performance.now() - started) / 1000;
  const md = markdown('steady benchmarks', machine, mode, figures, notes);
  writeResults(resultsDir, values.out ?? 'latest', { date: new Date().toISOString(), mode, durationSec: Math.round(totalSec), machine, figures, notes, ...extra }, md);
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
