/** A `text/event-stream` parser for a fetch body (EventSource cannot send an Authorization header). */

export interface StreamMessage {
  readonly type: string;
  readonly data: string;
  /** The `id:` in force after this message (the spec's "last event ID"), or null. */
  readonly lastEventId: string | null;
}

export interface StreamHandlers {
  onMessage(message: StreamMessage): void;
  /** Any bytes at all (pings included): the connection is alive. */
  onActivity?(): void;
  onRetry?(ms: number): void;
}

/** Reads until the body ends (resolves) or fails (rejects); dispatches per the HTML spec's rules. */
export async function readEventStream(body: ReadableStream<Uint8Array>, handlers: StreamHandlers, lastEventId: string | null = null): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let type = '';
  let data: string[] = [];
  let id = lastEventId;
  const line = (text: string): void => {
    if (text === '') {
      if (data.length > 0) handlers.onMessage({ type: type || 'message', data: data.join('\n'), lastEventId: id });
      type = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) handlers.onRetry?.(Number(value));
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    handlers.onActivity?.();
    buffer += decoder.decode(value, { stream: true });
    // A trailing \r may be the first half of a \r\n split across chunks: keep it for the next one.
    const hold = buffer.endsWith('\r') ? '\r' : '';
    const lines = (hold ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
    buffer = (lines.pop() ?? '') + hold;
    for (const l of lines) line(l);
  }
}
