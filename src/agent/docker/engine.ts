import http from 'node:http';
import { StringDecoder } from 'node:string_decoder';

/**
 * A small typed client of the Docker Engine API: only the calls the runtime makes, over a unix
 * socket (the default) or TCP. Requests carry the API version negotiated on first use.
 */

/** The oldest API the runtime needs (DeviceRequests, 1.40; Debian's engine 20.10 speaks 1.41). */
const MIN_API = '1.41';
/** The newest we ask for: newer engines still serve it; the oldest of them (29) serves 1.44 and up. */
const MAX_API = '1.47';

export interface EngineOptions {
  /** `unix:///run/docker.sock` (default), `tcp://host:port`, or `http://host:port`. */
  readonly host?: string;
  /** Per call, unless the call says otherwise. */
  readonly timeoutMs?: number;
}

/** The engine answered with an error status; `message` is the engine's own. */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

/** The engine could not be reached (no socket, refused, timed out, or it hung up mid-answer). */
export class EngineUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EngineUnavailableError';
  }
}

export interface EngineContainer {
  readonly Id: string;
  readonly Names: readonly string[];
  readonly Labels: Readonly<Record<string, string>>;
  /** created, running, paused, restarting, removing, exited, dead */
  readonly State: string;
}

export interface EngineContainerState {
  readonly Status: string;
  readonly Running: boolean;
  readonly OOMKilled: boolean;
  readonly ExitCode: number;
  readonly Error: string;
  readonly StartedAt: string;
  readonly FinishedAt: string;
  readonly Health?: { readonly Status: string };
}

export interface EngineContainerDetails {
  readonly Id: string;
  readonly Name: string;
  readonly State: EngineContainerState;
  readonly Config: { readonly Labels: Readonly<Record<string, string>> | null; readonly Env: readonly string[] | null; readonly Cmd: readonly string[] | null; readonly User: string };
  readonly HostConfig: Readonly<Record<string, unknown>>;
}

export interface EngineInfo {
  readonly NCPU: number;
  readonly MemTotal: number;
  readonly DockerRootDir: string;
  readonly ServerVersion: string;
}

/** One line of the event stream (`GET /events`). */
export interface EngineEvent {
  readonly Type: string;
  readonly Action: string;
  readonly Actor: { readonly ID: string; readonly Attributes: Readonly<Record<string, string>> };
  readonly timeNano: number;
}

export interface EventStream {
  readonly events: AsyncIterable<EngineEvent>;
  close(): void;
}

type Query = Readonly<Record<string, string | number | boolean | undefined>>;

interface Call {
  readonly query?: Query;
  readonly body?: unknown;
  readonly timeoutMs?: number;
}

export class DockerEngine {
  readonly host: string;
  readonly #target: { socketPath: string } | { host: string; port: number };
  readonly #timeoutMs: number;
  readonly #agent = new http.Agent({ keepAlive: true });
  #version: Promise<string> | null = null;

