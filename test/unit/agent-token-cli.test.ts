import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseAgentArgs, runAgent, type AgentArgs } from '../../src/cli/agent.js';
import { devSecretPath, readDevSecret, readOrCreateDevSecret } from '../../src/cli/dev-secret.js';
import { createTokenMinter, signToken } from '../../src/api/tokens.js';
import { loadConfig } from '../../src/config.js';
import { runInProcess } from '../support/cli.js';

const SECRET = 'another-test-secret-long-enough-for-hs256-xyz';
let dir: string;
let stdout: string;
let stderr: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-token-'));
  stdout = '';
  stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** `steady token ARGS` in-process with exactly the environment `env`; its output adds to stdout and stderr. */
async function runToken(args: readonly string[], env: Record<string, string>): Promise<number> {
  const run = await runInProcess(['token', ...args], { env });
  stdout += run.stdout;
  stderr += run.stderr;
  return run.code;
}

/** `steady agent ARGS` in-process, with only the test's data directory in its environment. */
async function runAgentCli(args: readonly string[]): Promise<number> {
  const run = await runInProcess(['agent', ...args], { env: { STEADY_DATA_DIR: dir, LOG_LEVEL: 'silent' } });
  stdout += run.stdout;
  stderr += run.stderr;
  return run.code;
}

function agentArgs(argv: readonly string[]): AgentArgs {
  const parsed = parseAgentArgs(argv);
  if (!parsed.ok) throw new Error(parsed.message);
  if (!('args' in parsed)) throw new Error('expected simulated nodes');
  return parsed.args;
}

const key = (secret: string) => new TextEncoder().encode(secret);

describe('steady token', () => {
  it('prints an HS256 JWT with sub, roles, iat and exp that jose verifies with JWT_SECRET', async () => {
    const env = { JWT_SECRET: SECRET, STEADY_DATA_DIR: dir };
    expect(await runToken(['--sub', 'alice', '--role', 'admin', '--role', 'node', '--ttl', '1h'], env)).toBe(0);
    const token = stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
    const { payload } = await jwtVerify(token, key(SECRET), { algorithms: ['HS256'] });
    expect(payload.sub).toBe('alice');
    expect(payload.roles).toEqual(['admin', 'node']);
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
    expect(fs.existsSync(devSecretPath(dir))).toBe(false); // JWT_SECRET set: no dev secret is made
  });

  it('defaults to no roles and 24 h, accepts comma-separated roles, and carries iss/aud when the API checks them', async () => {
    const env = { JWT_SECRET: SECRET, JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'steady' };
    expect(await runToken(['--sub', 'bob'], env)).toBe(0);
    const plain = await jwtVerify(stdout.trim(), key(SECRET), { issuer: 'https://id.example', audience: 'steady' });
    expect(plain.payload.roles).toEqual([]);
    expect(plain.payload.exp! - plain.payload.iat!).toBe(86_400);
    stdout = '';
    expect(await runToken(['--sub', 'n1', '--role', 'node,admin'], env)).toBe(0);
    expect((await jwtVerify(stdout.trim(), key(SECRET))).payload.roles).toEqual(['node', 'admin']);
  });

  it('without JWT_SECRET signs with the dev data directory secret, created once with mode 0600', async () => {
    const env = { STEADY_DATA_DIR: path.join(dir, 'data') };
    expect(await runToken(['--sub', 'dev'], env)).toBe(0);
    const secret = readDevSecret(path.join(dir, 'data'));
    expect(secret).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(fs.statSync(devSecretPath(path.join(dir, 'data'))).mode & 0o777).toBe(0o600);
    await jwtVerify(stdout.trim(), key(secret!));
    stdout = '';
    expect(await runToken(['--sub', 'dev'], env)).toBe(0);
    expect(readDevSecret(path.join(dir, 'data'))).toBe(secret);
    await jwtVerify(stdout.trim(), key(secret!));
  });

  it('refuses, with a message, when only DATABASE_URL or a JWKS is configured', async () => {
    expect(await runToken(['--sub', 'x'], { DATABASE_URL: 'postgres://db/steady', STEADY_DATA_DIR: dir })).toBe(1);
    expect(stderr).toContain('JWT_SECRET is not set');
    expect(await runToken(['--sub', 'x'], { JWT_JWKS_URL: 'https://id.example/jwks', STEADY_DATA_DIR: dir })).toBe(1);
    expect(stderr).toContain('identity provider');
    expect(stdout).toBe('');
  });

  it.each([
    [[], "required option '--sub <name>' not specified"],
    [['--sub', 'a', '--role', 'root'], 'unknown role "root"'],
    [['--sub', 'a', '--ttl', 'forever'], '--ttl'],
    [['--sub', 'a', '--colour'], "unknown option '--colour'"],
    [['--sub', 'bad name', '--role', 'node'], 'node name'],
    [['--sub', 'a\u001bb'], 'without control characters'],
    [['--sub', 'x'.repeat(256)], 'at most 255 characters'],
  ])('exits 2 with usage for %j', async (args, message) => {
    expect(await runToken(args, { JWT_SECRET: SECRET })).toBe(2);
    expect(stderr).toContain(message);
    expect(stderr).toContain('Usage: steady token');
  });
});

