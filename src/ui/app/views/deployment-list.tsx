import { useState } from 'preact/hooks';
import { Badge } from '../components/badge.js';
import { Problem } from '../components/problem.js';
import { age, rolloutText } from '../format.js';
import { useLiveData, useNow } from '../live-data.js';
import { hrefOf } from '../route.js';
import { useSession } from '../session-context.js';
import type { DeploymentRow } from '../types.js';

const PAGE = 100;

/** The signed-in user's deployments, newest first, filtered by name as you type. */
export function DeploymentList() {
  const { client } = useSession();
  const [pages, setPages] = useState(1);
  const [filter, setFilter] = useState('');
  const now = useNow();
  const { data, error } = useLiveData(
    async () => {
      const items: DeploymentRow[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < pages; page++) {
        const body = await client.listDeployments({ limit: PAGE, cursor: cursor ?? undefined });
        items.push(...body.items);
        cursor = body.next_cursor;
        if (cursor === null) break;
      }
      return { items, more: cursor !== null };
    },
    [pages],
    (e) => e.type === 'deployment' || e.type === 'replica',
  );
  const needle = filter.trim().toLowerCase();
  const shown = (data?.items ?? [])
    .filter((d) => d.name.toLowerCase().includes(needle))
    .sort((a, b) => b.created_at.localeCompare(a.created_at));

  return (
    <section aria-labelledby="deployments-title">
      <div class="view-head">
        <h1 id="deployments-title">Deployments</h1>
        <label class="filter">
          <span>Filter by name</span>
          <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} placeholder="name" autocomplete="off" />
        </label>
      </div>
      <Problem error={error} />
      {data === undefined && !error && <p class="muted">Loading…</p>}
      {data !== undefined && data.items.length === 0 && (
        <p class="empty">
          No deployments yet. Create one with <code>npx steady apply -f web.yaml</code> or <code>POST /api/deployment/deploy</code>.
        </p>
      )}
      {data !== undefined && data.items.length > 0 && (
        <div class="table-wrap">
          <table class="deployments">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" class="wide">Image</th>
                <th scope="col">Status</th>
                <th scope="col" class="wide">Health</th>
                <th scope="col" class="num">Running</th>
                <th scope="col" class="num wide" title="updated / available of target">Rollout</th>
                <th scope="col" class="num">Age</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((d) => (
                <tr key={d.deployment_id} data-deployment={d.name}>
                  <th scope="row">
                    <a href={hrefOf({ view: 'deployment', id: d.deployment_id })}>{d.name}</a>
                  </th>
                  <td class="image wide">{d.container_image}</td>
                  <td>
                    <Badge value={d.status} />
                  </td>
                  <td class="wide">
                    <Badge value={d.health} />
                  </td>
                  <td class="num running">
                    {d.running_replicas}/{d.target_replicas}
                  </td>
                  <td class="num wide rollout" title={d.rollout ? `${d.rollout.state}, revision ${d.rollout.revision}` : undefined}>
                    {rolloutText(d.rollout, d.target_replicas)}
                  </td>
                  <td class="num">
                    <time dateTime={d.created_at}>{age(d.created_at, now)}</time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {shown.length === 0 && <p class="muted">No deployment name contains “{filter}”.</p>}
        </div>
      )}
      {data?.more && (
        <button type="button" onClick={() => setPages((p) => p + 1)}>
          Show more
        </button>
      )}
    </section>
  );
}
