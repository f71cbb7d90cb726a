import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { SteadyClient } from '../../client/client.js';
import { LiveStream } from './live.js';
import { claimsOf, type Claims } from './session.js';

/** What every view needs: the API client with the token, the live stream, who is signed in. */
export interface Session {
  readonly client: SteadyClient;
  readonly live: LiveStream;
  readonly claims: Claims;
  readonly isAdmin: boolean;
}

export function createSession(token: string, onUnauthorized: () => void): Session {
  const claims = claimsOf(token) ?? {};
  const live = new LiveStream();
  const client = new SteadyClient({ baseUrl: location.origin, token, fetch: watchedFetch(live, onUnauthorized) });
  return { client, live, claims, isAdmin: Array.isArray(claims.roles) && claims.roles.includes('admin') };
}

/**
 * The browser's fetch, watched: any 401 ends the session, and the event stream's answer and bytes
 * tell the live stream that it is open and alive (pings never reach the client's events).
 */
function watchedFetch(live: LiveStream, onUnauthorized: () => void): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    if (res.status === 401) onUnauthorized();
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!res.ok || res.body === null || new URL(url).pathname !== '/api/events') return res;
    live.opened();
    const tap = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        live.alive();
        controller.enqueue(chunk);
      },
    });
    return new Response(res.body.pipeThrough(tap), { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}
