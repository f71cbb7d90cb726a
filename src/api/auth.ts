import type { MiddlewareHandler } from 'hono';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { JwtConfig } from '../config.js';
import type { Database } from '../db/database.js';
import { ensureUser } from '../db/queries/users.js';
import { ForbiddenError, UnauthorizedError, UnavailableError } from '../domain/errors.js';
import { LruMap } from '../lib/lru.js';

export type Role = 'admin' | 'node';

/** Who is calling, as the token proves it. */
export interface Principal {
  /** The JWT `sub`: a user, or for the `node` role the node's name. */
  readonly subject: string;
  readonly roles: ReadonlySet<Role>;
  readonly username: string | null;
}

export type ApiEnv = { Variables: { principal: Principal } };

export type Authenticate = (authorization: string | undefined) => Promise<Principal>;

const HMAC_ALGORITHMS = ['HS256'] as const;
const JWKS_ALGORITHMS = ['RS256', 'ES256'] as const;
const KNOWN_ROLES: readonly Role[] = ['admin', 'node'];

/**
 * Verifies bearer tokens with jose. The algorithm allow-list is what defeats `alg: none` and key
 * confusion: HS256 only ever meets the shared secret, RS256/ES256 only the JWKS keys, so an HS256
 * token "signed" with an RSA public key has no key to verify against. Refuses to build without a key
 * source (fail at start-up, not on the first request).
 */
export interface AuthenticatorOptions {
  readonly jwksTimeoutMs?: number;
  /** Verified tokens remembered (by their exact text), so a client's every request is not a signature check. */
  readonly cacheSize?: number;
  /** How long a verified token is trusted without checking it again (never past its `exp`). */
  readonly cacheTtlMs?: number;
  readonly now?: () => number;
}

interface VerifiedToken {
  readonly principal: Principal;
  /** Epoch ms after which the entry is checked again: min(exp + tolerance, verified + TTL). */
  readonly until: number;
}

export function createAuthenticator(config: JwtConfig, options: AuthenticatorOptions = {}): Authenticate {
  if (config.secret === null && config.jwksUrl === null) {
    throw new Error('authentication needs JWT_SECRET or JWT_JWKS_URL');
  }
  const secret = config.secret === null ? null : new TextEncoder().encode(config.secret);
  // createRemoteJWKSet caches the key set and refetches on an unknown `kid` (rate-limited by cooldown).
  const jwks = config.jwksUrl === null ? null : createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: options.jwksTimeoutMs ?? 5_000 });
  const algorithms = [...(secret ? HMAC_ALGORITHMS : []), ...(jwks ? JWKS_ALGORITHMS : [])];
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === 'HS256' && secret) return secret;
    if (jwks && (JWKS_ALGORITHMS as readonly string[]).includes(header.alg ?? '')) return jwks(header, token);
    throw new UnauthorizedError('token algorithm not accepted');
  };

  // A token's text fixes its claims and signature, so a verified one stays verified until it expires.
  // Entries are also re-checked after the TTL: a key withdrawn from the JWKS stops working within it.
  const cache = new LruMap<string, VerifiedToken>(options.cacheSize ?? 10_000);
  const ttlMs = options.cacheTtlMs ?? 60_000;
  const now = options.now ?? Date.now;

  return async (authorization) => {
    const match = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(authorization ?? '');
    const token = match?.[1];
    if (!token) throw new UnauthorizedError('missing bearer token');
    const cached = cache.get(token);
    if (cached !== undefined) {
      if (now() < cached.until) return cached.principal;
      cache.delete(token);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        currentDate: new Date(now()),
        clockTolerance: config.clockToleranceSec,
        requiredClaims: ['exp', 'sub'],
        ...(config.issuer ? { issuer: config.issuer } : {}),
        ...(config.audience ? { audience: config.audience } : {}),
      }));
    } catch (err) {
      throw classifyVerifyError(err, jwks !== null);
    }
    const principal = principalOf(payload);
    const verifiedAt = now();
    // `exp` is required, so always a number here; nbf needs no entry rule: a token is cached only once valid.
    const expiresAt = (Number(payload.exp) + config.clockToleranceSec) * 1000;
    cache.set(token, { principal, until: Math.min(expiresAt, verifiedAt + ttlMs) });
    return principal;
  };
}

function classifyVerifyError(err: unknown, usesJwks: boolean): Error {
  if (err instanceof UnauthorizedError) return err;
  if (err instanceof joseErrors.JWKSTimeout) return new UnavailableError('identity provider key set unavailable', err);
  if (err instanceof joseErrors.JWTExpired) return new UnauthorizedError('token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return new UnauthorizedError(err.claim === 'nbf' ? 'token not yet valid' : `token claim ${err.claim} rejected`);
  }
  if (err instanceof joseErrors.JOSEError) return new UnauthorizedError('invalid token');
  // Not a JOSE error: with a JWKS, a failed fetch of the key set (the provider is away, not the caller wrong).
  if (usesJwks && err instanceof TypeError && /fetch/i.test(err.message)) {
    return new UnavailableError('identity provider key set unavailable', err);
  }
  // Anything else came out of parsing attacker-controlled input: still the caller's problem, never a 500.
  return new UnauthorizedError('invalid token');
}

function principalOf(payload: JWTPayload): Principal {
  const subject = payload.sub;
  // Stored as the user's key: no control characters (PostgreSQL stores no NUL), at most 255.
  if (typeof subject !== 'string' || subject.length === 0 || subject.length > 255 || /\p{Cc}/u.test(subject)) {
    throw new UnauthorizedError('token sub must be a non-empty string of at most 255 characters, without control characters');
  }
  const roles = payload.roles ?? [];
  if (!Array.isArray(roles) || !roles.every((r): r is string => typeof r === 'string')) {
    throw new UnauthorizedError('token roles must be an array of strings');
  }
  const username = typeof payload.preferred_username === 'string' && payload.preferred_username.length <= 255 ? payload.preferred_username : null;
  return {
    subject,
    roles: new Set(KNOWN_ROLES.filter((role) => roles.includes(role))),
    username,
  };
}

export function authenticate(verify: Authenticate): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    c.set('principal', await verify(c.req.header('Authorization')));
    await next();
  };
}

/** 403 unless the caller holds one of `roles`. */
export function requireRole(...roles: Role[]): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const principal = c.get('principal');
    if (!roles.some((role) => principal.roles.has(role))) {
      throw new ForbiddenError(`requires role ${roles.join(' or ')}`);
    }
    await next();
  };
}

/**
 * Deployment routes are for people. A node-only token (role `node`, no `admin`) is an agent's
 * credential: a leaked one must not be able to deploy, so it is refused here.
 */
export const requireUser: MiddlewareHandler<ApiEnv> = async (c, next) => {
  const { roles } = c.get('principal');
  if (roles.has('node') && !roles.has('admin')) throw new ForbiddenError('node tokens may only use the node agent routes');
  await next();
};

/**
 * subject → users.id, with the rows created on first use. A bounded in-process map (least recently
 * used out) so that reads do not write, and memory stays flat however many subjects pass by.
 */
export class UserDirectory {
  private readonly ids: LruMap<string, string>;

  constructor(
    private readonly database: Database,
    capacity = 10_000,
  ) {
    this.ids = new LruMap(capacity);
  }

  async idOf(principal: Principal): Promise<string> {
    const cached = this.ids.get(principal.subject);
    if (cached !== undefined) return cached;
    const id = await ensureUser(this.database.db, principal.subject, principal.username);
    this.ids.set(principal.subject, id);
    return id;
  }
}
