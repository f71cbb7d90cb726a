import { useRef, useState } from 'preact/hooks';
import { Badge } from '../components/badge.js';
import { ConfirmButton } from '../components/confirm-button.js';
import { Problem } from '../components/problem.js';
import { age, localTime, resourcesText, rolloutText, shortId } from '../format.js';
import type { SteadyClient } from '../../../client/client.js';
import { ApiError } from '../../../client/api-error.js';
import type { LiveEvent } from '../live.js';
import { useLiveData, useNow } from '../live-data.js';
import { hrefOf } from '../route.js';
import { useSession } from '../session-context.js';
import { ActionForm } from './deployment-forms.js';

const concerns = (id: string) => (e: LiveEvent) => e.data.deployment_id === id || e.data.id === id;

/** One deployment: what it is, what runs, what it was, and what can be done to it. */
export function DeploymentDetail({ id }: { id: string }) {
  const { client } = useSession();
  const now = useNow();
  const [actionError, setActionError] = useState<ApiError | null>(null);
  // Once it is being deleted, its own events must not read it again (that would be a 404).
  const deleting = useRef(false);
  const status = useLiveData(() => client.status(id), [id], (e) => !deleting.current && concerns(id)(e));
  // A server without revisions (before rollouts) has no `revision` in the status: nothing to ask for.
  const hasRevisions = status.data?.revision !== undefined;
  const revisions = useLiveData(
    async () => (hasRevisions ? client.revisions(id) : null),
    [id, hasRevisions],
    (e) => hasRevisions && !deleting.current && e.type === 'deployment' && concerns(id)(e),
  );
  /** Runs one change and reads the deployment again; a deletion goes back to the list instead. */
  const act = async (change: (c: SteadyClient) => Promise<unknown>, deletes = false) => {
    setActionError(null);
    deleting.current = deletes;
    try {
      await change(client);
    } catch (err) {
      deleting.current = false;
      setActionError(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
      throw err;
    }
    if (deletes) location.hash = hrefOf({ view: 'deployments' });
    else await Promise.all([status.reload(), revisions.reload()]);
  };
  const d = status.data;
  if (!d) {
    return (
      <section>
        <p>
          <a href={hrefOf({ view: 'deployments' })}>← Deployments</a>
        </p>
        {status.error ? <Problem error={status.error} /> : <p class="muted">Loading…</p>}
      </section>
    );
  }
  const stopped = d.status === 'stopped';
  return (
    <section aria-labelledby="deployment-title" class="deployment">
      <p>
        <a href={hrefOf({ view: 'deployments' })}>← Deployments</a>
      </p>
      <div class="view-head">
        <h1 id="deployment-title">{d.name}</h1>
        <Badge value={d.status} />
        <Badge value={d.health} />
      </div>
      <dl class="facts">
        <dt>Image</dt>
        <dd class="image">{d.container_image}</dd>
        <dt>Replicas</dt>
        <dd class="running">
          {d.replicas.filter((r) => r.status === 'running').length} running of {d.target_replicas}
        </dd>
        {d.revision !== undefined && (
          <>
            <dt>Revision</dt>
            <dd>{d.revision}</dd>
          </>
        )}
        <dt>Resources</dt>
        <dd>{resourcesText(d.resources)} per replica</dd>
        <dt>Created</dt>
        <dd>
          <time dateTime={d.created_at} title={localTime(d.created_at)}>
            {age(d.created_at, now)} ago
          </time>
        </dd>
        {d.rollout && (
          <>
            <dt>Rollout</dt>
            <dd class="rollout">
              <Badge value={d.rollout.state} /> revision {d.rollout.revision}: {rolloutText(d.rollout, d.target_replicas)} (updated/available)
              {d.rollout.reason && <span class="reason"> — {d.rollout.reason}</span>}
            </dd>
          </>
        )}
        {d.reason && (
          <>
            <dt>Reason</dt>
            <dd class="reason">{d.reason}</dd>
          </>
        )}
      </dl>
      <Problem error={status.error} />

      <h2>Actions</h2>
      <div class="actions-panel">
        <ActionForm
          name="replicas"
          label="Replicas"
          button="Scale"
          type="number"
          min={1}
          max={100}
          initial={String(d.target_replicas)}
          onSubmit={(v) => act((c) => c.scale(id, Number(v)))}
        />
        <ActionForm
          name="image"
          label="Image"
          button="Set image"
          type="text"
          initial={d.container_image}
          onSubmit={(v) => act((c) => c.update(id, { container_image: v }))}
        />
        <div class="buttons">
          {stopped ? (
            <ConfirmButton key="start" label="Start" question={`Start ${d.name} again with ${d.target_replicas} replicas?`} onConfirm={() => act((c) => c.start(id)).catch(() => undefined)} />
          ) : (
            <ConfirmButton key="stop" label="Stop" question={`Stop every replica of ${d.name}?`} onConfirm={() => act((c) => c.stop(id)).catch(() => undefined)} />
          )}
          <ConfirmButton
            label="Delete"
            danger
            question={`Delete ${d.name}? Its replicas are stopped and it leaves the list.`}
            onConfirm={() => act((c) => c.deleteDeployment(id), true).catch(() => undefined)}
          />
        </div>
      </div>
      <Problem error={actionError} />

      <h2>Replicas</h2>
      <div class="table-wrap">
        <table class="replicas">
          <thead>
            <tr>
              <th scope="col">Replica</th>
              <th scope="col">Node</th>
              <th scope="col">Status</th>
              <th scope="col">Reason</th>
              <th scope="col" class="num">Revision</th>
              <th scope="col" class="num">Started</th>
            </tr>
          </thead>
          <tbody>
            {d.replicas.map((r) => (
              <tr key={r.id}>
                <td>
                  <code title={r.id}>{shortId(r.id)}</code>
                </td>
                <td>{r.node_name ?? (r.node_id ? shortId(r.node_id) : <span class="muted">unscheduled</span>)}</td>
                <td>
                  <Badge value={r.status} />
                </td>
                <td class="reason">{r.reason ?? ''}</td>
                <td class="num revision">{r.revision ?? '—'}</td>
                <td class="num">{r.started_at ? <time dateTime={r.started_at}>{age(r.started_at, now)} ago</time> : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {d.replicas.length === 0 && <p class="muted">No replicas.</p>}
      </div>

      {revisions.data && <h2>Revisions</h2>}
      <Problem error={revisions.error} />
      {revisions.data && (
        <div class="table-wrap">
          <table class="revisions">
            <thead>
              <tr>
                <th scope="col" class="num">Revision</th>
                <th scope="col">Image</th>
                <th scope="col">Resources</th>
                <th scope="col" class="num">Active</th>
                <th scope="col" class="num">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {revisions.data.map((r) => (
                <tr key={r.revision} data-revision={r.revision}>
                  <td class="num">{r.revision}</td>
                  <td class="image">{r.container_image}</td>
                  <td>{resourcesText(r.resources)}</td>
                  <td class="num">{r.active_replicas}</td>
                  <td class="num">
                    <time dateTime={r.created_at}>{age(r.created_at, now)} ago</time>
                  </td>
                  <td>
                    {r.revision === d.revision ? (
                      <span class="muted">current</span>
                    ) : (
                      <ConfirmButton
                        label={`Roll back to ${r.revision}`}
                        confirmLabel="Roll back"
                        question={`Roll ${d.name} back to the template of revision ${r.revision} (${r.container_image})? This makes a new revision.`}
                        onConfirm={() => act((c) => c.rollback(id, r.revision)).catch(() => undefined)}
                      />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>History</h2>
      <ol class="timeline">
        {d.recent_status_changes.map((h, i) => (
          <li key={`${h.changed_at}-${i}`}>
            <time dateTime={h.changed_at} title={localTime(h.changed_at)}>
              {age(h.changed_at, now)} ago
            </time>
            <span class="change">
              {h.old_status} → {h.new_status}
            </span>
            {h.reason && <span class="reason">{h.reason}</span>}
          </li>
        ))}
      </ol>
    </section>
  );
}