  constructor(options: EngineOptions = {}) {
    this.host = options.host ?? 'unix:///var/run/docker.sock';
    this.#target = parseHost(this.host);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** The engine's own version and the API version this client speaks with it. */
  async version(): Promise<{ engine: string; api: string }> {
    const { json } = await this.#send('GET', '/version', {});
    const v = json as { Version: string };
    return { engine: v.Version, api: await this.#api() };
  }

  info(): Promise<EngineInfo> {
    return this.#json<EngineInfo>('GET', '/info');
  }

  /** Containers whose labels match every `key=value` given, in any state. */
  listContainers(labels: readonly string[]): Promise<EngineContainer[]> {
    return this.#json('GET', '/containers/json', { query: { all: true, filters: JSON.stringify({ label: labels }) } });
  }

  /** null when there is no such container. */
  async inspectContainer(id: string): Promise<EngineContainerDetails | null> {
    return this.#orNull(() => this.#json<EngineContainerDetails>('GET', `/containers/${encodeURIComponent(id)}/json`));
  }

  async createContainer(name: string, body: unknown): Promise<string> {
    const created = await this.#json<{ Id: string }>('POST', '/containers/create', { query: { name }, body });
    return created.Id;
  }

  async startContainer(id: string): Promise<void> {
    await this.#json('POST', `/containers/${encodeURIComponent(id)}/start`);
  }

  /** SIGTERM (the container's stop signal), then SIGKILL after `timeoutSec`. An absent or stopped container is not an error. */
  async stopContainer(id: string, timeoutSec: number): Promise<void> {
    // The engine answers only once the container is down: wait for its whole stop timeout, and more.
    await this.#orNull(() => this.#json('POST', `/containers/${encodeURIComponent(id)}/stop`, { query: { t: timeoutSec }, timeoutMs: timeoutSec * 1000 + this.#timeoutMs }));
  }

  async killContainer(id: string, signal = 'SIGKILL'): Promise<void> {
    await this.#json('POST', `/containers/${encodeURIComponent(id)}/kill`, { query: { signal } });
  }

  /** Removes the container, killing it if it still runs; an absent one is not an error. */
  async removeContainer(id: string): Promise<void> {
    await this.#orNull(() => this.#json('DELETE', `/containers/${encodeURIComponent(id)}`, { query: { force: true, v: true } }));
  }

  /** true when the image is present locally. */
  async hasImage(reference: string): Promise<boolean> {
    return (await this.#orNull(() => this.#json('GET', `/images/${encodeImage(reference)}/json`))) !== null;
  }

  /**
   * Pulls an image; resolves with null on success or the engine's error message. The engine answers
   * 200 and then reports a failure inside the progress stream, so every line is read for `error`.
   */
  async pullImage(reference: string, timeoutMs = 15 * 60_000): Promise<string | null> {
    let response: http.IncomingMessage;
    try {
      response = await this.#open('POST', '/images/create', { query: { fromImage: withTag(reference) }, timeoutMs });
    } catch (err) {
      if (err instanceof EngineError) return err.message;
      throw err;
    }
    let failure: string | null = null;
    try {
      for await (const line of jsonLines(response)) {
        const entry = line as { error?: unknown; errorDetail?: { message?: unknown } };
        if (entry.error !== undefined || entry.errorDetail !== undefined) {
          failure ??= String(entry.errorDetail?.message ?? entry.error);
        }
      }
    } catch (err) {
      // A stream cut short is not a finished pull.
      throw new EngineUnavailableError(`pulling ${reference}: the Docker engine hung up mid-pull`, { cause: err });
    }
    return failure;
  }

  /** The engine's event stream for the given filters; ends when the engine goes away or `close()` is called. */
  async events(filters: Readonly<Record<string, readonly string[]>>): Promise<EventStream> {
    const response = await this.#open('GET', '/events', { query: { filters: JSON.stringify(filters) }, timeoutMs: 0 });
    return { events: untilBroken(jsonLines(response)) as AsyncIterable<EngineEvent>, close: () => response.destroy() };
  }

  close(): void {
    this.#agent.destroy();
  }

  async #json<T>(method: string, path: string, call: Call = {}): Promise<T> {
    const { json } = await this.#send(method, `/v${await this.#api()}${path}`, call);
    return json as T;
  }

  async #orNull<T>(fn: () => Promise<T>): Promise<T | null> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof EngineError && (err.status === 404 || err.status === 304)) return null;
      throw err;
    }
  }

