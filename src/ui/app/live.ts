import type { SteadyClient } from '../../client/client.js';

/**
 * One subscription to GET /api/events for the whole page, over the typed client's reader (which
 * resumes with Last-Event-ID and backs off by itself). This adds what a page needs: a state for the
 * banner, an `open` signal (events before a connection opened may have been missed: views read
 * again), and a watchdog that restarts a connection silent for three ping periods.
 */

export type LiveState = 'connecting' | 'open' | 'down';

export interface LiveEvent {
  /** `deployment`, `history`, `replica`, `reset`; or `open` when a connection (re)opens. */
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
}

const SILENCE_MS = 45_000;

export class LiveStream {
  private state: LiveState = 'connecting';
  private lastEventId: string | null = null;
  private attempt: AbortController | null = null;
  private silence: ReturnType<typeof setTimeout> | undefined;
  private readonly listeners = new Set<(e: LiveEvent) => void>();
  private readonly stateListeners = new Set<(s: LiveState) => void>();
  private readonly stopped = new AbortController();

  start(client: SteadyClient): void {
    void this.run(client);
  }

  stop(): void {
    clearTimeout(this.silence);
    this.stopped.abort();
    this.attempt?.abort();
  }

  get current(): LiveState {
    return this.state;
  }

  subscribe(listener: (e: LiveEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  watchState(listener: (s: LiveState) => void): () => void {
    this.stateListeners.add(listener);
    return () => void this.stateListeners.delete(listener);
  }

  /** The stream's answer arrived (told by the client's fetch). */
  opened(): void {
    this.setState('open');
    this.alive();
    this.emit({ type: 'open', data: {} });
  }

  /** Bytes arrived on the stream, pings included. */
  alive(): void {
    clearTimeout(this.silence);
    if (this.state === 'open') this.silence = setTimeout(() => this.attempt?.abort(), SILENCE_MS);
  }

  private async run(client: SteadyClient): Promise<void> {
    while (!this.stopped.signal.aborted) {
      this.attempt = new AbortController();
      try {
        const events = client.events({
          signal: this.attempt.signal,
          lastEventId: this.lastEventId ?? undefined,
          onReconnect: () => this.setState('down'),
        });
        for await (const event of events) {
          if (event.id !== null) this.lastEventId = event.id;
          this.emit({ type: event.type, data: (event.data ?? {}) as Record<string, unknown> });
        }
      } catch {
        // A refusal that retrying cannot fix (a refused token is handled by the session).
        this.setState('down');
        return;
      }
      // The watchdog ended a silent connection: start again after the last event seen.
      this.setState('down');
    }
  }

  private setState(state: LiveState): void {
    if (state === this.state) return;
    this.state = state;
    if (state !== 'open') clearTimeout(this.silence);
    for (const l of this.stateListeners) l(state);
  }

  private emit(event: LiveEvent): void {
    for (const l of this.listeners) l(event);
  }
}
