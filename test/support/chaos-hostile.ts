import { createHmac } from 'node:crypto';
import net from 'node:net';
import { SignJWT } from 'jose';
import { CHAOS_SECRET } from './chaos-cluster.js';

/** Raw-socket requests and hostile tokens for test/e2e/faults-hostile.test.ts. */

export interface RawAnswer {
  /** Status codes of every response received, in order (pipelining gives several). */
  readonly statuses: number[];
  readonly text: string;
  /** The server closed the connection without answering anything. */
  readonly closedSilently: boolean;
}

/** Writes bytes to the API's socket as they are, and reads what comes back until close or `timeoutMs`. */
export function rawRequest(port: number, payload: Buffer | string, timeoutMs = 4_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
      resolve({ statuses, text, closedSilently: statuses.length === 0 });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (c) => chunks.push(c));
    // An error (EPIPE, ECONNRESET while we still write) is followed by 'close'; keep what arrived until then.
    socket.on('error', () => undefined);
    socket.on('close', finish);
    socket.on('connect', () => socket.write(payload));
  });
}

/** A well-formed HTTP/1.1 request around arbitrary body bytes. */
export function httpRequest(method: string, target: string, headers: Record<string, string>, body?: Buffer | string): Buffer {
  const bodyBytes = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'transfer-encoding')) lines.push(`Content-Length: ${bodyBytes.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), bodyBytes]);
}

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const nowSec = (): number => Math.floor(Date.now() / 1000);

async function hs(claims: Record<string, unknown>, header: Record<string, unknown> = {}, secret = CHAOS_SECRET): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header } as { alg: string })
    .sign(new TextEncoder().encode(secret));
}

/** HS256 over any header at all, signed by hand (jose refuses to sign what it would refuse to verify). */
function handSigned(header: Record<string, unknown>, claims: Record<string, unknown>, secret = CHAOS_SECRET): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Every kind of bad token we know of, each with a name; none may get past authentication. */
export async function hostileTokens(victim: string): Promise<[string, string][]> {
  const good = { sub: victim, exp: nowSec() + 3600 };
  const valid = await hs(good);
  const [h, p, s] = valid.split('.') as [string, string, string];
  const { generateKeyPair, exportSPKI } = await import('jose');
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const pem = await exportSPKI(publicKey);
  const rs = await new SignJWT(good).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
  const tokens: [string, string][] = [
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good)}.`],
    ['alg None', `${b64({ alg: 'None' })}.${b64(good)}.`],
    ['alg NONE with a signature', `${b64({ alg: 'NONE' })}.${b64(good)}.${s}`],
    ['empty signature', `${h}.${p}.`],
    ['truncated signature', `${h}.${p}.${s.slice(0, 10)}`],
    ['signature of another token', `${h}.${b64({ ...good, sub: `${victim}-other`, roles: ['admin'] })}.${s}`],
    ['payload raised to admin, signature kept', `${h}.${b64({ ...good, roles: ['admin', 'node'] })}.${s}`],
    ['wrong secret', await hs(good, {}, 'another-secret-that-is-long-enough-for-hs256!!')],
    ['empty secret', `${h}.${p}.${Buffer.alloc(0).toString('base64url')}`],
    ['expired', await hs({ sub: victim, exp: nowSec() - 3600 })],
    ['not yet valid', await hs({ sub: victim, exp: nowSec() + 3600, nbf: nowSec() + 600 })],
    ['no exp', await hs({ sub: victim })],
    ['exp as a string', await hs({ sub: victim, exp: String(nowSec() + 3600) })],
    ['no sub', await hs({ exp: nowSec() + 3600 })],
    ['empty sub', await hs({ sub: '', exp: nowSec() + 3600 })],
    ['sub a number', await hs({ sub: 42, exp: nowSec() + 3600 })],
    ['sub of 10 000 characters', await hs({ sub: 'x'.repeat(10_000), exp: nowSec() + 3600 })],
    ['roles a string', await hs({ ...good, roles: 'admin' })],
    ['roles an object', await hs({ ...good, roles: { admin: true } })],
    ['HS512 with the right secret', await new SignJWT(good).setProtectedHeader({ alg: 'HS512' }).sign(new TextEncoder().encode(CHAOS_SECRET))],
    ['HS384 with the right secret', await new SignJWT(good).setProtectedHeader({ alg: 'HS384' }).sign(new TextEncoder().encode(CHAOS_SECRET))],
    ['RS256 with an unknown key', rs],
    ['HS256 keyed with an RSA public key (key confusion)', await hs(good, {}, pem)],
    ['RS256 header over an HMAC signature', `${b64({ alg: 'RS256' })}.${p}.${s}`],
    ['kid path traversal', `${b64({ alg: 'HS256', kid: '../../../../dev/null' })}.${p}.${s}`],
    ['jku to an attacker', `${b64({ alg: 'RS256', jku: 'http://127.0.0.1:1/jwks.json' })}.${p}.${rs.split('.')[2]}`],
    ['x5u to an attacker', `${b64({ alg: 'RS256', x5u: 'http://127.0.0.1:1/cert.pem' })}.${p}.${rs.split('.')[2]}`],
    ['embedded jwk', `${b64({ alg: 'RS256', jwk: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } })}.${p}.${rs.split('.')[2]}`],
    ['unknown crit header', handSigned({ alg: 'HS256', crit: ['exp-ext'], 'exp-ext': true }, good)],
    ['b64 false (unencoded payload)', handSigned({ alg: 'HS256', b64: false, crit: ['b64'] }, good)],
    ['alg none signed anyway', handSigned({ alg: 'none' }, good)],
    ['header not JSON', `${b64('not json')}.${p}.${s}`],
    ['payload not JSON', `${h}.${b64('not json')}.${s}`],
    ['payload an array', `${h}.${b64([1, 2])}.${s}`],
    ['two segments', `${h}.${p}`],
    ['four segments', `${h}.${p}.${s}.${s}`],
    ['five segments (JWE shape)', `${h}.${p}.${s}.${s}.${s}`],
    ['not base64url', `${h}.${p}.%%%%`],
    ['1 MB token', `${h}.${'A'.repeat(1_000_000)}.${s}`],
    ['the string null', 'null'],
    ['garbage', 'garbage'],
  ];
  return tokens;
}

/** Authorization header values that are not one valid bearer token. */
export function hostileAuthorizationHeaders(valid: string): [string, string][] {
  return [
    ['Bearer alone', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['Basic scheme', `Basic ${Buffer.from('alice:secret').toString('base64')}`],
    ['token without scheme', valid],
    ['two tokens', `Bearer ${valid} ${valid}`],
    ['token with a tab', `Bearer\t${valid}`],
    ['comma-joined tokens', `Bearer ${valid}, Bearer ${valid}`],
    ['token with trailing garbage', `Bearer ${valid}x`],
    ['token with an inner space', `Bearer ${valid.slice(0, 20)} ${valid.slice(20)}`],
  ];
}
