import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from './app.js';
import { closeConnectionsLingering, type LingerBounds } from './lingering-close.js';

export interface RunningServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting connections, lets in-flight requests finish, then resolves. */
  close(): Promise<void>;
}

export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  /** After this long, connections still open are cut; 10 s by default (the SIGTERM budget). */
  readonly shutdownTimeoutMs?: number;
  /** How long, and for how many bytes, a closing connection keeps reading what its client still sends. */
  readonly linger?: LingerBounds;
}

export async function serveApi(app: App, options: ServeOptions): Promise<RunningServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: options.host, port: options.port }) as Server;
    s.once('listening', () => resolve(s));
    s.once('error', reject);
  });
  closeConnectionsLingering(server, options.linger);
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        // close() waits for in-flight requests, but a keep-alive socket that goes idle once its
        // request is answered would hold it open until the keep-alive timeout: sweep idle sockets
        // until everything is closed, and cut whatever is left at the deadline.
        const deadline = setTimeout(() => server.closeAllConnections(), options.shutdownTimeoutMs ?? 10_000);
        const sweep = setInterval(() => server.closeIdleConnections(), 25);
        deadline.unref();
        sweep.unref();
        server.close((err) => {
          clearTimeout(deadline);
          clearInterval(sweep);
          if (err) reject(err);
          else resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
