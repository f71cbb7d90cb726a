import { SignJWT } from 'jose';

export interface TokenClaims {
  readonly sub: string;
  readonly roles?: readonly string[];
  /** Lifetime in seconds from `now`; one hour by default. */
  readonly ttlSec?: number;
  readonly issuer?: string | null;
  readonly audience?: string | null;
  /** Epoch seconds before which the token is not valid. */
  readonly notBefore?: number;
}

/**
 * An HS256 JWT the API accepts when it runs with the same `JWT_SECRET`: `sub`, `roles`, `iat`, `exp`,
 * and `iss`/`aud` when given. The one signer of the project (`steady token`, `steady dev`, agents, tests).
 */
export async function signToken(secret: string, claims: TokenClaims, now: Date = new Date()): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  const jwt = new SignJWT(claims.roles ? { roles: [...claims.roles] } : {})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (claims.ttlSec ?? 3600));
  if (claims.issuer) jwt.setIssuer(claims.issuer);
  if (claims.audience) jwt.setAudience(claims.audience);
  if (claims.notBefore !== undefined) jwt.setNotBefore(claims.notBefore);
  return jwt.sign(new TextEncoder().encode(secret));
}

/**
 * A token per subject, re-signed once half its lifetime has passed; for long-running agents, so a
 * token never expires under them.
 */
export function createTokenMinter(
  secret: string,
  options: Omit<TokenClaims, 'sub'> & { readonly ttlSec: number },
  clock: () => Date = () => new Date(),
): (sub: string) => Promise<string> {
  const cache = new Map<string, { token: string; renewAt: number }>();
  return async (sub) => {
    const now = clock();
    const hit = cache.get(sub);
    if (hit && now.getTime() < hit.renewAt) return hit.token;
    const token = await signToken(secret, { ...options, sub }, now);
    cache.set(sub, { token, renewAt: now.getTime() + (options.ttlSec * 1000) / 2 });
    return token;
  };
}
