import { ApiError, errorFromAnswer, errorFromFailure, parseJson } from './api-error.js';
import { sleep } from '../lib/sleep.js';
import { createSseParser, type SseMessage } from './sse-parser.js';
import type { SteadyEvent } from './types.js';

export interface WatchOptions {
  /** Only this deployment's events. */
  readonly deploymentId?: string;
  /** Resume after this event id (sent as `Last-Event-ID`); without it the stream starts live. */
  readonly lastEventId?: string;
  /** Ends the stream (the iteration finishes normally). */
  readonly signal?: AbortSignal;
  /** Told when a connection is lost and when the next attempt is due; for a status line. */
  readonly onReconnect?: (info: { readonly error: ApiError; readonly delayMs: number; readonly lastEventId: string | null }) => void;
  /** Longest wait between attempts; 30 s by default. */
  readonly maxDelayMs?: number;
}

export interface StreamTransport {
  readonly url: (query: Record<string, string | undefined>) => string;
  readonly headers: () => Promise<Record<string, string>>;
  readonly fetch: typeof globalThis.fetch;
}

const KNOWN_TYPES = new Set(['deployment', 'history', 'replica', 'node', 'reset']);
/** Refusals a retry cannot fix: the stream ends with them. 429 and 5xx are waited out. */
const FATAL = (status: number): boolean => status >= 400 && status < 500 && status !== 408 && status !== 429;

/**
 * Server-Sent Events over fetch, because EventSource cannot send an Authorization header. The wire
 * format (`id`, `event`, `data`, `retry`, comments, CR/LF variants) is parsed by src/client/sse-parser.ts.
 * Each reconnection sends the last id seen, so nothing retained is missed; the delay starts at the
 * server's `retry:` and doubles on every failure in a row, up to `maxDelayMs`.
 */
export async function* watchEvents(transport: StreamTransport, options: WatchOptions = {}): AsyncGenerator<SteadyEvent, void, undefined> {
  const { signal } = options;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  let lastEventId = options.lastEventId ?? null;
  let retryMs = 1_000;
  let failures = 0;
  while (!signal?.aborted) {
    let failure: ApiError;
    const pending: SteadyEvent[] = [];
    const parser = createSseParser({
      onEvent: (message) => {
        const event = toEvent(message);
        if (event) pending.push(event);
      },
      // Also the id of the server's opening block, which has no data: a reconnection resumes from it.
      onId: (id) => {
        lastEventId = id === '' ? null : id;
      },
      onRetry: (ms) => {
        retryMs = ms;
      },
    });
    const url = transport.url({ deployment_id: options.deploymentId });
    let reader: ReadableStreamDefaultReader<string> | null = null;
    try {
      const headers = await transport.headers();
      if (lastEventId !== null) headers['last-event-id'] = lastEventId;
      const response = await transport.fetch(url, { headers, signal });
      if (!response.ok || response.body === null) {
        const error = errorFromAnswer(response.status, response.statusText, await response.text(), response.headers.get('retry-after'));
        if (FATAL(response.status)) throw error;
        failure = error;
      } else {
        failures = 0;
        reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(value);
          while (pending.length > 0) yield pending.shift()!;
        }
        failure = new ApiError(0, 'stream_ended', 'the server closed the event stream');
      }
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof ApiError) throw err;
      failure = errorFromFailure('GET /api/events', new URL(url).origin, err, 0);
    } finally {
      // Also when the consumer stops iterating: the connection is released.
      await reader?.cancel().catch(() => undefined);
    }
    const delayMs = Math.min(maxDelayMs, Math.max(failure.retryAfterSec !== null ? failure.retryAfterSec * 1000 : 0, retryMs * 2 ** failures));
    failures += 1;
    options.onReconnect?.({ error: failure, delayMs, lastEventId });
    if (!(await sleep(delayMs, signal))) return;
  }
}

function toEvent(message: SseMessage): SteadyEvent | null {
  const type = message.event ?? 'message';
  // Unknown types are skipped: a newer server may add some.
  if (!KNOWN_TYPES.has(type)) return null;
  const data = parseJson(message.data) ?? message.data;
  return { type, id: message.id ?? null, data } as SteadyEvent;
}
