/** Short, human forms of what the API says. */

export function age(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '—';
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${minutes % 60 ? `${minutes % 60}m` : ''}`;
  return `${Math.floor(hours / 24)}d`;
}

export const shortId = (id: string): string => id.slice(0, 8);

export const localTime = (iso: string): string => new Date(iso).toLocaleString();

export function resourcesText(r: { cpu_cores: number; memory_mb: number; gpu_units: number; storage_gb: number }): string {
  return [`${r.cpu_cores} CPU`, `${r.memory_mb} MB`, ...(r.gpu_units > 0 ? [`${r.gpu_units} GPU`] : []), `${r.storage_gb} GB disk`].join(' · ');
}

/** `updated/available of target`, or a dash when the server reports no rollout. */
export function rolloutText(rollout: { updated_replicas: number; available_replicas: number } | null | undefined, target: number): string {
  return rollout ? `${rollout.updated_replicas}/${rollout.available_replicas} of ${target}` : '—';
}
