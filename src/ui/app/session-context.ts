import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { createRequest, type Request } from './http.js';
import { LiveStream } from './live.js';
import { claimsOf, type Claims } from './session.js';

/** What every view needs: requests with the token, the live stream, who is signed in. */
export interface Session {
  readonly request: Request;
  readonly live: LiveStream;
  readonly claims: Claims;
  readonly isAdmin: boolean;
}

export function createSession(token: string, onUnauthorized: () => void): Session {
  const claims = claimsOf(token) ?? {};
  return {
    request: createRequest(token, onUnauthorized),
    live: new LiveStream(token, onUnauthorized),
    claims,
    isAdmin: Array.isArray(claims.roles) && claims.roles.includes('admin'),
  };
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}
