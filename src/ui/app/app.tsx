import { useEffect, useMemo, useState } from 'preact/hooks';
import type { LiveState } from './live.js';
import { hrefOf, useRoute } from './route.js';
import { forgetToken, storedToken, storeToken, takeTokenFromLocation } from './session.js';
import { createSession, SessionContext, useSession } from './session-context.js';
import { DeploymentDetail } from './views/deployment-detail.js';
import { DeploymentList } from './views/deployment-list.js';
import { NodeList } from './views/node-list.js';
import { SignIn } from './views/sign-in.js';

export function App({ icon }: { icon: string }) {
  const [token, setToken] = useState(storedToken);
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => {
    // A `#token=` link opened in a tab that is already showing the page.
    const onHash = () => {
      takeTokenFromLocation();
      setToken(storedToken());
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const session = useMemo(
    () =>
      token === null
        ? null
        : createSession(token, () => {
            forgetToken();
            setNotice('steady refused the token (expired, or not signed for this server). Sign in again.');
            setToken(null);
          }),
    [token],
  );
  useEffect(() => {
    session?.live.start(session.client);
    return () => session?.live.stop();
  }, [session]);
  if (!session) {
    return (
      <SignIn
        notice={notice}
        onToken={(t) => {
          storeToken(t);
          setNotice(null);
          setToken(t);
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Shell
        icon={icon}
        onSignOut={() => {
          forgetToken();
          setNotice(null);
          setToken(null);
        }}
      />
    </SessionContext.Provider>
  );
}

function Shell({ icon, onSignOut }: { icon: string; onSignOut: () => void }) {
  const { claims, isAdmin } = useSession();
  const route = useRoute();
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={hrefOf({ view: 'deployments' })}>
          <img src={icon} alt="" width={24} height={24} />
          steady
        </a>
        <nav aria-label="Views">
          <a href={hrefOf({ view: 'deployments' })} aria-current={route.view !== 'nodes' ? 'page' : undefined}>
            Deployments
          </a>
          {isAdmin && (
            <a href={hrefOf({ view: 'nodes' })} aria-current={route.view === 'nodes' ? 'page' : undefined}>
              Nodes
            </a>
          )}
        </nav>
        <span class="who">{claims.sub ?? ''}</span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <LiveBanner />
      <main id="main" tabIndex={-1}>
        {route.view === 'deployment' ? <DeploymentDetail id={route.id} /> : route.view === 'nodes' ? <NodeList /> : <DeploymentList />}
      </main>
    </>
  );
}

/** Shown while the event stream is down: what is on screen may be stale. */
function LiveBanner() {
  const { live } = useSession();
  const [state, setState] = useState<LiveState>(live.current);
  useEffect(() => live.watchState(setState), [live]);
  if (state !== 'down') return null;
  return (
    <div class="banner" role="status">
      Live updates are disconnected — reconnecting. What you see may be out of date.
    </div>
  );
}
