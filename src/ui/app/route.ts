import { useEffect, useState } from 'preact/hooks';

/** Views live in the fragment (`#/`, `#/deployments/<id>`, `#/nodes`): the server only ever serves `/`. */

export type Route = { readonly view: 'deployments' } | { readonly view: 'deployment'; readonly id: string } | { readonly view: 'nodes' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '');
  const deployment = /^\/deployments\/([0-9a-f-]{36})$/i.exec(path);
  if (deployment) return { view: 'deployment', id: deployment[1]!.toLowerCase() };
  if (path === '/nodes') return { view: 'nodes' };
  return { view: 'deployments' };
}

export const hrefOf = (route: Route): string =>
  route.view === 'deployment' ? `#/deployments/${route.id}` : route.view === 'nodes' ? '#/nodes' : '#/';

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
