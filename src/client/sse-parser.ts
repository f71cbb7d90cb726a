/** One dispatched event of a text/event-stream. */
export interface SseMessage {
  readonly event: string | undefined;
  readonly data: string;
  /** The last event id as of this event (the stream's, not only this block's). */
  readonly id: string | undefined;
}

export interface SseParserCallbacks {
  readonly onEvent: (message: SseMessage) => void;
  /** Every `id:` field, also of a block with no data (which dispatches nothing but still moves the id). */
  readonly onId?: (id: string) => void;
  readonly onRetry?: (ms: number) => void;
}

/** Longest line kept while waiting for its end: a stream that never ends a line cannot fill memory. */
const MAX_LINE = 1 << 20;

/**
 * The event-stream format of the HTML standard (9.2.6), fed text chunks split anywhere: lines end with
 * CRLF, LF or CR; `:` lines are comments; `id` (without NUL) sets the last event id at once, even in a
 * block that dispatches nothing (as the server's opening `id:` block); `retry` takes digits only; a
 * blank line dispatches the block when it has data. Hand-written because the parsers at hand drop an
 * id that comes without data, and resuming depends on it.
 */
export function createSseParser(callbacks: SseParserCallbacks): { feed(chunk: string): void } {
  let buffer = '';
  let first = true;
  let lastId: string | undefined;
  let event: string | undefined;
  let data: string[] = [];
  let pendingCr = false;

  const line = (text: string): void => {
    if (text === '') {
      if (data.length > 0) callbacks.onEvent({ event, data: data.join('\n'), id: lastId });
      event = undefined;
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) {
      lastId = value;
      callbacks.onId?.(value);
    } else if (field === 'retry' && /^\d+$/.test(value)) callbacks.onRetry?.(Number(value));
  };

  return {
    feed(chunk: string): void {
      let text = chunk;
      if (first && text.length > 0) {
        if (text.startsWith('\uFEFF')) text = text.slice(1);
        first = false;
      }
      // A CR at the end of the last chunk and an LF at the start of this one are one line end.
      if (pendingCr && text.startsWith('\n')) text = text.slice(1);
      pendingCr = false;
      buffer += text;
      let start = 0;
      for (;;) {
        const cr = buffer.indexOf('\r', start);
        const lf = buffer.indexOf('\n', start);
        const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
        if (end === -1) break;
        line(buffer.slice(start, end));
        if (buffer[end] === '\r') {
          if (end + 1 === buffer.length) pendingCr = true;
          else if (buffer[end + 1] === '\n') {
            start = end + 2;
            continue;
          }
        }
        start = end + 1;
      }
      buffer = buffer.slice(start);
      if (buffer.length > MAX_LINE) throw new Error(`an event-stream line longer than ${MAX_LINE} characters`);
    },
  };
}
