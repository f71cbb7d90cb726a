import { useState } from 'preact/hooks';
import { Badge } from '../components/badge.js';
import { Bar } from '../components/bar.js';
import { ConfirmButton } from '../components/confirm-button.js';
import { Problem } from '../components/problem.js';
import { age } from '../format.js';
import { ApiError } from '../../../client/api-error.js';
import { allocatingCount } from '../../../domain/types.js';
import { useLiveData, useNow } from '../live-data.js';
import { useSession } from '../session-context.js';
import type { NodeOverview } from '../types.js';

type NodeStatus = 'ready' | 'cordoned' | 'draining';

/** Every node (admin): capacity against allocation, replica counts, cordon / uncordon / drain, and remove once empty. */
export function NodeList() {
  const { client, isAdmin } = useSession();
  const now = useNow();
  const [actionError, setActionError] = useState<ApiError | null>(null);
  // Node events (registered, status changed, deleted) and replica events (allocation moved).
  const nodes = useLiveData(() => client.nodes(), [], (e) => e.type === 'node' || e.type === 'replica');
  /** Runs an admin action; what refuses it is shown, and the list is read again either way. */
  const act = async (call: () => Promise<unknown>) => {
    setActionError(null);
    try {
      await call();
    } catch (err) {
      setActionError(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
    }
    await nodes.reload();
  };
  const setStatus = (node: NodeOverview, status: NodeStatus) => act(() => client.setNodeStatus(node.node_id, status));
  const remove = (node: NodeOverview) => act(() => client.deleteNode(node.node_id));
  if (!isAdmin) {
    return (
      <section>
        <h1>Nodes</h1>
        <p>Nodes are shown to tokens with the <code>admin</code> role.</p>
      </section>
    );
  }
  const sorted = [...(nodes.data ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section aria-labelledby="nodes-title">
      <div class="view-head">
        <h1 id="nodes-title">Nodes</h1>
        <button type="button" onClick={() => void nodes.reload()}>
          Refresh
        </button>
      </div>
      <Problem error={nodes.error ?? actionError} />
      {nodes.data === undefined && !nodes.error && <p class="muted">Loading…</p>}
      {nodes.data?.length === 0 && <p class="empty">No node has registered yet.</p>}
      <ul class="nodes">
        {sorted.map((n) => {
          const counts = Object.entries(n.replica_counts).filter(([, count]) => count > 0);
          const held = allocatingCount(n.replica_counts);
          return (
            <li key={n.node_id} class="node" data-node={n.name}>
              <div class="node-head">
                <h2>{n.name}</h2>
                <Badge value={n.status} />
                <span class="muted">heartbeat {n.last_heartbeat_at ? `${age(n.last_heartbeat_at, now)} ago` : 'never'}</span>
              </div>
              <Bar label="CPU" used={n.allocated.cpu_cores} total={n.cpu_cores} unit="cores" />
              <Bar label="Memory" used={n.allocated.memory_mb} total={n.memory_mb} unit="MB" />
              {n.gpu_units > 0 && <Bar label="GPU" used={n.allocated.gpu_units} total={n.gpu_units} unit="units" />}
              <Bar label="Storage" used={n.allocated.storage_gb} total={n.storage_gb} unit="GB" />
              <p class="counts">
                {counts.length === 0 ? <span class="muted">no replicas</span> : counts.map(([status, count]) => <span key={status}>{count} {status}</span>)}
              </p>
              <div class="buttons">
                {n.status === 'ready' || n.status === 'not_ready' ? (
                  <button type="button" onClick={() => void setStatus(n, 'cordoned')}>
                    Cordon
                  </button>
                ) : (
                  <button type="button" onClick={() => void setStatus(n, 'ready')}>
                    Uncordon
                  </button>
                )}
                <ConfirmButton
                  label="Drain"
                  danger
                  disabled={n.status === 'draining'}
                  question={`Drain ${n.name}? Its replicas are stopped and placed on other nodes.`}
                  onConfirm={() => setStatus(n, 'draining')}
                />
                {/* As `kubectl delete node` after a drain: only a node that holds nothing (the API says 409 otherwise). */}
                {held === 0 && (
                  <ConfirmButton
                    label="Remove"
                    danger
                    question={`Remove ${n.name}? An agent still running there registers it again.`}
                    onConfirm={() => remove(n)}
                  />
                )}
              </div>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
