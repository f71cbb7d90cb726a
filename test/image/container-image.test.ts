import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DockerEngine } from '../../src/agent/docker/engine.js';
import { TEST_JWT_SECRET } from '../support/context.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { dockerCli } from '../support/docker-engine.js';
import { describeDocker, engineClient, uniqueName } from '../support/docker-tests.js';
import { importNodeBaseImage } from '../support/node-base-image.js';
import { freePort } from '../support/postgres-server.js';

/**
 * The project's Dockerfile, built and run (DESIGN.md section 7): the base image it names is replaced
 * by a stand-in made from this machine's Node.js, `npm ci` reaches the registry over the host's
 * network, and the built image migrates and serves against the test PostgreSQL, as uid 1000, until
 * its own HEALTHCHECK says healthy. Run by `npm run test:image` (it takes minutes, not seconds).
 */

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const IMAGE = 'steady:image-test';
const POLL = { timeout: 120_000, interval: 500 };

/** The base image the Dockerfile builds from: its `ARG NODE_IMAGE=…` default. */
function dockerfileBaseImage(): string {
  const match = /^ARG NODE_IMAGE=(\S+)$/m.exec(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  if (!match) throw new Error('the Dockerfile has no ARG NODE_IMAGE=… default');
  return match[1]!;
}

describeDocker('the container image', (host) => {
  let testDb: TestDatabase;
  let engine: DockerEngine;
  const containers: string[] = [];
  const docker = async (args: readonly string[], env: Record<string, string> = {}): Promise<string> =>
    (await run('docker', ['-H', host, ...args], { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 })).stdout;

  beforeAll(async () => {
    testDb = await createTestDatabase('postgres', { migrated: false });
    engine = engineClient(host);
  });
  afterAll(async () => {
    for (const id of containers) await engine.removeContainer(id).catch(() => undefined);
    engine?.close();
    await testDb?.destroy();
  });

  it('builds from the Dockerfile, migrates, serves /readyz as uid 1000 and turns healthy', async () => {
    const base = dockerfileBaseImage();
    const began = Date.now();
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-image-'));
    try {
      await importNodeBaseImage({ dir: scratch, docker: dockerCli(host) }, base);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    await docker(['build', '--network', 'host', '-t', IMAGE, '.'], { DOCKER_BUILDKIT: '0' });
    console.log(`[figure] image built from the Dockerfile in ${Date.now() - began} ms`);

    const env = ['-e', `DATABASE_URL=${testDb.url!}`, '-e', `JWT_SECRET=${TEST_JWT_SECRET}`];
    const migrate = await docker(['run', '--rm', '--network', 'host', ...env, IMAGE, 'migrate', 'up']);
    expect(migrate).toMatch(/applied 0001_schema/);

    const port = await freePort();
    const name = uniqueName('steady-image');
    const id = (await docker(['run', '-d', '--name', name, '--network', 'host', ...env, '-e', `PORT=${port}`, '-e', 'HOST=127.0.0.1', IMAGE])).trim();
    containers.push(id);
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status, POLL).toBe(200);

    const inspected = (await engine.inspectContainer(id))!;
    expect(inspected.Config.User).toBe('1000:1000');
    const pid = (inspected.State as unknown as { Pid: number }).Pid;
    expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    await expect.poll(async () => (await engine.inspectContainer(id))?.State.Health?.Status, POLL).toBe('healthy');
  }, 900_000);
});
