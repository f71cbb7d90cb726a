import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ZodError } from 'zod';
import { isTransientDbError } from '../db/database.js';
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  type ValidationIssue,
} from '../domain/errors.js';
import type { Logger } from '../logger.js';

/**
 * The one error boundary: typed errors from anywhere below become `{"error": {code, message, details?}}`
 * with their status. Anything unrecognised is a bug: logged with its stack, answered with a generic 500.
 */

export interface ErrorBody {
  error: { code: string; message: string; details?: ValidationIssue[] };
}

/**
 * The caller has used up its request budget (src/api/rate-limit.ts). Defined here, not with the
 * domain's errors: only the API limits requests.
 */
export class RateLimitedError extends DomainError {
  readonly code = 'rate_limited';
  constructor(
    /** Whole seconds until the caller has a request to spend again; at least 1. */
    readonly retryAfterSec: number,
  ) {
    super('too many requests, retry later');
    this.name = 'RateLimitedError';
  }
}

/** A caller already holds as many event streams on this process as it may (src/api/events/). */
export class TooManyStreamsError extends DomainError {
  readonly code = 'too_many_streams';
  constructor(readonly limit: number) {
    super(`at most ${limit} open event streams per caller; close one first`);
    this.name = 'TooManyStreamsError';
  }
}

const STATUS_OF: ReadonlyArray<readonly [new (...args: never[]) => DomainError, ContentfulStatusCode]> = [
  [NotFoundError, 404],
  [ConflictError, 409],
  [ValidationError, 422],
  [UnauthorizedError, 401],
  [ForbiddenError, 403],
  [UnavailableError, 503],
  [RateLimitedError, 429],
  [TooManyStreamsError, 429],
];

// What hono itself throws (body parsing, media type gate, body limit), by status.
const HTTP_EXCEPTION_CODES: Readonly<Record<number, readonly [string, string]>> = {
  400: ['bad_request', 'malformed JSON in request body'],
  413: ['payload_too_large', 'request body too large'],
  415: ['unsupported_media_type', 'request body must be application/json'],
};

/** Infrastructure states that are not bugs: the pool is shut (shutdown), the embedded database closed. */
const isDatabaseGone = (err: unknown): boolean =>
  err instanceof Error && /pool after calling end|driver has already been destroyed|PGlite is closed/i.test(err.message);

export function errorResponse(c: Context, status: ContentfulStatusCode, body: ErrorBody, headers: Record<string, string> = {}): Response {
  return c.json(body, status, headers);
}

export function createErrorHandler(logger: Logger): ErrorHandler {
  return (err, c) => {
    for (const [type, status] of STATUS_OF) {
      if (err instanceof type) {
        const domain = err as DomainError;
        const headers: Record<string, string> = {};
        if (domain instanceof UnauthorizedError) headers['WWW-Authenticate'] = 'Bearer realm="steady"';
        if (domain instanceof UnavailableError) headers['Retry-After'] = '1';
        if (domain instanceof RateLimitedError) headers['Retry-After'] = String(domain.retryAfterSec);
        if (domain instanceof TooManyStreamsError) headers['Retry-After'] = '5';
        if (domain instanceof UnavailableError) logger.warn({ err: domain.cause ?? domain }, 'dependency unavailable');
        const details = domain instanceof ValidationError ? [...domain.issues] : undefined;
        return errorResponse(c, status, { error: { code: domain.code, message: domain.message, ...(details ? { details } : {}) } }, headers);
      }
    }
    if (err instanceof HTTPException) {
      const [code, message] = HTTP_EXCEPTION_CODES[err.status] ?? ['http_error', err.message || 'request failed'];
      // Refused before its body was read: the rest of the body is still on its way, so this
      // connection cannot carry another request. Say so, or the client reuses it and meets a closed
      // socket; the server reads out what is still coming before it lets go (lingering-close.ts).
      const headers: Record<string, string> = err.status === 413 ? { Connection: 'close' } : {};
      return errorResponse(c, err.status as ContentfulStatusCode, { error: { code, message } }, headers);
    }
    if (isTransientDbError(err) || isDatabaseGone(err)) {
      logger.warn({ err }, 'database unavailable');
      return errorResponse(c, 503, { error: { code: 'service_unavailable', message: 'database unavailable, retry later' } }, { 'Retry-After': '1' });
    }
    logger.error({ err, method: c.req.method, path: c.req.path }, 'unhandled error in request');
    return errorResponse(c, 500, { error: { code: 'internal', message: 'internal server error' } });
  };
}

export const notFoundHandler: NotFoundHandler = (c) =>
  errorResponse(c, 404, { error: { code: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` } });

export function zodIssues(error: ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
}

type HookResult = { success: true } | { success: false; error: ZodError; target: string };

/** Validation failures are 422 with the field paths; the app's default hook for every route. */
export function validationHook(result: HookResult): undefined {
  if (!result.success) throw new ValidationError(`invalid ${result.target === 'json' ? 'request body' : result.target}`, zodIssues(result.error));
  return undefined;
}

/** For routes with an `{id}`: a malformed id is "not found", exactly like an unknown one. */
export const notFoundOnBadId =
  (resource: string) =>
  (result: HookResult): undefined => {
    if (!result.success && result.target === 'param') throw new NotFoundError(resource);
    return validationHook(result);
  };
