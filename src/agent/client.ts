import { z } from 'zod';
import { REPLICA_REPORT_LIMITS } from '../domain/validation.js';
import type { ContainerResources } from './runtime.js';

/** A bearer token, or a function asked before every request (so minted tokens can be renewed). */
export type TokenSource = string | (() => string | Promise<string>);

export interface AgentClientOptions {
  /** The API's base URL, such as `http://127.0.0.1:8080`. */
  readonly apiUrl: string;
  readonly token: TokenSource;
  /** Per request, body included. Bounds how long a clean stop can wait for a call in flight. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof globalThis.fetch;
}

export interface NodeRegistration {
  readonly name: string;
  readonly capacity: ContainerResources;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface RegisteredNode {
  readonly nodeId: string;
  readonly name: string;
  readonly status: string | null;
}

/** One replica the node must run or stop, from a heartbeat answer. */
export interface Assignment {
  readonly replicaId: string;
  readonly deploymentId: string;
  readonly image: string;
  readonly resources: ContainerResources;
  readonly desired: 'run' | 'stop';
  /** The replica's own revision and its template's command and env, when the API sends them. */
  readonly revision?: number | null;
  readonly command?: readonly string[] | null;
  readonly env?: Readonly<Record<string, string>> | null;
}

export type ReportedStatus = 'starting' | 'running' | 'stopped' | 'failed';

export interface StatusReport {
  readonly status: ReportedStatus;
  readonly containerId?: string | null;
  readonly reason?: string | null;
}

/**
 * The expected answers to a status report: `conflict` (409) means the controller has moved the
 * replica on, `not_found` (404) that it is no longer on this node. Neither is worth retrying.
 */
export type ReportOutcome =
  | { readonly outcome: 'accepted' }
  | { readonly outcome: 'conflict' | 'not_found'; readonly message: string };

/** Any failed call. `retryable` says whether the same call may succeed later unchanged. */
export class AgentApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'AgentApiError';
  }
}

/** A 4xx: the request itself is wrong (bad token, missing role, invalid body); retrying will not help. */
export class ApiRejectedError extends AgentApiError {
  constructor(message: string, status: number, code: string) {
    super(message, status, code, false);
    this.name = 'ApiRejectedError';
  }
}

/** The API is away or overloaded: a network error, a timeout, a 5xx, 408, 429, or an answer we cannot read. */
export class ApiUnavailableError extends AgentApiError {
  constructor(message: string, status: number | null, code: string, options?: ErrorOptions) {
    super(message, status, code, true, options);
    this.name = 'ApiUnavailableError';
  }
}

const resourcesSchema = z.object({
  cpu_cores: z.coerce.number(),
  memory_mb: z.coerce.number(),
  gpu_units: z.coerce.number().nullish(),
  storage_gb: z.coerce.number(),
});

const registeredSchema = z.object({
  node_id: z.string().min(1),
  name: z.string().optional(),
  status: z.string().nullish(),
});

const heartbeatSchema = z.object({
  replicas: z.array(
    z.object({
      replica_id: z.string().min(1),
      deployment_id: z.string(),
      container_image: z.string(),
      resources: resourcesSchema,
      desired: z.enum(['run', 'stop']),
      revision: z.coerce.number().int().nullish(),
      command: z.array(z.string()).nullish(),
      env: z.record(z.string(), z.string()).nullish(),
    }),
  ),
});

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** The agent side of DESIGN.md section 3's node protocol: register, heartbeat, report replica status. */
export class AgentClient {
  readonly #base: URL;
  readonly #token: TokenSource;
  readonly #timeoutMs: number;
  readonly #fetch: typeof globalThis.fetch;

