import http from 'node:http';
import { signToken } from '../../src/api/tokens.js';

/**
 * The load generator's connections: node:http with keep-alive. Global fetch (undici) spent about
 * 400 µs of CPU per create on the load generator's side (a Request, Headers and an AbortSignal per
 * call), on the same two cores as steady and PostgreSQL; this costs a fraction of that.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** A thin client for steady's HTTP API, as a user or an admin would call it. */
export class Api {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  static async as(url: string, secret: string, sub: string, roles: string[] = []): Promise<Api> {
    return new Api(url, await signToken(secret, { sub, roles, ttlSec: 7200 }));
  }

  call<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        `${this.url}${path}`,
        {
          method,
          agent,
          headers: {
            authorization: `Bearer ${this.token}`,
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : null) as T });
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer within 60 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async ok<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call<T>(method, path, body);
    if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  }

  async deploy(name: string, replicas: number): Promise<string> {
    const body = await this.ok<{ deployment_id: string }>('POST', '/api/deployment/deploy', {
      name,
      container_image: 'nginx:1.27',
      target_replicas: replicas,
      resources: { cpu_cores: 0.5, memory_mb: 512, gpu_units: 0, storage_gb: 1 },
    });
    return body.deployment_id;
  }

  scale(id: string, replicas: number): Promise<unknown> {
    return this.ok('POST', `/api/deployment/scale/${id}`, { target_replicas: replicas });
  }

  async registerNode(name: string, size: NodeSize): Promise<string> {
    const body = await this.ok<{ node_id: string }>('POST', '/api/nodes', { name, ...size });
    return body.node_id;
  }
}

export interface NodeSize {
  readonly cpu_cores: number;
  readonly memory_mb: number;
  readonly gpu_units: number;
  readonly storage_gb: number;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns true; throws after `timeoutMs`. */
export async function until(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 100, what = 'condition'): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await probe())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
