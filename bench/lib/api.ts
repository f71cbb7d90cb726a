import { signToken } from '../../src/api/tokens.js';

/** A thin client for steady's HTTP API, as a user or an admin would call it. */
export class Api {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  static async as(url: string, secret: string, sub: string, roles: string[] = []): Promise<Api> {
    return new Api(url, await signToken(secret, { sub, roles, ttlSec: 7200 }));
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
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
