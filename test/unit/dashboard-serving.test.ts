import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { OpenAPIHono } from '@hono/zod-openapi';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiEnv } from '../../src/api/auth.js';
import { createErrorHandler, notFoundHandler } from '../../src/api/errors.js';
import { registerDashboardRoutes } from '../../src/api/routes/dashboard.js';
import { buildDashboard } from '../../src/ui/build.js';
import { subresourceIntegrity, type DashboardBundle } from '../../src/ui/bundle.js';
import { packagedDashboard, type DashboardSource } from '../../src/ui/dashboard-source.js';
import { writeDashboard } from '../../src/ui/static-files.js';
import { silentLogger } from '../support/databases.js';

function appWith(source: DashboardSource) {
  const app = new OpenAPIHono<ApiEnv>();
  app.onError(createErrorHandler(silentLogger));
  app.notFound(notFoundHandler);
  registerDashboardRoutes(app, source);
  return app;
}

describe('the dashboard build and how it is served', () => {
  let bundle: DashboardBundle;
  let html: string;
  beforeAll(async () => {
    bundle = await buildDashboard();
    html = new TextDecoder().decode(bundle.index.body);
  }, 60_000);

  it('builds one script, one stylesheet and an icon, named by content hash, the same way every time', async () => {
    const names = [...bundle.assets.keys()].sort();
    expect(names).toHaveLength(3);
    const named = (pattern: RegExp) => names.filter((n) => pattern.test(n));
    expect(named(/^app-[A-Z0-9]{8}\.js$/)).toHaveLength(1);
    expect(named(/^app-[A-Z0-9]{8}\.css$/)).toHaveLength(1);
    expect(named(/^icon-[A-Z0-9]{8}\.svg$/)).toHaveLength(1);
    const again = await buildDashboard();
    expect([...again.assets.keys()].sort()).toEqual(names);
    expect(again.index.etag).toBe(bundle.index.etag);
  }, 60_000);

  it('links every asset by its hashed path with its integrity, and holds no inline script or style', () => {
    for (const asset of bundle.assets.values()) expect(html).toContain(`/assets/${asset.name}`);
    for (const asset of [...bundle.assets.values()].filter((a) => !a.name.endsWith('.svg'))) {
      expect(html).toContain(`integrity="${subresourceIntegrity(asset.body)}"`);
    }
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('serves the page with a strict policy and no caching, and the assets for a year', async () => {
    const app = appWith(async () => bundle);
    const page = await app.request('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe');
    expect(await page.text()).toBe(html);

    const script = [...bundle.assets.values()].find((a) => a.name.endsWith('.js'))!;
    const asset = await app.request(`/assets/${script.name}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await asset.arrayBuffer()).equals(Buffer.from(script.body))).toBe(true);
  });

  it('sends gzip to clients that take it, and 304 for what they already have', async () => {
    const app = appWith(async () => bundle);
    const script = [...bundle.assets.values()].find((a) => a.name.endsWith('.js'))!;
    const zipped = await app.request(`/assets/${script.name}`, { headers: { 'Accept-Encoding': 'br, gzip;q=0.8' } });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    expect(zipped.headers.get('vary')).toBe('Accept-Encoding');
    expect(gunzipSync(Buffer.from(await zipped.arrayBuffer())).equals(Buffer.from(script.body))).toBe(true);
    const refused = await app.request(`/assets/${script.name}`, { headers: { 'Accept-Encoding': 'gzip;q=0' } });
    expect(refused.headers.get('content-encoding')).toBeNull();

    const etag = zipped.headers.get('etag')!;
    expect(etag).not.toBe(refused.headers.get('etag'));
    const cached = await app.request(`/assets/${script.name}`, { headers: { 'Accept-Encoding': 'gzip', 'If-None-Match': etag } });
    expect(cached.status).toBe(304);
    const page = await app.request('/', { headers: { 'If-None-Match': bundle.index.etag } });
    expect(page.status).toBe(304);
  });

  it('answers an unknown asset with 404, and a failed build with 503, trying again next time', async () => {
    const app = appWith(async () => bundle);
    const missing = await app.request('/assets/app-AAAAAAAA.js');
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('not_found');

    const broken = packagedDashboard({ prebuilt: fs.mkdtempSync(path.join(os.tmpdir(), 'steady-ui-')), entry: '/nonexistent/main.tsx' });
    const failing = appWith(broken);
    const res = await failing.request('/');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('service_unavailable');
  });

  it('reads the built files back exactly as the container image ships them', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-ui-'));
    await writeDashboard(bundle, dir);
    const source = packagedDashboard({ prebuilt: dir, entry: '/nonexistent/main.tsx' });
    const read = await source();
    expect(read.index.etag).toBe(bundle.index.etag);
    expect([...read.assets.keys()].sort()).toEqual([...bundle.assets.keys()].sort());
    for (const [name, asset] of bundle.assets) expect(read.assets.get(name)!.etag).toBe(asset.etag);
    // Built once per source.
    expect(await source()).toBe(read);
  });
});
