import { readEventStream } from './event-stream.js';

/**
 * One connection to GET /api/events for the whole page: resumes with Last-Event-ID after a drop,
 * waits as the server's `retry:` says (doubling while it keeps failing), and gives up on a
 * connection that has been silent for three ping periods. No polling: views reload when told.
 */

export type LiveState = 'connecting' | 'open' | 'down';

export interface LiveEvent {
  /** `deployment`, `history`, `replica`, `reset`; or `open` when a connection (re)opens, since events may have been missed before it did. */
  readonly type: string;
  readonly data: Record<string, unknown>;
}

const SILENCE_MS = 45_000;
const MAX_WAIT_MS = 30_000;

export class LiveStream {
  private state: LiveState = 'connecting';
  private lastEventId: string | null = null;
  private retryMs = 2_000;
  private failures = 0;
  private readonly listeners = new Set<(e: LiveEvent) => void>();
  private readonly stateListeners = new Set<(s: LiveState) => void>();
  private readonly stopped = new AbortController();

  constructor(
    private readonly token: string,
    private readonly onUnauthorized: () => void,
  ) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped.abort();
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

  private setState(state: LiveState): void {
    if (state === this.state) return;
    this.state = state;
    for (const l of this.stateListeners) l(state);
  }

  private emit(event: LiveEvent): void {
    for (const l of this.listeners) l(event);
  }

  private async run(): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const outcome = await this.connectOnce();
      if (outcome === 'unauthorized' || this.stopped.signal.aborted) return;
      this.setState('down');
      this.failures = outcome === 'served' ? 0 : this.failures + 1;
      const wait = Math.min(MAX_WAIT_MS, this.retryMs * 2 ** Math.min(this.failures, 4));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.stopped.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  }

  /** One connection, until it ends: 'served' when it was open, 'failed' when it never opened. */
  private async connectOnce(): Promise<'served' | 'failed' | 'unauthorized'> {
    const attempt = new AbortController();
    const abort = () => attempt.abort();
    this.stopped.signal.addEventListener('abort', abort, { once: true });
    let silence: ReturnType<typeof setTimeout> | undefined;
    const alive = () => {
      clearTimeout(silence);
      silence = setTimeout(abort, SILENCE_MS);
    };
    try {
      const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: 'text/event-stream' };
      if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
      alive();
      const res = await fetch('/api/events', { headers, signal: attempt.signal, cache: 'no-store' });
      if (res.status === 401) {
        this.onUnauthorized();
        return 'unauthorized';
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        return 'failed';
      }
      this.setState('open');
      this.emit({ type: 'open', data: {} });
      await readEventStream(
        res.body,
        {
          onActivity: alive,
          onRetry: (ms) => (this.retryMs = Math.max(500, ms)),
          onMessage: (m) => {
            this.lastEventId = m.lastEventId;
            this.emit({ type: m.type, data: parse(m.data) });
          },
        },
        this.lastEventId,
      );
      return 'served';
    } catch {
      return this.state === 'open' ? 'served' : 'failed';
    } finally {
      clearTimeout(silence);
      this.stopped.signal.removeEventListener('abort', abort);
    }
  }
}

function parse(data: string): Record<string, unknown> {
  try {
    const value = JSON.parse(data) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
