import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi, type RunningServer } from '../../src/api/server.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { until } from '../support/patience.js';
import { createTestApp, userToken } from '../support/tokens.js';

/**
 * Requests refused before their body or headers were read (413, 431), over a real socket: the client
 * reads its answer, and the connection never resets under a client that is still sending, nor is it
 * reused after the server decided to close it (DESIGN.md §3).
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Conversation {
  /** Everything the server sent. */
  readonly text: string;
  /** A socket error while we were still sending (EPIPE, ECONNRESET): the server reset the connection. */
  readonly error: string | null;
  /** The server closed its side gracefully (FIN). */
  readonly ended: boolean;
}

/**
 * Sends `head`, waits for the server's answer, then keeps sending `rest` in pieces with pauses, as a
 * client on a slow link whose request the server has already refused, and finally closes its side.
 */
async function refusedWhileSending(port: number, head: string, rest: Buffer, pieces = 20, pauseMs = 50): Promise<Conversation> {
  // Half-open: the server's FIN must not end our side; we go on sending, as a slow client would.
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let text = '';
  let error: string | null = null;
  let ended = false;
  let closed = false;
  socket.on('data', (chunk) => (text += chunk.toString('latin1')));
  socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
  socket.on('end', () => (ended = true));
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(head);
  await until('the answer', () => text.includes('\r\n\r\n') || closed, undefined, 10);
  const size = Math.ceil(rest.length / pieces);
  for (let i = 0; i < pieces && !closed && error === null; i++) {
    socket.write(rest.subarray(i * size, (i + 1) * size));
    await sleep(pauseMs);
  }
  socket.end();
  await until('the connection to close', () => closed, undefined, 10);
  return { text, error, ended };
}

describe('oversized requests over a real socket', () => {
  let testDb: TestDatabase;
  let server: RunningServer;
  let base = '';
  const spec = { name: 'web', container_image: 'nginx:1.27', target_replicas: 1, resources: { cpu_cores: 1, memory_mb: 512, storage_gb: 1 } };

  beforeAll(async () => {
    testDb = await createTestDatabase('pglite');
    const { app } = createTestApp(testDb.database);
    // A linger far longer than any client here takes to finish sending: only the client's FIN ends it.
    server = await serveApi(app, { host: '127.0.0.1', port: 0, linger: { ms: 120_000 } });
    base = `http://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server?.close();
    await testDb?.destroy();
  });

  it('after a 413, Node’s fetch reads the answer and its next request on the kept-alive pool succeeds', async () => {
    const headers = { Authorization: `Bearer ${await userToken('oversized-alice')}`, 'Content-Type': 'application/json' };
    const deploy = (body: unknown) => fetch(`${base}/api/deployment/deploy`, { method: 'POST', headers, body: JSON.stringify(body) });
    expect((await deploy(spec)).status).toBe(201);
    const seen: string[] = [];
    const connectionHeaders = new Set<string | null>();
    const attempt = async (what: string, send: () => Promise<Response>): Promise<void> => {
      try {
        const res = await send();
        const body = (await res.json()) as { error: { code: string } };
        if (res.status === 413) connectionHeaders.add(res.headers.get('connection'));
        seen.push(`${what} ${res.status} ${body.error.code}`);
      } catch (err) {
        seen.push(`${what} failed: ${(err as { cause?: { code?: string } }).cause?.code ?? String(err)}`);
      }
    };
    for (let round = 0; round < 6; round++) {
      await attempt('2 MB', () => deploy({ ...spec, name: 'x'.repeat(2_000_000) }));
      await attempt('duplicate', () => deploy(spec));
    }
    expect(seen).toEqual(Array.from({ length: 6 }, () => ['2 MB 413 payload_too_large', 'duplicate 409 conflict']).flat());
    expect([...connectionHeaders]).toEqual(['close']);
  });

  it('after a 431 for a 1 MB token, Node’s fetch reads the answer and goes on', async () => {
    const token = await userToken('oversized-bob');
    for (let round = 0; round < 3; round++) {
      const big = await fetch(`${base}/api/deployment/list`, { headers: { Authorization: `Bearer ${'A'.repeat(1_000_000)}` } });
      expect(big.status).toBe(431);
      expect(big.headers.get('connection')).toBe('close');
      expect(((await big.json()) as { error: { code: string } }).error.code).toBe('headers_too_large');
      expect((await fetch(`${base}/api/deployment/list`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    }
  });

  it('a 413 refused early: the server reads out the rest of the body and closes without a reset', async () => {
    const token = await userToken('oversized-carol');
    const body = Buffer.alloc(4 * 1024 * 1024, 'a');
    const head =
      `POST /api/deployment/deploy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const c = await refusedWhileSending(server.port, head + body.subarray(0, 1024).toString('latin1'), body.subarray(1024));
    expect(c.error).toBeNull();
    expect(c.ended).toBe(true);
    expect(c.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(c.text).toContain('"payload_too_large"');
    expect(c.text).toMatch(/\r\nconnection: close\r\n/i);
  });

  it('a chunked body that passes the limit: a 413 once it does, the rest read out, closed without a reset', async () => {
    const token = await userToken('oversized-dave');
    const piece = Buffer.alloc(16 * 1024, 'a');
    const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
    // No Content-Length: nothing is known before the body passes 64 KiB, in its fifth chunk.
    const head =
      `POST /api/deployment/deploy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
      `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const rest = Buffer.concat([...Array.from({ length: 64 }, () => chunk), Buffer.from('0\r\n\r\n')]);
    const c = await refusedWhileSending(server.port, head + Buffer.concat(Array.from({ length: 5 }, () => chunk)).toString('latin1'), rest);
    expect(c.error).toBeNull();
    expect(c.ended).toBe(true);
    expect(c.text).toMatch(/^HTTP\/1\.1 413 /);
    expect(c.text).toContain('"payload_too_large"');
  });

  it('a chunked body within the limit is read whole, and a leading byte-order mark is dropped as fetch drops it', async () => {
    const token = await userToken('oversized-erin');
    const json = JSON.stringify({ ...spec, name: 'chunked' });
    const send = (pieces: Buffer[]) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${base}/api/deployment/deploy`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString('utf8')));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        for (const p of pieces) req.write(p);
        req.end();
      });
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]);
    const created = await send([bytes.subarray(0, 10), bytes.subarray(10, 40), bytes.subarray(40)]);
    expect(created.status).toBe(201);
    expect((JSON.parse(created.body) as { name: string }).name).toBe('chunked');
    const broken = await send([Buffer.from(json.slice(0, -1))]);
    expect(broken.status).toBe(400);
  });

  it('a 431 from the HTTP parser: a JSON answer, then the rest of the headers are read out without a reset', async () => {
    const huge = Buffer.alloc(1_000_000, 'A');
    const head = `GET /api/deployment/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${huge.subarray(0, 64 * 1024).toString('latin1')}`;
    const c = await refusedWhileSending(server.port, head, Buffer.concat([huge.subarray(64 * 1024), Buffer.from('\r\n\r\n')]));
    expect(c.error).toBeNull();
    expect(c.ended).toBe(true);
    expect(c.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(c.text).toContain('"headers_too_large"');
    expect(c.text).toMatch(/\r\nConnection: close\r\n/);
  });
});
