import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/db/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { TEST_JWT_SECRET } from '../support/context.js';
import { runSteady, startSteady } from '../support/processes.js';
import { LONG_TEST_MS, PATIENCE_MS } from '../support/patience.js';
import { SseReader } from '../support/sse.js';

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'steady-e2e-'));
const NO_DB = { DATABASE_URL: undefined, JWT_SECRET: undefined };

describe('steady migrate', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase('postgres', { migrated: false });
  });
  afterAll(async () => {
    await testDb.destroy();
  });

  const cases = [
    { name: 'PostgreSQL (DATABASE_URL)', env: () => ({ DATABASE_URL: testDb.url! }) },
    { name: 'the embedded database', env: (() => {
      const dir = tmpDir();
      return () => ({ ...NO_DB, STEADY_DATA_DIR: dir });
    })() },
  ];
  for (const c of cases) {
    it(`runs up, status, down, sql and up again against ${c.name}`, async () => {
      const env = c.env();
      const up = await runSteady(['migrate', 'up'], env);
      expect(up.code).toBe(0);
      expect(up.output).toMatch(/applied 0001_schema[\s\S]*applied 0003_node_allocation[\s\S]*applied 0004_allocation_arrays[\s\S]*applied 0005_events[\s\S]*applied 0006_revisions/);
      // Everything but the first: 0002 onwards.
      const down = await runSteady(['migrate', 'down', String(loadMigrations().length - 1)], env);
      expect(down.output).toMatch(/rolled back 0006_revisions[\s\S]*rolled back 0005_events[\s\S]*rolled back 0004_allocation_arrays[\s\S]*rolled back 0003_node_allocation[\s\S]*rolled back 0002_controller/);
      const status = await runSteady(['migrate', 'status'], env);
      expect(status.output).toMatch(/0001_schema\s+applied[\s\S]*0002_controller\s+pending/);
      const pendingSql = await runSteady(['migrate', 'sql'], env);
      expect(pendingSql.output).toMatch(/-- 0002_controller[\s\S]*ALTER TABLE deployments[\s\S]*-- 0003_node_allocation[\s\S]*-- 0004_allocation_arrays[\s\S]*-- 0005_events[\s\S]*-- 0006_revisions/);
      expect(pendingSql.output).not.toContain('CREATE TABLE deployments');
      expect((await runSteady(['migrate', 'up'], env)).output).toMatch(/applied 0002_controller[\s\S]*applied 0003_node_allocation[\s\S]*applied 0004_allocation_arrays[\s\S]*applied 0005_events[\s\S]*applied 0006_revisions/);
    }, LONG_TEST_MS);
  }

  it('explains bad usage with exit code 2', async () => {
    const result = await runSteady(['migrate', 'sideways'], { DATABASE_URL: testDb.url! });
    expect(result.code).toBe(2);
    expect(result.output).toContain('Usage: steady migrate');
  });
});

describe('steady serve', () => {
  it('refuses to start without DATABASE_URL, naming it', async () => {
    const result = await runSteady(['serve'], NO_DB);
    expect(result.code).toBe(2);
    expect(result.output).toContain('DATABASE_URL is required');
  });

  it('stops with a message naming the variable when the configuration is bad', async () => {
    const result = await runSteady(['serve'], { PORT: 'eighty' });
    expect(result.code).toBe(1);
    expect(result.output).toContain('PORT: expected an integer from 0 to 65535, got "eighty"');
  });
});

