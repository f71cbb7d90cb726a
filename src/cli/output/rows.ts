import type { DeploymentListItem, NodeOverview, Rollout } from '../../client/types.js';
import { ACTIVE_REPLICA_STATUSES, countIn } from '../../domain/types.js';
import { age, status, type Cell } from './table.js';

/** A deployment in a list, as much as the list item (or a `deployment` event merged into it) says. */
export type DeploymentRowSource = Pick<DeploymentListItem, 'deployment_id' | 'name' | 'status' | 'health' | 'target_replicas' | 'running_replicas'> &
  Partial<Pick<DeploymentListItem, 'container_image' | 'total_replicas' | 'created_at'>> & {
    readonly revision?: number | null;
    readonly rollout?: Rollout | null;
  };

/** kubectl's columns (READY is running of target; UP-TO-DATE and AVAILABLE are the rollout's), then steady's. */
export const DEPLOYMENT_HEADERS = ['NAME', 'STATUS', 'HEALTH', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE'];
export const DEPLOYMENT_WIDE_HEADERS = [...DEPLOYMENT_HEADERS, 'IMAGE', 'REVISION', 'ROLLOUT', 'ID'];
/** While watching: STATUS and HEALTH as wide as their longest words (`scheduled`, `unhealthy`), ROLLOUT too (`progressing`). */
export const DEPLOYMENT_WATCH_WIDTHS = [0, 9, 9, 5, 0, 0, 0, 0, 0, 11];

export function deploymentRow(d: DeploymentRowSource, wide: boolean, now = Date.now()): Cell[] {
  const row: Cell[] = [
    d.name,
    status(d.status),
    status(d.health),
    `${d.running_replicas}/${d.target_replicas}`,
    d.rollout ? String(d.rollout.updated_replicas) : '',
    d.rollout ? String(d.rollout.available_replicas) : '',
    d.created_at ? age(d.created_at, now) : '',
  ];
  if (wide) row.push(d.container_image ?? '', d.revision == null ? '' : String(d.revision), d.rollout ? status(d.rollout.state) : '', d.deployment_id);
  return row;
}

export const NODE_HEADERS = ['NAME', 'STATUS', 'CPU', 'MEMORY_MB', 'REPLICAS', 'HEARTBEAT'];
export const NODE_WIDE_HEADERS = [...NODE_HEADERS, 'GPU', 'STORAGE_GB', 'LABELS', 'ID'];
/** While watching: STATUS as wide as `not_ready`. */
export const NODE_WATCH_WIDTHS = [0, 9];

/** Allocation against capacity, and the active replicas (pending, starting, running). */
export function nodeRow(n: NodeOverview, wide: boolean, now = Date.now()): Cell[] {
  const active = countIn(ACTIVE_REPLICA_STATUSES, n.replica_counts);
  const row: Cell[] = [
    n.name,
    status(n.status),
    `${thousandths(n.allocated.cpu_cores)}/${n.cpu_cores}`,
    `${n.allocated.memory_mb}/${n.memory_mb}`,
    String(active),
    n.last_heartbeat_at === null ? '<never>' : `${age(n.last_heartbeat_at, now)} ago`,
  ];
  if (wide) {
    const labels = Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',');
    row.push(`${n.allocated.gpu_units}/${n.gpu_units}`, `${n.allocated.storage_gb}/${n.storage_gb}`, labels === '' ? '<none>' : labels, n.node_id);
  }
  return row;
}

/** To the thousandth, as allocation counts CPU (millicores): no float noise in a table. */
export const thousandths = (n: number): number => Math.round(n * 1000) / 1000;
