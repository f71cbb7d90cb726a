/** One problem in a request, as the API's 422 names it. */
export interface ApiErrorDetail {
  readonly path: string;
  readonly message: string;
}

/**
 * Every failed call: the API's `{"error": {code, message, details?}}` with the HTTP status, or, when
 * no answer came, status 0 with code `network_error` or `timeout`. Never a raw fetch failure.
 */
export class ApiError extends Error {
  constructor(
    /** The HTTP status; 0 when the server could not be reached or did not answer in time. */
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: readonly ApiErrorDetail[] = [],
    /** Seconds the server asked us to wait (429 Retry-After), else null. */
    readonly retryAfterSec: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ApiError';
  }

  /** The same request may succeed later: no answer, 408, 429, or a 5xx. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/** The error a non-2xx answer carries: its `{error}` body when it has one, else the status line. */
export function errorFromAnswer(status: number, statusText: string, text: string, retryAfter: string | null): ApiError {
  const retryAfterSec = retryAfter !== null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : null;
  const body = parseJson(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined;
  const error = body?.error;
  if (error && typeof error.code === 'string' && typeof error.message === 'string') {
    const details = Array.isArray(error.details)
      ? error.details.filter((d): d is ApiErrorDetail => typeof d?.path === 'string' && typeof d?.message === 'string')
      : [];
    return new ApiError(status, error.code, error.message, details, retryAfterSec);
  }
  const snippet = text.trim().slice(0, 200);
  return new ApiError(status, `http_${status}`, snippet !== '' && !snippet.startsWith('<') ? `${status} ${snippet}` : `${status} ${statusText}`.trim(), [], retryAfterSec);
}

/** The error for a request that got no answer: the server is down, unreachable, or too slow. */
export function errorFromFailure(what: string, baseUrl: string, err: unknown, timeoutMs: number): ApiError {
  if (err instanceof Error && err.name === 'TimeoutError') {
    return new ApiError(0, 'timeout', `${what}: no answer from ${baseUrl} within ${timeoutMs} ms`, [], null, { cause: err });
  }
  if (err instanceof Error && err.name === 'AbortError') {
    return new ApiError(0, 'aborted', `${what}: cancelled`, [], null, { cause: err });
  }
  // Node's fetch hides the reason in `cause` (ECONNREFUSED, ENOTFOUND…); a browser says only "Failed to fetch".
  const cause = err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  const reason = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : err instanceof Error ? err.message : String(err);
  return new ApiError(0, 'network_error', `cannot reach steady at ${baseUrl} (${reason})`, [], null, { cause: err });
}

export function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