describe('steady dev', () => {
  it('takes the nodes\' heartbeat period, 1s unless told, and refuses one that is not a duration', async () => {
    const help = await runSteady(['dev', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.output).toMatch(/--heartbeat <duration>.*\(default: 1s\)/);
    for (const bad of ['0', 'soon', '5ms']) {
      const result = await runSteady(['dev', '--heartbeat', bad], { STEADY_DATA_DIR: tmpDir() });
      expect(result.code, bad).toBe(2);
      expect(result.output).toContain('--heartbeat');
    }
  });

  it('serves on a locked data directory, refuses a second start, stops on SIGTERM, and takes over a stale lock', async () => {
    const dir = tmpDir();
    const env = { ...NO_DB, STEADY_DATA_DIR: dir, PORT: '0', STEADY_CONCURRENCY: '2', XDG_CONFIG_HOME: path.join(dir, 'config') };
    const first = startSteady(['dev', '--nodes', '1'], env);
    const [, url] = await first.waitFor(/API\s+(http:\/\/\S+)/, PATIENCE_MS);
    const [, token] = await first.waitFor(/token\s+(\S+)/);
    const health = await fetch(`${url}/readyz`);
    expect(health.status).toBe(200);
    const list = await fetch(`${url}/api/deployment/list`, { headers: { Authorization: `Bearer ${token}` } });
    expect(list.status).toBe(200);
    // An open event stream does not hold the shutdown: it is ended cleanly first.
    const events = new SseReader(await fetch(`${url}/api/events`, { headers: { Authorization: `Bearer ${token}` } }));
    await events.until((r) => r.lastEventId !== null, 'the opening block of the event stream');

    // The context file: the CLI in "another terminal" finds the server and the token with no flags.
    const contextFile = path.join(dir, 'config', 'steady', 'config.json');
    expect(fs.statSync(contextFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(contextFile, 'utf8'))).toEqual({ url, token });
    const clientEnv = { XDG_CONFIG_HOME: path.join(dir, 'config'), STEADY_URL: undefined, STEADY_TOKEN: undefined };
    const nodes = await runSteady(['get', 'nodes'], clientEnv);
    expect(nodes).toMatchObject({ code: 0 });
    expect(nodes.output).toMatch(/^NAME\s+STATUS\s+CPU[\s\S]*\ndev-node-1\s+ready\s+0\/4\s+0\/8192\s+0\s/);
    const absent = await runSteady(['describe', 'deployment', 'nope'], clientEnv);
    expect(absent).toMatchObject({ code: 1, output: 'error: deployment "nope" not found\n' });

    const second = await runSteady(['dev'], env);
    expect(second.code).toBe(1);
    expect(second.output).toContain(`data directory ${dir} is in use by process ${first.child.pid}`);

    // Exit code 0: a clean stop within the daemon's own 10 s budget (past it, it exits 1).
    first.kill('SIGTERM');
    expect(await first.exited()).toBe(0);
    await events.until((r) => r.ended !== null, 'the end of the event stream');
    expect(events.ended).toBe('done');
    expect(fs.existsSync(path.join(dir, 'steady.lock'))).toBe(false);

    // A lock left by a process killed with SIGKILL names a pid that no longer exists.
    fs.writeFileSync(path.join(dir, 'steady.lock'), '999999\n');
    const third = startSteady(['dev', '--nodes', '0'], env);
    const [, url3] = await third.waitFor(/API\s+(http:\/\/\S+)/, PATIENCE_MS);
    // Same secret from the data directory: the first run's token is still good.
    const again = await fetch(`${url3}/api/deployment/list`, { headers: { Authorization: `Bearer ${token}` } });
    expect(again.status).toBe(200);
    third.kill('SIGTERM');
    expect(await third.exited()).toBe(0);
  }, LONG_TEST_MS);
});

describe('steady serve with simulated agents in their own processes', () => {
  let testDb: TestDatabase;
  beforeAll(async () => {
    testDb = await createTestDatabase('postgres');
  });
  afterAll(async () => {
    await testDb.destroy();
  });

  it('takes a deployment from the API to running replicas on agents', async () => {
    const env = { DATABASE_URL: testDb.url!, JWT_SECRET: TEST_JWT_SECRET, PORT: '0', STEADY_RESYNC_PERIOD: '2s' };
    const server = startSteady(['serve', '--role', 'all'], env);
    try {
      const [, url] = await server.waitFor(/"url":"(http:\/\/[^"]+)"/, PATIENCE_MS);
      const agents = startSteady(['agent', '--simulate', '--api', url!, '--nodes', '2', '--start-delay', '100', '--heartbeat', '300'], env);
      try {
        const token = (await runSteady(['token', '--sub', 'e2e-user'], env)).output.trim();
        const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
        const events = new SseReader(await fetch(`${url}/api/events`, { headers }));
        await events.until((r) => r.lastEventId !== null, 'the opening block of the event stream');
        const created = await fetch(`${url}/api/deployment/deploy`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ name: 'e2e', container_image: 'nginx:1.27', target_replicas: 3, resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 } }),
        });
        expect(created.status).toBe(201);
        const { deployment_id: id } = (await created.json()) as { deployment_id: string };
        const status = async () => (await (await fetch(`${url}/api/deployment/status/${id}`, { headers })).json()) as { status: string; health: string };
        await expect.poll(async () => (await status()).status, { timeout: PATIENCE_MS, interval: 200 }).toBe('running');
        expect((await status()).health).toBe('healthy');
        // The agents' reports, through the API process, reach the stream: every replica running, and the deployment healthy.
        await events.until((r) => r.data('replica').filter((e) => e.status === 'running').length === 3, 'three running replicas');
        await events.until((r) => r.data('deployment').some((e) => e.health === 'healthy' && e.running_replicas === 3), 'a healthy deployment');
        await events.close();
      } finally {
        agents.kill('SIGTERM');
        expect(await agents.exited()).toBe(0);
      }
    } finally {
      server.kill('SIGTERM');
      expect(await server.exited()).toBe(0);
    }
  }, LONG_TEST_MS);
});
