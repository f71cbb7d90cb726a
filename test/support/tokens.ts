import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { createApp, type App, type AppOptions } from '../../src/api/app.js';
import { signToken } from '../../src/api/tokens.js';
import { loadConfig } from '../../src/config.js';
import { systemClock, type Context } from '../../src/context.js';
import type { Database } from '../../src/db/database.js';
import { createMetrics } from '../../src/metrics.js';
import { silentLogger } from './databases.js';

/** Tokens for API tests, good and hostile, and an app built the way tests need it. */

export const TEST_SECRET = 'steady-test-secret-0123456789abcdef-0123456789';

export const userToken = (sub: string, ttlSec = 3600) => signToken(TEST_SECRET, { sub, ttlSec });
export const adminToken = (sub = 'root') => signToken(TEST_SECRET, { sub, roles: ['admin'] });
export const nodeToken = (name: string) => signToken(TEST_SECRET, { sub: name, roles: ['node'] });

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const nowSec = () => Math.floor(Date.now() / 1000);

/** `alg: none`: a header, the claims and an empty signature. */
export function unsignedToken(claims: Record<string, unknown> = {}): string {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'mallory', exp: nowSec() + 3600, ...claims })}.`;
}

/** HS256 over arbitrary claims (for claim-shape attacks: non-array roles, missing exp…). */
export async function hsToken(claims: Record<string, unknown>, secret = TEST_SECRET, alg = 'HS256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

export interface RsaKeys {
  readonly privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  readonly publicJwk: JWK;
  /** The public key as PEM text: what an HS/RS confusion attack uses as the HMAC secret. */
  readonly publicPem: string;
}

export async function rsaKeys(kid = 'test-key'): Promise<RsaKeys> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const spki = Buffer.from(await crypto.subtle.exportKey('spki', publicKey)).toString('base64');
  const publicPem = `-----BEGIN PUBLIC KEY-----\n${spki.match(/.{1,64}/g)?.join('\n')}\n-----END PUBLIC KEY-----\n`;
  return { privateKey, publicJwk, publicPem };
}

export async function rsToken(keys: RsaKeys, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT({ exp: nowSec() + 3600, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: String(keys.publicJwk.kid) })
    .sign(keys.privateKey);
}

export interface TestApp {
  readonly app: App;
  readonly ctx: Context;
  /** app.request with a JSON body (when given) and headers. */
  call(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<Response>;
}

export function createTestApp(database: Database, env: Record<string, string> = {}, options: AppOptions = {}): TestApp {
  const ctx: Context = {
    // No rate limit unless a test sets one: every test shares alice's and bob's buckets, and how many
    // requests the tests before it spent would decide whether a test gets 429s.
    config: loadConfig({ JWT_SECRET: TEST_SECRET, STEADY_RATE_LIMIT: '0', ...env }),
    database,
    logger: silentLogger,
    metrics: createMetrics({ defaultMetrics: false }),
    clock: systemClock,
  };
  const app = createApp(ctx, options);
  return {
    app,
    ctx,
    async call(method, path, { token, body, headers = {} } = {}) {
      const init: RequestInit = { method, headers: { ...(token ? bearer(token) : {}), ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        init.headers = { 'Content-Type': 'application/json', ...init.headers };
      }
      return app.request(path, init);
    },
  };
}
