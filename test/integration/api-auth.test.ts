import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signToken } from '../../src/api/tokens.js';
import { describeBackends } from '../support/databases.js';
import {
  TEST_SECRET,
  createTestApp,
  hsToken,
  rsToken,
  rsaKeys,
  unsignedToken,
  userToken,
  type RsaKeys,
  type TestApp,
} from '../support/tokens.js';

const now = () => Math.floor(Date.now() / 1000);
const LIST = '/api/deployment/list';

describeBackends('API authentication', (t) => {
  let hs: TestApp;
  let keys: RsaKeys;
  let jwksServer: http.Server;
  let jwksUrl: string;

  beforeAll(async () => {
    hs = createTestApp(t().database);
    keys = await rsaKeys();
    jwksServer = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [keys.publicJwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(async () => {
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  const expect401 = async (app: TestApp, headers: Record<string, string>, label: string) => {
    const res = await app.call('GET', LIST, { headers });
    expect(res.status, label).toBe(401);
    expect(res.headers.get('www-authenticate'), label).toMatch(/^Bearer/);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code, label).toBe('unauthorized');
    expect(JSON.stringify(body)).not.toMatch(/at .*\.(ts|js):\d+/);
  };

  it('accepts a valid HS256 token and creates the user once, on first use', async () => {
    const token = await userToken('first-timer');
    for (let i = 0; i < 3; i++) expect((await hs.call('GET', LIST, { token })).status).toBe(200);
    const rows = await t().database.db.selectFrom('users').selectAll().where('subject', '=', 'first-timer').execute();
    expect(rows).toHaveLength(1);
  });

  it('rejects every malformed, forged or stale token with 401, never 500', async () => {
    const cases: [string, string | null][] = [
      ['no header', null],
      ['empty bearer', 'Bearer '],
      ['other scheme', `Basic ${Buffer.from('a:b').toString('base64')}`],
      ['not a JWT', 'Bearer not-a-jwt'],
      ['two segments', 'Bearer abc.def'],
      ['garbage segments', 'Bearer %%%.^^^.***'],
      ['header not JSON', `Bearer ${Buffer.from('nope').toString('base64url')}.e30.sig`],
      ['expired', `Bearer ${await hsToken({ sub: 'x', exp: now() - 60 })}`],
      ['not yet valid', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600, nbf: now() + 600 })}`],
      ['wrong signature', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600 }, 'another-secret-another-secret-1234567')}`],
      ['alg none', `Bearer ${unsignedToken()}`],
      ['alg none, admin', `Bearer ${unsignedToken({ roles: ['admin'] })}`],
      ['HS384 (not allowed)', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600 }, TEST_SECRET, 'HS384')}`],
      ['RS256 without a JWKS', `Bearer ${await rsToken(keys, { sub: 'x' })}`],
      ['HS256 keyed with the RSA public key', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600 }, keys.publicPem)}`],
      ['no exp', `Bearer ${await hsToken({ sub: 'x' })}`],
      ['no sub', `Bearer ${await hsToken({ exp: now() + 3600 })}`],
      ['sub not a string', `Bearer ${await hsToken({ sub: 42, exp: now() + 3600 })}`],
      // Signed, but a key PostgreSQL could not store (a NUL): refused, not a 500.
      ['sub with a NUL', `Bearer ${await hsToken({ sub: 'a\u0000b', exp: now() + 3600 })}`],
      ['sub with a control character', `Bearer ${await hsToken({ sub: 'a\u001bb', exp: now() + 3600 })}`],
      ['roles a string', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600, roles: 'admin' })}`],
      ['roles not strings', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600, roles: [1, 2] })}`],
      ['roles an object', `Bearer ${await hsToken({ sub: 'x', exp: now() + 3600, roles: { admin: true } })}`],
    ];
    for (const [label, header] of cases) await expect401(hs, header === null ? {} : { Authorization: header }, label);
    // Tampering with the payload of a valid token breaks the signature.
    const [h, , s] = (await userToken('victim')).split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'victim', roles: ['admin'], exp: now() + 3600 })).toString('base64url')}.${s}`;
    await expect401(hs, { Authorization: `Bearer ${forged}` }, 'tampered payload');
  });

  it('tolerates small clock skew on exp', async () => {
    const token = await hsToken({ sub: 'skewed', exp: now() - 2 });
    expect((await hs.call('GET', LIST, { token })).status).toBe(200);
  });

  it('checks iss and aud when configured', async () => {
    const app = createTestApp(t().database, { JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'steady' });
    const good = await signToken(TEST_SECRET, { sub: 'iss-user', issuer: 'https://id.example', audience: 'steady' });
    expect((await app.call('GET', LIST, { token: good })).status).toBe(200);
    for (const [label, claims] of [
      ['wrong issuer', { issuer: 'https://evil.example', audience: 'steady' }],
      ['wrong audience', { issuer: 'https://id.example', audience: 'other' }],
      ['no issuer', { audience: 'steady' }],
      ['no audience', { issuer: 'https://id.example' }],
    ] as const) {
      const token = await signToken(TEST_SECRET, { sub: 'iss-user', ...claims });
      await expect401(app, { Authorization: `Bearer ${token}` }, label);
    }
  });

  it('verifies RS256 tokens against a remote JWKS, and refuses HS/RS confusion there', async () => {
    const app = createTestApp(t().database, { JWT_SECRET: '', JWT_JWKS_URL: jwksUrl });
    expect((await app.call('GET', LIST, { token: await rsToken(keys, { sub: 'rs-user' }) })).status).toBe(200);
    const confused = await hsToken({ sub: 'x', exp: now() + 3600 }, keys.publicPem);
    await expect401(app, { Authorization: `Bearer ${confused}` }, 'HS256 with the public key as secret');
    await expect401(app, { Authorization: `Bearer ${await userToken('hs-user')}` }, 'HS256 on a JWKS-only API');
    const otherKeys = await rsaKeys('unknown-kid');
    await expect401(app, { Authorization: `Bearer ${await rsToken(otherKeys, { sub: 'x' })}` }, 'unknown kid');
    await expect401(app, { Authorization: `Bearer ${await rsToken(keys, { sub: 'x', exp: now() - 60 })}` }, 'expired RS256');
  });

  it('answers 503, not 401 or 500, when the JWKS cannot be fetched', async () => {
    const app = createTestApp(t().database, { JWT_SECRET: '', JWT_JWKS_URL: 'http://127.0.0.1:1/jwks.json' });
    const res = await app.call('GET', LIST, { token: await rsToken(keys, { sub: 'x' }) });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('service_unavailable');
  });

  it('refuses to build without a key source', () => {
    expect(() => createTestApp(t().database, { JWT_SECRET: '' })).toThrow(/JWT_SECRET or JWT_JWKS_URL/);
  });
});