describe('dev secret', () => {
  it('is generated once and read back; a damaged file is an error that says what to do', () => {
    const a = readOrCreateDevSecret(path.join(dir, 'nested', 'data'));
    expect(readOrCreateDevSecret(path.join(dir, 'nested', 'data'))).toBe(a);
    expect(readDevSecret(path.join(dir, 'absent'))).toBeNull();
    fs.writeFileSync(devSecretPath(dir), 'short\n');
    expect(() => readOrCreateDevSecret(dir)).toThrow(/delete it to generate a new one/);
  });
});

describe('createTokenMinter', () => {
  it('reuses a token until half its lifetime has passed, then signs a new one', async () => {
    let now = new Date('2030-01-01T00:00:00Z');
    const mint = createTokenMinter(SECRET, { roles: ['node'], ttlSec: 3600 }, () => now);
    const first = await mint('n1');
    expect(await mint('n1')).toBe(first);
    expect(await mint('n2')).not.toBe(first);
    now = new Date('2030-01-01T00:31:00Z');
    const renewed = await mint('n1');
    expect(renewed).not.toBe(first);
    const { payload } = await jwtVerify(renewed, key(SECRET), { currentDate: now });
    expect(payload).toMatchObject({ sub: 'n1', roles: ['node'] });
  });
});

