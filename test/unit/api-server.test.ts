import { OpenAPIHono } from '@hono/zod-openapi';
import { describe, expect, it } from 'vitest';
import type { ApiEnv } from '../../src/api/auth.js';
import { serveApi } from '../../src/api/server.js';

describe('serveApi', () => {
  it('binds a free port and finishes in-flight requests before closing', async () => {
    const app = new OpenAPIHono<ApiEnv>();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    app.get('/slow', async (c) => {
      await gate;
      return c.json({ done: true });
    });
    const server = await serveApi(app, { host: '127.0.0.1', port: 0 });
    expect(server.port).toBeGreaterThan(0);
    const inFlight = fetch(`http://127.0.0.1:${server.port}/slow`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    release();
    const res = await inFlight;
    expect(await res.json()).toEqual({ done: true });
    await closing;
    expect(closed).toBe(true);
    await expect(fetch(`http://127.0.0.1:${server.port}/slow`)).rejects.toThrow();
  });
});
