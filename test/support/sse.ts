/** A Server-Sent Events reader for tests, over any fetch Response (app.request or a real socket). */

export interface SseEvent {
  /** The last event id in force when the event was dispatched (the `id:` of its block, or an earlier one). */
  readonly id: string | null;
  /** Whether the block that dispatched it carried its own `id:` line. */
  readonly ownId: boolean;
  readonly event: string;
  readonly data: string;
}

export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  /** Blocks without data, as [field, value] lines (`retry:`, an `id:` alone). */
  readonly controlBlocks: [string, string][][] = [];
  lastEventId: string | null = null;
  retry: number | null = null;
  /** Set when the body ends: 'done' (closed by the server) or the error it failed with. */
  ended: 'done' | Error | null = null;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly waiters = new Set<() => void>();
  private readonly reading: Promise<void>;

  constructor(readonly response: Response) {
    if (!response.body) throw new Error('response has no body');
    this.reader = response.body.getReader();
    this.reading = this.read();
  }

  /** Parsed `data` of the dispatched events of one type. */
  data<T = Record<string, unknown>>(type: string): T[] {
    return this.events.filter((e) => e.event === type).map((e) => JSON.parse(e.data) as T);
  }

  /** Waits until `predicate` holds (checked after every chunk), or fails after `timeoutMs` with what arrived. */
  async until(predicate: (r: SseReader) => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    if (predicate(this)) return;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!predicate(this)) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; got ${this.events.length} events: ${JSON.stringify(this.events.slice(-5))}, ended: ${String(this.ended)}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
    await this.reading;
  }

  private async read(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    let block: [string, string][] = [];
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            this.dispatch(block);
            block = [];
          } else if (line.startsWith(':')) {
            this.comments.push(line.slice(1).trim());
          } else {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            block.push([field, value]);
          }
        }
        this.notify();
      }
      this.ended = 'done';
    } catch (err) {
      this.ended = err instanceof Error ? err : new Error(String(err));
    }
    this.notify();
  }

  private dispatch(block: [string, string][]): void {
    let event = 'message';
    const data: string[] = [];
    let ownId = false;
    for (const [field, value] of block) {
      if (field === 'id') {
        this.lastEventId = value;
        ownId = true;
      } else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    }
    if (data.length === 0) {
      if (block.length > 0) this.controlBlocks.push(block);
      return;
    }
    this.events.push({ id: this.lastEventId, ownId, event, data: data.join('\n') });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}
