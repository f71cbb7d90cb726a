import { ApiError, errorFromAnswer, errorFromFailure, parseJson } from './api-error.js';
import { watchEvents, type WatchOptions } from './event-stream.js';
import { sleep } from '../lib/sleep.js';
import type {
  DeploymentList,
  DeploymentListItem,
  DeploymentPatch,
  DeploymentSpec,
  DeploymentState,
  Heartbeat,
  ListOptions,
  NodeList,
  NodeRegistered,
  NodeRegistration,
  NodeStatus,
  Readiness,
  ReplicaReport,
  ReplicaRecord,
  Revision,
  SteadyEvent,
} from './types.js';

/** A bearer token, or a function asked before every request (so a minted token can be renewed). */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** The API's base URL, such as `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  readonly token: TokenSource;
  /** Per request, answer body included (not for the event stream); 30 s by default. */
  readonly timeoutMs?: number;
  /** Defaults to the global fetch (Node 20, browsers). */
  readonly fetch?: typeof globalThis.fetch;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (text: string): boolean => UUID.test(text);

/** How often a request refused with 429 is sent again, and the longest wait for one retry. */
const RATE_LIMIT_RETRIES = 5;
const RATE_LIMIT_WAIT_MAX_MS = 10_000;

/**
 * The typed client of steady's HTTP API (DESIGN.md section 3), for the CLI, the dashboard and tools.
 * It uses only the global fetch and web streams, so it runs in Node 20 and in a browser. Every
 * failure is an `ApiError` carrying the API's `{error}` and status.
 */
export class SteadyClient {
  readonly baseUrl: string;
  readonly #token: TokenSource;
  readonly #timeoutMs: number;
  readonly #fetch: typeof globalThis.fetch;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    // Unbound, a browser's fetch throws "Illegal invocation".
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  // ---------- deployments

  deploy(spec: DeploymentSpec, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', '/api/deployment/deploy', { body: spec, ...options });
  }

  status(id: string, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('GET', `/api/deployment/status/${seg(id)}`, options);
  }

  listDeployments(list: ListOptions = {}, options?: RequestOptions): Promise<DeploymentList> {
    return this.request('GET', '/api/deployment/list', { query: { limit: list.limit, cursor: list.cursor, name: list.name }, ...options });
  }

