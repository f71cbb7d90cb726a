import { sql } from 'kysely';
import { signToken } from '../../src/api/tokens.js';
import { startDockerNode, type DockerNode } from '../../src/agent/docker/docker-node.js';
import { LABELS } from '../../src/agent/docker/container-config.js';
import type { DockerEngine, EngineContainer } from '../../src/agent/docker/engine.js';
import { loadConfig } from '../../src/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import type { Logger } from '../../src/logger.js';
import { TEST_JWT_SECRET } from './context.js';
import { silentLogger } from './databases.js';

/** steady (API and controller, in-process) over a test database, with Docker nodes on a test engine. */

export async function startSteadyFor(databaseUrl: string): Promise<{ daemon: Daemon; url: string }> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    HOST: '127.0.0.1',
    PORT: '0',
    STEADY_LEADER_ELECTION: 'false',
    STEADY_RESYNC_PERIOD: '1s',
    STEADY_BACKOFF_BASE: '200ms',
    STEADY_BACKOFF_MAX: '1s',
    STEADY_RATE_LIMIT: '0',
    LOG_LEVEL: 'silent',
  });
  const daemon = await startDaemon(config, silentLogger, 'all');
  return { daemon, url: `http://127.0.0.1:${daemon.server.port}` };
}

export async function startTestDockerNode(apiUrl: string, dockerHost: string, name: string, logger: Logger = silentLogger): Promise<DockerNode> {
  return startDockerNode({
    apiUrl,
    token: await signToken(TEST_JWT_SECRET, { sub: name, roles: ['node'] }),
    name,
    dockerHost,
    networkMode: 'none',
    capacity: { cpuCores: 4, memoryMb: 8192, storageGb: 50, reserveCpuCores: 0, reserveMemoryMb: 0 },
    stopTimeoutSec: 2,
    heartbeatMs: 1_000,
    retryBaseMs: 100,
    retryMaxMs: 1_000,
    logger,
  });
}

export interface UserApi {
  deploy(body: Record<string, unknown>): Promise<string>;
  scale(id: string, target: number): Promise<void>;
  remove(id: string): Promise<void>;
  status(id: string): Promise<{ status: string; health: string; replicas: { id: string; status: string; container_id: string | null }[] }>;
}

export async function userApi(url: string, sub = 'docker-user'): Promise<UserApi> {
  const headers = { Authorization: `Bearer ${await signToken(TEST_JWT_SECRET, { sub })}`, 'Content-Type': 'application/json' };
  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text === '' ? null : JSON.parse(text);
  };
  return {
    async deploy(body) {
      return ((await call('POST', '/api/deployment/deploy', body)) as { deployment_id: string }).deployment_id;
    },
    async scale(id, target) {
      await call('POST', `/api/deployment/scale/${id}`, { target_replicas: target });
    },
    async remove(id) {
      await call('DELETE', `/api/deployment/${id}`);
    },
    async status(id) {
      return (await call('GET', `/api/deployment/status/${id}`)) as Awaited<ReturnType<UserApi['status']>>;
    },
  };
}

/** The node's containers on the engine, by state. */
export async function nodeContainers(engine: DockerEngine, node: string): Promise<EngineContainer[]> {
  return engine.listContainers([`${LABELS.node}=${node}`]);
}

export const running = async (engine: DockerEngine, node: string): Promise<EngineContainer[]> =>
  (await nodeContainers(engine, node)).filter((c) => c.State === 'running');

/** Replica rows as the database holds them. */
export async function replicaRows(daemon: Daemon, deploymentId: string) {
  const { rows } = await sql<{ id: string; status: string; reason: string | null; container_id: string | null; created_at: Date; started_at: Date | null; stopped_at: Date | null }>`
    SELECT id, status, reason, container_id, created_at, started_at, stopped_at FROM deployment_replicas WHERE deployment_id = ${deploymentId} ORDER BY created_at`.execute(daemon.ctx.database.db);
  return rows;
}

export const busyboxDeployment = (name: string, image: string, target: number): Record<string, unknown> => ({
  name,
  container_image: image,
  target_replicas: target,
  resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 },
});
