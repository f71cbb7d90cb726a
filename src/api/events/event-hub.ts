import type { Database } from '../../db/database.js';
import { blockEnd, lastIssuedEventId, readEvents, type EventFilter, type EventRecord } from '../../db/queries/events.js';
import type { Logger } from '../../logger.js';
import { UnavailableError } from '../../domain/errors.js';
import { TooManyStreamsError } from '../errors.js';
import { eventJson } from './event-json.js';
import { EventTail } from './event-tail.js';
import { SseStream, type CloseReason } from './sse-stream.js';

export interface EventHubOptions {
  readonly logger: Logger;
  /** Streams one caller (JWT subject) may hold open on this process; more are refused with 429. */
  readonly streamsPerCaller: number;
  /** `: ping` interval; 15 s by default. */
  readonly pingMs?: number;
  /** `retry:` sent to clients; 2 s by default. */
  readonly retryMs?: number;
  /** What a client that does not read may cost beyond the transport's buffers; 1 MiB by default. */
  readonly maxBufferedBytes?: number;
  /** A client that reads nothing for this long while events wait is dropped; 60 s by default. */
  readonly stallMs?: number;
  /** Fallback poll of the log when no notification comes; 1 s by default. */
  readonly pollMs?: number;
  /** Events read per statement (tail and replays); 500 by default. */
  readonly pageSize?: number;
}

export interface StreamRequest {
  /** Who is calling (JWT subject): the unit of the stream cap. */
  readonly caller: string;
  /** Only events of this user's deployments (and of one of them, with `deploymentId`); node events with `nodes` (admins). */
  readonly filter: Required<Pick<EventFilter, 'userId'>> & Pick<EventFilter, 'deploymentId' | 'nodes'>;
  /** Resume after this id (Last-Event-ID or ?since=); null: live from now. */
  readonly since: bigint | null;
  /** Cuts the client's connection (see SseStreamOptions.abort). */
  readonly abort?: () => void;
}

/**
 * The event streams of one API process: one tail of the log shared by all (src/api/events/event-tail.ts),
 * a replay from the database for a stream that resumes, a cap per caller, and shutdown.
 *
 * Resuming after id S: the stream joins the tail at its position P (final), replays S < id ≤ P from
 * the database page by page while live events wait in its buffer, then sends those past the last id
 * it sent. No id is sent twice and none is skipped. When retention has deleted ids after S (or S was
 * never issued), it sends `reset` first, then goes on live from P.
 */
export class EventHub {
  private readonly tail: EventTail;
  private readonly perCaller = new Map<string, number>();
  private readonly streams = new Set<SseStream>();
  private closed = false;
  private readonly pageSize: number;

  constructor(
    private readonly database: Database,
    private readonly options: EventHubOptions,
  ) {
    this.pageSize = options.pageSize ?? 500;
    this.tail = new EventTail(database, { logger: options.logger, pollMs: options.pollMs, pageSize: this.pageSize });
  }

  /** Opens a stream and answers its body; the replay, if any, continues after this returns. */
  async open(request: StreamRequest): Promise<ReadableStream<Uint8Array>> {
    if (this.closed) throw new UnavailableError('shutting down');
    const held = this.perCaller.get(request.caller) ?? 0;
    if (held >= this.options.streamsPerCaller) throw new TooManyStreamsError(this.options.streamsPerCaller);
    this.perCaller.set(request.caller, held + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = (this.perCaller.get(request.caller) ?? 1) - 1;
      if (n > 0) this.perCaller.set(request.caller, n);
      else this.perCaller.delete(request.caller);
    };
    try {
      await this.tail.ready();
    } catch (err) {
      release();
      throw this.closed ? new UnavailableError('shutting down') : err;
    }
    if (this.closed) {
      release();
      throw new UnavailableError('shutting down');
    }

    const { userId, deploymentId, nodes } = request.filter;
    const wanted = (e: EventRecord): boolean =>
      e.kind === 'node' ? nodes === true && deploymentId === undefined : e.userId === userId && (deploymentId === undefined || e.deploymentId === deploymentId);
    const position = this.tail.position;
    let last = request.since ?? position;
    // Live events that arrive while the replay runs; bounded like any backlog (a stream that
    // cannot keep up is dropped by SseStream, and this buffer with it).
    let waiting: EventRecord[] | null = request.since === null ? null : [];
    const send = (e: EventRecord): void => {
      if (e.id <= last || !wanted(e)) return;
      last = e.id;
      stream.event(e.id, e.kind, eventJson(e));
    };
    let unsubscribe = (): void => undefined;
    const stream = new SseStream({
      retryMs: this.options.retryMs ?? 2_000,
      pingMs: this.options.pingMs ?? 15_000,
      maxBufferedBytes: this.options.maxBufferedBytes ?? 1024 * 1024,
      stallMs: this.options.stallMs ?? 60_000,
      abort: request.abort,
      onClose: (reason: CloseReason) => {
        unsubscribe();
        release();
        this.streams.delete(stream);
        if (reason === 'slow') this.options.logger.info({ caller: request.caller }, 'event stream dropped: the client reads too slowly');
      },
    });
    unsubscribe = this.tail.subscribe({
      onEvents: (events) => {
        if (waiting === null) {
          for (const e of events) send(e);
          return;
        }
        for (const e of events) if (wanted(e)) waiting.push(e);
        if (waiting.length > this.pageSize * 20) stream.close();
      },
      onReset: (at) => {
        last = at;
        stream.event(at, 'reset', { reason: 'the server fell behind the event log; list again' });
      },
    });
    this.streams.add(stream);

    if (request.since === null) {
      stream.open(position);
    } else {
      stream.open(null);
      void this.replay(stream, request, position, (events, reset) => {
        if (reset) {
          last = position;
          stream.event(position, 'reset', { reason: `events after ${request.since} are no longer retained; list again` });
          return;
        }
        for (const e of events) send(e);
      }).then(
        () => {
          const buffered = waiting ?? [];
          waiting = null;
          for (const e of buffered) send(e);
        },
        (err: unknown) => {
          this.options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'event replay failed; closing the stream');
          stream.close();
        },
      );
    }
    return stream.body;
  }

  /** Ends every stream (cleanly where the client keeps up) and stops following the log. */
  async close(): Promise<void> {
    this.closed = true;
    for (const stream of [...this.streams]) stream.close();
    await this.tail.close();
  }

  /** Sends S < id ≤ P from the database, or says `reset` when some of it is gone. */
  private async replay(
    stream: SseStream,
    request: StreamRequest,
    position: bigint,
    deliver: (events: readonly EventRecord[], reset: boolean) => void,
  ): Promise<void> {
    const db = this.database.db;
    let after = request.since!;
    if (after > position && after > blockEnd(await lastIssuedEventId(db))) {
      // An id this database never issued (another database, or one restored from a backup).
      deliver([], true);
      return;
    }
    while (after < position && stream.isOpen) {
      const page = await readEvents(db, after, position, request.filter, this.pageSize);
      if (page.deletedThrough > after) {
        deliver([], true);
        return;
      }
      deliver(page.events, false);
      if (page.events.length < this.pageSize) return;
      after = page.events[page.events.length - 1]!.id;
    }
  }
}
