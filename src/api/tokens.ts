import { SignJWT } from 'jose';

export interface TokenClaims {
  readonly sub: string;
  readonly roles?: readonly string[];
  /** A jose duration ('1h', '30d') or seconds; default one hour. */
  readonly expiresIn?: string | number;
  readonly issuer?: string;
  readonly audience?: string;
  /** A jose duration or epoch seconds before which the token is not valid. */
  readonly notBefore?: string | number;
}

/** An HS256 JWT the API accepts when it runs with the same `JWT_SECRET` (for `steady token` and tests). */
export async function signToken(secret: string, claims: TokenClaims): Promise<string> {
  const jwt = new SignJWT(claims.roles ? { roles: [...claims.roles] } : {})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(claims.expiresIn ?? '1h');
  if (claims.issuer) jwt.setIssuer(claims.issuer);
  if (claims.audience) jwt.setAudience(claims.audience);
  if (claims.notBefore !== undefined) jwt.setNotBefore(claims.notBefore);
  return jwt.sign(new TextEncoder().encode(secret));
}
