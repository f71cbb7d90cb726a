/** A status or health word, coloured by what it means (the word itself carries the meaning too). */
const TONE: Readonly<Record<string, string>> = {
  running: 'good', healthy: 'good', ready: 'good', complete: 'good',
  scheduled: 'busy', starting: 'busy', progressing: 'busy', pending: 'busy', stopping: 'busy', draining: 'busy',
  degraded: 'warn', cordoned: 'warn', paused: 'warn', not_ready: 'bad',
  failed: 'bad', unhealthy: 'bad', deleted: 'muted', stopped: 'muted',
};

export function Badge({ value }: { value: string }) {
  return <span class={`badge tone-${TONE[value] ?? 'muted'}`}>{value.replace('_', ' ')}</span>;
}