  #api(): Promise<string> {
    this.#version ??= this.#send('GET', '/version', {}).then(
      ({ json }) => negotiate(json as { ApiVersion?: string; MinAPIVersion?: string }),
      (err: unknown) => {
        this.#version = null;
        throw err;
      },
    );
    return this.#version;
  }

  async #send(method: string, path: string, call: Call): Promise<{ status: number; json: unknown }> {
    const response = await this.#openRaw(method, path, call);
    const text = await readAll(response, `${method} ${path}`);
    const json = text === '' ? null : safeJson(text);
    if (response.statusCode! >= 300) throw new EngineError(response.statusCode!, engineMessage(json, text, response.statusCode!));
    return { status: response.statusCode!, json };
  }

  /** A versioned call whose body is streamed; an error status is read whole and thrown. */
  async #open(method: string, path: string, call: Call): Promise<http.IncomingMessage> {
    const response = await this.#openRaw(method, `/v${await this.#api()}${path}`, call);
    if (response.statusCode! >= 300) {
      const text = await readAll(response, `${method} ${path}`);
      throw new EngineError(response.statusCode!, engineMessage(safeJson(text), text, response.statusCode!));
    }
    return response;
  }

  #openRaw(method: string, path: string, call: Call): Promise<http.IncomingMessage> {
    const timeoutMs = call.timeoutMs ?? this.#timeoutMs;
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);
    const what = `${method} ${path.replace(/^\/v[\d.]+/, '')}`;
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          ...this.#target,
          agent: this.#agent,
          method,
          path: path + queryString(call.query),
          headers: { host: 'docker', ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) },
        },
        resolve,
      );
      if (timeoutMs > 0) {
        // Idle time on the socket, so a slow stream that keeps sending stays open.
        request.setTimeout(timeoutMs, () => request.destroy(new EngineUnavailableError(`${what}: no answer from the Docker engine at ${this.host} within ${timeoutMs} ms`)));
      }
      request.on('error', (err: NodeJS.ErrnoException) => {
        reject(err instanceof EngineUnavailableError ? err : new EngineUnavailableError(`${what}: Docker engine at ${this.host} unreachable (${err.code ?? err.message})`, { cause: err }));
      });
      request.end(body);
    });
  }
}

function parseHost(host: string): { socketPath: string } | { host: string; port: number } {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const match = /^(?:tcp|http):\/\/([^:/]+):(\d+)\/?$/.exec(host);
  if (match) return { host: match[1]!, port: Number(match[2]) };
  throw new RangeError(`Docker host must be unix:///path or tcp://host:port, got ${JSON.stringify(host)}`);
}

function negotiate(version: { ApiVersion?: string; MinAPIVersion?: string }): string {
  const server = version.ApiVersion ?? MIN_API;
  if (compareVersions(server, MIN_API) < 0) throw new EngineError(400, `the Docker engine speaks API ${server}; steady needs ${MIN_API} or newer (Docker 20.10+)`);
  const chosen = compareVersions(server, MAX_API) < 0 ? server : MAX_API;
  const min = version.MinAPIVersion ?? chosen;
  return compareVersions(min, chosen) > 0 ? min : chosen;
}

function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/** Image names keep their slashes and colons in the path: the engine routes `/images/{name:.*}/json`. */
function encodeImage(reference: string): string {
  return reference.split('/').map(encodeURIComponent).join('/');
}

/** Without a tag or digest the engine would pull every tag of the repository; Docker's own default is `latest`. */
export function withTag(reference: string): string {
  if (reference.includes('@')) return reference;
  const last = reference.slice(reference.lastIndexOf('/') + 1);
  return last.includes(':') ? reference : `${reference}:latest`;
}

async function readAll(response: http.IncomingMessage, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of response) chunks.push(chunk as Buffer);
  } catch (err) {
    throw new EngineUnavailableError(`${what}: the Docker engine hung up mid-answer`, { cause: err });
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One JSON value per line, as the engine streams progress and events. Throws when the stream is cut short. */
async function* jsonLines(stream: http.IncomingMessage): AsyncGenerator<unknown> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  try {
    // A destroyed stream ends this loop with an error (premature close), so a close() is never left hanging.
    for await (const chunk of stream) {
      pending += decoder.write(chunk as Buffer);
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        const parsed = line === '' ? null : safeJson(line);
        if (parsed !== null) yield parsed;
      }
    }
    const last = pending.trim() === '' ? null : safeJson(pending.trim());
    if (last !== null) yield last;
    if (!stream.complete) throw new Error('the stream ended before the answer was complete');
  } finally {
    stream.destroy();
  }
}

/** The event stream simply ends when the engine goes away or it is closed: the caller reconnects. */
async function* untilBroken(lines: AsyncIterable<unknown>): AsyncGenerator<unknown> {
  try {
    yield* lines;
  } catch {
    // ended
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function engineMessage(json: unknown, text: string, status: number): string {
  const message = (json as { message?: unknown } | null)?.message;
  if (typeof message === 'string' && message !== '') return message;
  return text.trim().slice(0, 500) || `HTTP ${status}`;
}