  /** Every page of the list, newest first. */
  async allDeployments(options?: RequestOptions): Promise<DeploymentListItem[]> {
    const items: DeploymentListItem[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listDeployments({ limit: 100, cursor }, options);
      items.push(...page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    return items;
  }

  /** A live deployment by id or by name (names are unique per user); null when there is none. */
  async findDeployment(nameOrId: string, options?: RequestOptions): Promise<DeploymentState | null> {
    try {
      if (isUuid(nameOrId)) return await this.status(nameOrId, options);
      const [item] = (await this.listDeployments({ name: nameOrId, limit: 1 }, options)).items;
      return item ? await this.status(item.deployment_id, options) : null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  }

  scale(id: string, targetReplicas: number, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', `/api/deployment/scale/${seg(id)}`, { body: { target_replicas: targetReplicas }, ...options });
  }

  /** `PATCH`: a template change makes a new revision and starts a rollout. */
  update(id: string, patch: DeploymentPatch, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('PATCH', `/api/deployment/${seg(id)}`, { body: patch, ...options });
  }

  async revisions(id: string, options?: RequestOptions): Promise<Revision[]> {
    return (await this.request<{ items: Revision[] }>('GET', `/api/deployment/${seg(id)}/revisions`, options)).items;
  }

  /** A new revision with the template of `revision` (default: the one before the current). */
  rollback(id: string, revision?: number, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', `/api/deployment/${seg(id)}/rollback`, { body: revision === undefined ? {} : { revision }, ...options });
  }

  pause(id: string, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', `/api/deployment/${seg(id)}/pause`, options);
  }

  resume(id: string, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', `/api/deployment/${seg(id)}/resume`, options);
  }

  stop(id: string, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', `/api/deployment/${seg(id)}/stop`, options);
  }

  start(id: string, options?: RequestOptions): Promise<DeploymentState> {
    return this.request('POST', `/api/deployment/${seg(id)}/start`, options);
  }

  async deleteDeployment(id: string, options?: RequestOptions): Promise<void> {
    await this.request('DELETE', `/api/deployment/${seg(id)}`, options);
  }

  // ---------- nodes (admin) and the node protocol (role node)

  async nodes(options?: RequestOptions): Promise<NodeList['items']> {
    return (await this.request<NodeList>('GET', '/api/nodes', options)).items;
  }

  /** Cordon (`cordoned`), drain (`draining`) or return a node to service (`ready`). */
  setNodeStatus(id: string, status: Exclude<NodeStatus, 'not_ready'>, options?: RequestOptions): Promise<NodeList['items'][number]> {
    return this.request('PATCH', `/api/nodes/${seg(id)}`, { body: { status }, ...options });
  }

  /** Only a node with no allocating replica (drain it first), else a 409. */
  async deleteNode(id: string, options?: RequestOptions): Promise<void> {
    await this.request('DELETE', `/api/nodes/${seg(id)}`, options);
  }

  registerNode(node: NodeRegistration, options?: RequestOptions): Promise<NodeRegistered> {
    return this.request('POST', '/api/nodes', { body: node, ...options });
  }

  heartbeat(nodeId: string, options?: RequestOptions): Promise<Heartbeat> {
    return this.request('POST', `/api/nodes/${seg(nodeId)}/heartbeat`, { body: {}, ...options });
  }

  reportReplicaStatus(replicaId: string, report: ReplicaReport, options?: RequestOptions): Promise<ReplicaRecord> {
    return this.request('POST', `/api/replicas/${seg(replicaId)}/status`, { body: report, ...options });
  }

  // ---------- events and health

  /**
   * `GET /api/events` as an async iterable that reconnects by itself (with `Last-Event-ID`, after the
   * server's `retry:` and a growing backoff) until `signal` aborts or the loop breaks; a refusal that
   * retrying cannot fix (401, 403, 404, 422) ends it with an ApiError.
   */
  events(options: WatchOptions = {}): AsyncGenerator<SteadyEvent, void, undefined> {
    return watchEvents(
      {
        url: (query) => this.#url('/api/events', query),
        headers: async () => ({ authorization: `Bearer ${await this.#bearer()}`, accept: 'text/event-stream' }),
        fetch: this.#fetch,
      },
      options,
    );
  }

  /** `GET /readyz`: 200 ready, 503 not (both are answers, not errors). */
  async readiness(options?: RequestOptions): Promise<{ ready: boolean } & Readiness> {
    const { status, body } = await this.#send('GET', '/readyz', {}, options?.signal, { auth: false, answers: [503] });
    return { ready: status === 200, ...(body as Readiness) };
  }

  // ---------- the one way every request goes

  /**
   * A JSON request to a path of the API; the parsed answer, or an ApiError. A 429 (over the caller's
   * rate) is waited out, as its Retry-After says, and sent again, as client-go does, up to
   * RATE_LIMIT_RETRIES times: the server refused it before doing anything, so even a create is safe
   * to send again. A 503 is not: the request may have taken effect, the caller decides.
   */
  async request<T>(method: string, path: string, options: { body?: unknown; query?: Record<string, string | number | undefined>; signal?: AbortSignal } = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const { body } = await this.#send(method, path, options, options.signal, { auth: true, answers: [] });
        return body as T;
      } catch (err) {
        if (!(err instanceof ApiError) || err.status !== 429 || attempt >= RATE_LIMIT_RETRIES) throw err;
        if (!(await sleep(Math.min(RATE_LIMIT_WAIT_MAX_MS, (err.retryAfterSec ?? 1) * 1000), options.signal))) throw err;
      }
    }
  }

  async #send(
    method: string,
    path: string,
    options: { body?: unknown; query?: Record<string, string | number | undefined> },
    signal: AbortSignal | undefined,
    how: { readonly auth: boolean; readonly answers: readonly number[] },
  ): Promise<{ status: number; body: unknown }> {
    const what = `${method} ${path}`;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (how.auth) headers.authorization = `Bearer ${await this.#bearer()}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let text: string;
    let response: Response;
    try {
      response = await this.#fetch(this.#url(path, options.query), {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      status = response.status;
      text = await response.text();
    } catch (err) {
      throw errorFromFailure(what, this.baseUrl, err, this.#timeoutMs);
    }
    if (how.answers.includes(status)) return { status, body: parseJson(text) ?? {} };
    if (status < 200 || status > 299) throw errorFromAnswer(status, response.statusText, text, response.headers.get('retry-after'));
    if (text === '') return { status, body: undefined };
    const body = parseJson(text);
    if (body === undefined) throw new ApiError(status, 'bad_answer', `${what}: the answer is not JSON (is ${this.baseUrl} a steady API?)`);
    return { status, body };
  }

  #url(path: string, query: Record<string, string | number | undefined> = {}): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const search = params.toString();
    return `${this.baseUrl}${path}${search === '' ? '' : `?${search}`}`;
  }

  async #bearer(): Promise<string> {
    return typeof this.#token === 'function' ? await this.#token() : this.#token;
  }
}

const seg = (id: string): string => encodeURIComponent(id);
