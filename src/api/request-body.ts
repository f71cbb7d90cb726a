import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';

/**
 * Request bodies of at most `maxBytes`; more is a 413. `refuseDeclared` goes first: it refuses a
 * declared Content-Length over the limit before anything is read or anyone authenticated. `read`
 * goes after authentication (nobody's body is read before they are known) and reads the body.
 *
 * On Node the body is read straight from the IncomingMessage and handed to Hono's body cache, so the
 * validators' `c.req.json()` parses it without the adapter building a Fetch Request around the
 * message (its Headers, a web stream and an AbortSignal): that was about a tenth of the API's CPU per
 * create or agent report. Elsewhere (`app.request` in tests) Hono's own bodyLimit guards the Fetch
 * body, which the validators read.
 *
 * A 413 stops reading without destroying the message: the server reads out what is still coming and
 * answers before closing (lingering-close.ts), so the client gets its 413 and never a reset.
 */
export function requestBodies(maxBytes: number): { readonly refuseDeclared: MiddlewareHandler; readonly read: MiddlewareHandler } {
  const tooLarge = (): never => {
    throw new HTTPException(413);
  };
  const fetchBodies = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  const incomingOf = (c: Context) => (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return {
    refuseDeclared: async (c, next) => {
      const incoming = incomingOf(c);
      if (incoming === undefined) return fetchBodies(c, next);
      if (Number(incoming.headers['content-length']) > maxBytes) tooLarge();
      await next();
    },
    read: async (c, next) => {
      const incoming = incomingOf(c);
      if (incoming !== undefined) {
        const body = await readAtMost(incoming, maxBytes);
        if (body === null) tooLarge();
        // As Request.text() decodes: UTF-8, a byte-order mark dropped, bad sequences replaced.
        // Hono's body cache holds promises of what Body's methods give (its type names the methods).
        (c.req.bodyCache as Record<string, Promise<unknown>>).text = Promise.resolve(new TextDecoder().decode(body!));
      }
      await next();
    },
  };
}

/** The whole body, or null once it passes `maxBytes` (what follows is left to the server to discard). */
function readAtMost(incoming: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        settle();
        resolve(null);
      } else chunks.push(chunk);
    };
    const onEnd = (): void => {
      settle();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      settle();
      reject(new HTTPException(400, { message: 'request body not received', cause: err }));
    };
    // Closed before its end: the client went away mid-body.
    const onClose = (): void => {
      if (incoming.complete) return;
      settle();
      reject(new HTTPException(400, { message: 'request body not received' }));
    };
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onClose);
  });
}
