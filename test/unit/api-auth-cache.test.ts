import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../src/api/auth.js';
import { signToken } from '../../src/api/tokens.js';
import type { JwtConfig } from '../../src/config.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const config: JwtConfig = { secret: SECRET, jwksUrl: null, issuer: null, audience: null, clockToleranceSec: 5 };

describe('verified-token cache', () => {
  it('still refuses a remembered token once it expires', async () => {
    let clock = Date.now();
    const verify = createAuthenticator(config, { now: () => clock, cacheTtlMs: 3_600_000 });
    const token = await signToken(SECRET, { sub: 'alice', ttlSec: 30 }, new Date(clock));
    expect((await verify(`Bearer ${token}`)).subject).toBe('alice');
    clock += 30_000; // within exp + tolerance
    expect((await verify(`Bearer ${token}`)).subject).toBe('alice');
    clock += 6_000;
    await expect(verify(`Bearer ${token}`)).rejects.toThrow('token expired');
  });

  it('serves only the exact token text it verified', async () => {
    const verify = createAuthenticator(config);
    const token = await signToken(SECRET, { sub: 'alice', ttlSec: 300 });
    await verify(`Bearer ${token}`);
    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${payload}.${signature!.slice(0, -2)}${signature!.endsWith('AA') ? 'BB' : 'AA'}`;
    await expect(verify(`Bearer ${forged}`)).rejects.toThrow('invalid token');
    const otherPayload = Buffer.from(JSON.stringify({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url');
    await expect(verify(`Bearer ${header}.${otherPayload}.${signature}`)).rejects.toThrow('invalid token');
  });
});
