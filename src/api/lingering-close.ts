import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Closing a connection the client is still writing to makes the kernel answer its next segment with
 * a reset, and a reset can destroy an answer the client has not read yet (a 413, a 431): the client
 * sees ECONNRESET instead of its error. So a connection closes the way Apache and nginx close one
 * ("lingering close"): send the answer and a FIN, keep reading and discarding what the client still
 * sends, and only let go when the client closes its side, or once the bounds are spent.
 */

export interface LingerBounds {
  /** Give up waiting for the client's FIN after this long; 5 s by default (nginx: 5 s per read, 30 s in all). */
  readonly ms?: number;
  /** Or once it has sent this much more; 16 MiB by default. */
  readonly bytes?: number;
}

const DEFAULT_MS = 5_000;
const DEFAULT_BYTES = 16 * 1024 * 1024;
const lingering = new WeakSet<Socket>();

/** Ends `socket` gracefully (FIN after what was written), discarding input until the client's FIN or the bounds. */
export function lingeringClose(socket: Socket, bounds: LingerBounds = {}): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  const fromBytes = socket.bytesRead;
  const maxBytes = bounds.bytes ?? DEFAULT_BYTES;
  const done = (): void => {
    clearTimeout(timer);
    clearInterval(meter);
    socket.destroy();
  };
  const timer = setTimeout(done, bounds.ms ?? DEFAULT_MS);
  // The HTTP parser may read the socket's handle directly (no 'data' events): measure bytesRead.
  const meter = setInterval(() => {
    if (socket.bytesRead - fromBytes > maxBytes) done();
  }, 100);
  timer.unref();
  meter.unref();
  socket.once('end', done);
  socket.once('close', done);
  socket.on('error', () => undefined);
  socket.end();
  socket.resume();
}

/** What Node's HTTP parser refuses before the app sees a request: status, error code, message. */
const PARSER_REFUSALS: Readonly<Record<string, readonly [number, string, string, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'headers_too_large', 'request headers too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Payload Too Large', 'payload_too_large', 'chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'request_timeout', 'request not received in time'],
};
const BAD_REQUEST = [400, 'Bad Request', 'bad_request', 'malformed HTTP request'] as const;

/**
 * Every connection of `server` closes lingering: the ones Node closes after an answer with
 * `Connection: close` (it calls `destroySoon`), and the ones its parser refuses (`clientError`),
 * which get the usual JSON error body instead of Node's bare status line.
 */
export function closeConnectionsLingering(server: Server, bounds: LingerBounds = {}): void {
  server.on('connection', (socket: Socket) => {
    socket.destroySoon = () => lingeringClose(socket, bounds);
  });
  // A request answered before its body was read (413) still has body on the wire: read it out, or
  // the parser stops reading the socket once the unread request's buffer is full.
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    res.once('finish', () => {
      if (req.complete || req.destroyed) return;
      req.removeAllListeners('data');
      req.on('data', () => undefined);
      req.resume();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Once refused, the parser refuses every further chunk as well: answer once.
    if (lingering.has(socket)) return;
    const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || answering?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, text, code, message] = PARSER_REFUSALS[err.code ?? ''] ?? BAD_REQUEST;
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    lingeringClose(socket, bounds);
  });
}