describe('steady agent arguments', () => {
  it('has defaults and takes durations and rates', () => {
    expect(parseAgentArgs(['--simulate'])).toEqual({
      ok: true,
      args: { apiUrl: 'http://127.0.0.1:8080', token: null, nodes: 1, namePrefix: 'sim-node', namePrefixGiven: false, failRate: 0, startDelayMs: 1000, heartbeatMs: 5000 },
    });
    const parsed = parseAgentArgs(['--simulate', '--api', 'http://api:8080', '--nodes', '3', '--fail-rate', '0.25', '--start-delay', '500ms', '--heartbeat', '2s']);
    expect(parsed).toMatchObject({ ok: true, args: { apiUrl: 'http://api:8080', nodes: 3, failRate: 0.25, startDelayMs: 500, heartbeatMs: 2000 } });
  });

  it('parses a Docker node: capacity from flags or the machine, reserves, stop timeout in whole seconds', () => {
    expect(parseAgentArgs(['--runtime', 'docker'])).toEqual({
      ok: true,
      docker: {
        apiUrl: 'http://127.0.0.1:8080',
        token: null,
        name: null,
        dockerHost: null,
        network: 'bridge',
        cpuCores: null,
        memoryMb: null,
        storageGb: null,
        gpus: null,
        reserveCpuCores: 0.5,
        reserveMemoryMb: 512,
        stopTimeoutSec: 10,
        heartbeatMs: 5000,
      },
    });
    const args = ['--runtime', 'docker', '--name', 'n1', '--docker-host', 'unix:///d.sock', '--network', 'none', '--cpu', '1.5', '--memory-mb', '2048', '--storage-gb', '20', '--gpus', '1', '--reserve-cpu', '0', '--stop-timeout', '1500ms'];
    expect(parseAgentArgs(args)).toMatchObject({
      ok: true,
      docker: { name: 'n1', dockerHost: 'unix:///d.sock', network: 'none', cpuCores: 1.5, memoryMb: 2048, storageGb: 20, gpus: 1, reserveCpuCores: 0, stopTimeoutSec: 2 },
    });
  });

  it.each([
    [[], '--runtime docker or --simulate is required'],
    [['--simulate', '--runtime', 'docker'], 'exclude each other'],
    [['--runtime', 'containerd'], '--runtime'],
    [['--runtime', 'docker', '--nodes', '2'], '--nodes cannot be used with --runtime docker'],
    [['--simulate', '--network', 'none'], '--network cannot be used with --runtime simulated'],
    [['--runtime', 'docker', '--cpu', '-1'], '--cpu'],
    [['--runtime', 'docker', '--memory-mb', 'lots'], '--memory-mb'],
    [['--runtime', 'docker', '--name', 'a b'], '--name'],
    [['--runtime', 'docker', '--stop-timeout', 'never'], '--stop-timeout'],
    [['--simulate', '--api', 'api:8080'], '--api'],
    [['--simulate', '--nodes', '0'], '--nodes'],
    [['--simulate', '--nodes', '2.5'], '--nodes'],
    [['--simulate', '--fail-rate', '1.5'], '--fail-rate'],
    [['--simulate', '--start-delay', 'soon'], '--start-delay'],
    [['--simulate', '--heartbeat', '0'], '--heartbeat'],
    [['--simulate', '--name-prefix', 'a b'], '--name-prefix'],
    [['--simulate', 'extra'], 'too many arguments'],
  ])('rejects %j', (args, message) => {
    const parsed = parseAgentArgs(args);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? '' : parsed.message).toContain(message);
  });

  it('exits 2 when no token can be had, or a node token is stretched over several nodes', async () => {
    expect(await runAgentCli(['--simulate'])).toBe(2);
    expect(stderr).toContain('--token is required');
    const nodeToken = await signToken(SECRET, { sub: 'n1', roles: ['node'], ttlSec: 60 });
    expect(await runAgentCli(['--simulate', '--token', nodeToken, '--nodes', '2'])).toBe(2);
    expect(stderr).toContain('node token for "n1" only');
    for (const roles of [[], ['admin']]) {
      stderr = '';
      const token = await signToken(SECRET, { sub: 'u', roles, ttlSec: 60 });
      expect(await runAgentCli(['--simulate', '--token', token])).toBe(2);
      expect(stderr).toContain('--token must be a node token');
    }
    expect(await runAgentCli(['--simulate', '--token', 'garbage'])).toBe(2);
    expect(stderr).toContain('not a JWT');
  });

  it('names a single node after its node token, and stops cleanly when signalled', async () => {
    const nodeToken = await signToken(SECRET, { sub: 'edge-7', roles: ['node'], ttlSec: 60 });
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const controller = new AbortController();
    controller.abort();
    // Nothing listens on port 9: the agent never registers, and stop must still be prompt.
    const code = await runAgent(agentArgs(['--simulate', '--token', nodeToken, '--api', 'http://127.0.0.1:9']), loadConfig({ STEADY_DATA_DIR: dir }), logger, {
      signal: controller.signal,
    });
    expect(code).toBe(0);
    const started = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'simulated node agents started');
    expect(started).toMatchObject({ nodes: ['edge-7'], tokens: 'a node token for edge-7' });
  });
});
