import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A registry on loopback whose image has a manifest but whose layer is missing: the engine answers
 * the pull with 200, streams progress, and only then reports the failure inside the stream.
 */
export interface BrokenRegistry {
  /** An image reference on this registry, such as `127.0.0.1:PORT/steady/broken:1`. */
  readonly image: string;
  close(): Promise<void>;
}

export async function startBrokenRegistry(): Promise<BrokenRegistry> {
  const sha = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] }, config: {} }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha(config) },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: 100, digest: `sha256:${'1'.repeat(64)}` }],
    }),
  );
  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } else if (url.includes('/manifests/')) {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json', 'content-length': manifest.length, 'docker-content-digest': sha(manifest) });
      res.end(req.method === 'HEAD' ? undefined : manifest);
    } else if (url.endsWith(sha(config))) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(config);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    image: `127.0.0.1:${port}/steady/broken:1`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