  constructor(options: AgentClientOptions) {
    const base = new URL(options.apiUrl);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#base = base;
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** `POST /api/nodes`; idempotent by name, so a restarted agent gets its node back. */
  async registerNode(node: NodeRegistration): Promise<RegisteredNode> {
    const body = {
      name: node.name,
      cpu_cores: node.capacity.cpuCores,
      memory_mb: node.capacity.memoryMb,
      gpu_units: node.capacity.gpuUnits,
      storage_gb: node.capacity.storageGb,
      ...(node.labels ? { labels: node.labels } : {}),
    };
    const { status, json } = await this.#call('api/nodes', body);
    if (status !== 200 && status !== 201) throw rejected('POST /api/nodes', status, json);
    const parsed = parse(registeredSchema, json, 'POST /api/nodes');
    return { nodeId: parsed.node_id, name: parsed.name ?? node.name, status: parsed.status ?? null };
  }

  /** `POST /api/nodes/{id}/heartbeat`; null when the API no longer knows the node (register again). */
  async heartbeat(nodeId: string): Promise<readonly Assignment[] | null> {
    const what = 'POST /api/nodes/{id}/heartbeat';
    const { status, json } = await this.#call(`api/nodes/${encodeURIComponent(nodeId)}/heartbeat`, {});
    if (status === 404) return null;
    if (status !== 200) throw rejected(what, status, json);
    return parse(heartbeatSchema, json, what).replicas.map((r) => ({
      replicaId: r.replica_id,
      deploymentId: r.deployment_id,
      image: r.container_image,
      resources: {
        cpuCores: r.resources.cpu_cores,
        memoryMb: r.resources.memory_mb,
        gpuUnits: r.resources.gpu_units ?? 0,
        storageGb: r.resources.storage_gb,
      },
      desired: r.desired,
      revision: r.revision ?? null,
      command: r.command ?? null,
      env: r.env ?? null,
    }));
  }

  /** `POST /api/replicas/{id}/status`. */
  async reportStatus(replicaId: string, report: StatusReport): Promise<ReportOutcome> {
    const what = 'POST /api/replicas/{id}/status';
    const body = {
      status: report.status,
      ...(report.containerId ? { container_id: report.containerId } : {}),
      // The API refuses longer reasons (422), which would leave the report retried forever.
      ...(report.reason ? { reason: truncate(report.reason, REPLICA_REPORT_LIMITS.reason.max) } : {}),
    };
    const { status, json } = await this.#call(`api/replicas/${encodeURIComponent(replicaId)}/status`, body);
    if (status === 200 || status === 201 || status === 204) return { outcome: 'accepted' };
    if (status === 409) return { outcome: 'conflict', message: errorMessage(json) ?? 'conflict' };
    if (status === 404) return { outcome: 'not_found', message: errorMessage(json) ?? 'not found' };
    throw rejected(what, status, json);
  }

  async #call(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const what = `POST /${path}`;
    const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    let response: Response;
    try {
      response = await this.#fetch(new URL(path, this.#base), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw networkError(what, err, this.#timeoutMs);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      throw networkError(what, err, this.#timeoutMs);
    }
    let json: unknown = null;
    if (text !== '') {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (response.status >= 500 || response.status === 408 || response.status === 429) {
      const code = errorCode(json) ?? `http_${response.status}`;
      throw new ApiUnavailableError(`${what}: ${response.status} ${errorMessage(json) ?? response.statusText}`, response.status, code);
    }
    return { status: response.status, json };
  }
}

function networkError(what: string, err: unknown, timeoutMs: number): ApiUnavailableError {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new ApiUnavailableError(`${what}: no answer within ${timeoutMs} ms`, null, 'timeout', { cause: err });
  }
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : 'network_error';
  const detail = typeof cause?.code === 'string' ? cause.code : err instanceof Error ? err.message : String(err);
  return new ApiUnavailableError(`${what}: ${detail}`, null, code, { cause: err });
}

function rejected(what: string, status: number, json: unknown): ApiRejectedError {
  return new ApiRejectedError(`${what}: ${status} ${errorMessage(json) ?? 'rejected'}`, status, errorCode(json) ?? `http_${status}`);
}

function parse<T>(schema: z.ZodType<T>, json: unknown, what: string): T {
  const result = schema.safeParse(json);
  if (!result.success) {
    // A server mid-rollout can answer oddly for a moment; treat it like an outage, not a bug of ours.
    throw new ApiUnavailableError(`${what}: unexpected answer (${result.error.issues[0]?.message ?? 'invalid'})`, 200, 'bad_answer');
  }
  return result.data;
}

function errorMessage(json: unknown): string | null {
  const parsed = errorSchema.safeParse(json);
  return parsed.success ? parsed.data.error.message : null;
}

function errorCode(json: unknown): string | null {
  const parsed = errorSchema.safeParse(json);
  return parsed.success ? parsed.data.error.code : null;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
