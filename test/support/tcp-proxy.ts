import net from 'node:net';

/**
 * A TCP proxy to a local port that a test can cut (every connection reset, new ones refused) and
 * restore, and point elsewhere: one address for clients while what is behind it is replaced, as a
 * Service, a load balancer or a Patroni/HAProxy endpoint is.
 */
export interface TcpProxy {
  readonly port: number;
  cut(): void;
  /** New connections are refused; those already open keep working (a server out of connection slots). */
  refuseNew(): void;
  restore(): void;
  /** New connections go to this port from now on. */
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(initialPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let targetPort = initialPort;
  const sockets = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      refusing = true;
      for (const s of sockets) s.resetAndDestroy();
    },
    refuseNew() {
      refusing = true;
    },
    restore() {
      refusing = false;
    },
    retarget(port) {
      targetPort = port;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
