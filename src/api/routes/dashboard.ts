import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context as HonoContext } from 'hono';
import { UnavailableError } from '../../domain/errors.js';
import { ASSET_PATH, type DashboardFile } from '../../ui/bundle.js';
import type { DashboardSource } from '../../ui/dashboard-source.js';
import type { ApiEnv } from '../auth.js';

/**
 * Everything the page may load comes from this origin: scripts and styles only from files (no
 * inline code, no eval), data only from this API. Trusted Types keep strings out of HTML sinks.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  'trusted-types',
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Hashed names never change content: a year, immutable. The page itself is revalidated every time. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/** The dashboard: the page at `/`, its assets under `/assets/`. No token needed: the page holds no data. */
export function registerDashboardRoutes(app: OpenAPIHono<ApiEnv>, source: DashboardSource): void {
  const bundle = async () => {
    try {
      return await source();
    } catch (err) {
      throw new UnavailableError('the dashboard could not be built', err);
    }
  };
  app.get('/', async (c) => send(c, (await bundle()).index, REVALIDATE));
  app.get(`${ASSET_PATH}:name`, async (c) => {
    const file = (await bundle()).assets.get(c.req.param('name'));
    return file ? send(c, file, IMMUTABLE) : c.notFound();
  });
}

function send(c: HonoContext<ApiEnv>, file: DashboardFile, cacheControl: string): Response {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'Content-Type': file.contentType,
    'Cache-Control': cacheControl,
    Vary: 'Accept-Encoding',
  };
  // The gzipped bytes are another representation: another validator.
  const gzip = acceptsGzip(c.req.header('Accept-Encoding'));
  const etag = gzip ? `${file.etag.slice(0, -1)}-gzip"` : file.etag;
  headers.ETag = etag;
  if (matches(c.req.header('If-None-Match'), etag)) return c.body(null, 304, headers);
  if (gzip) return c.body(file.gzip as Uint8Array<ArrayBuffer>, 200, { ...headers, 'Content-Encoding': 'gzip' });
  return c.body(file.body as Uint8Array<ArrayBuffer>, 200, headers);
}

const matches = (ifNoneMatch: string | undefined, etag: string): boolean =>
  ifNoneMatch !== undefined && (ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag));

/** `gzip` listed without `q=0`. */
function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding?.trim() !== 'gzip') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
