export type CloseReason = 'client' | 'slow' | 'shutdown';

export interface SseStreamOptions {
  /** Sent as `retry:`: how long a client waits before reconnecting. */
  readonly retryMs: number;
  /** A `: ping` comment this often, so proxies and clients know the stream is alive. */
  readonly pingMs: number;
  /**
   * Bytes held for a client that does not read, beyond what the transport buffers (the stream's
   * own 64 KiB and the socket's): past this, the client is dropped.
   */
  readonly maxBufferedBytes: number;
  /** A client that has taken nothing for this long while events wait is dropped. */
  readonly stallMs: number;
  readonly onClose: (reason: CloseReason) => void;
  /**
   * Cuts the connection (the Node adapter's response: `destroy()`). Without it, a dropped stream's
   * body ends with an error, which the adapter also turns into a cut, but logs on the console.
   */
  readonly abort?: () => void;
  readonly now?: () => number;
}

const encoder = new TextEncoder();
const TRANSPORT_BUFFER_BYTES = 64 * 1024;

/**
 * One Server-Sent Events response body. Writes go straight into the body while the client keeps
 * up (the Node adapter stops reading it when the socket is full, so the body's queue fills), then
 * into a bounded backlog; a client that lets the backlog overflow, or reads nothing for `stallMs`,
 * is cut off: a slow client costs at most `maxBufferedBytes` plus the transport's buffers.
 */
export class SseStream {
  readonly body: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private blockedSince: number | null = null;
  private closed = false;
  private readonly ping: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly options: SseStreamOptions) {
    this.now = options.now ?? Date.now;
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.flush(),
        cancel: () => this.finish('client'),
      },
      { highWaterMark: TRANSPORT_BUFFER_BYTES, size: (chunk) => chunk.byteLength },
    );
    this.ping = setInterval(() => this.tick(), options.pingMs);
    this.ping.unref();
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** The opening block: `retry:` and, when known, the id to resume from (no event is dispatched for it). */
  open(id: bigint | null): void {
    this.write(`retry: ${this.options.retryMs}\n${id === null ? '' : `id: ${id}\n`}\n`);
  }

  /** One event; `data` is JSON-encoded on one line. */
  event(id: bigint, type: string, data: unknown): void {
    this.write(`id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream: cleanly when the client is keeping up, at once when it is not. */
  close(): void {
    if (this.closed) return;
    const stuck = this.backlog.length > 0 || (this.controller.desiredSize ?? 0) <= 0;
    this.finish('shutdown');
    if (stuck) this.cut(new Error('server shutting down'));
    else this.controller.close();
  }

  private write(text: string): void {
    if (this.closed) return;
    const bytes = encoder.encode(text);
    if (this.backlog.length === 0 && (this.controller.desiredSize ?? 0) > 0) {
      this.controller.enqueue(bytes);
      return;
    }
    this.backlog.push(bytes);
    this.backlogBytes += bytes.byteLength;
    this.blockedSince ??= this.now();
    if (this.backlogBytes > this.options.maxBufferedBytes) this.drop();
  }

  /** The client took something: move the backlog on; it is stalled only while it takes nothing. */
  private flush(): void {
    while (this.backlog.length > 0 && (this.controller.desiredSize ?? 0) > 0) {
      const bytes = this.backlog.shift()!;
      this.backlogBytes -= bytes.byteLength;
      this.controller.enqueue(bytes);
    }
    this.blockedSince = this.backlog.length === 0 ? null : this.now();
  }

  private tick(): void {
    if (this.blockedSince !== null && this.now() - this.blockedSince >= this.options.stallMs) {
      this.drop();
      return;
    }
    this.write(': ping\n\n');
  }

  private drop(): void {
    if (this.closed) return;
    this.finish('slow');
    this.cut(new Error('client too slow'));
  }

  private cut(reason: Error): void {
    if (this.options.abort) this.options.abort();
    else this.controller.error(reason);
  }

  private finish(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ping);
    this.backlog.length = 0;
    this.backlogBytes = 0;
    this.options.onClose(reason);
  }
}
