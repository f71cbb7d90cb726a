/**
 * Typed errors that domain and query code throw for expected failures. They carry no HTTP: the API's
 * one error boundary (src/api/errors.ts) maps each class to a status code and the error body.
 */

export interface ValidationIssue {
  /** Dotted path of the offending field (`resources.cpu_cores`), or '' for the whole value. */
  readonly path: string;
  readonly message: string;
}

export abstract class DomainError extends Error {
  /** Stable, machine-readable code for clients (`not_found`, `conflict`…). */
  abstract readonly code: string;
}

/** The thing does not exist, or the caller may not know that it exists (another user's, soft-deleted). */
export class NotFoundError extends DomainError {
  readonly code = 'not_found';
  constructor(readonly resource: string) {
    super(`${resource} not found`);
    this.name = 'NotFoundError';
  }
}

/** The request is well-formed but contradicts the current state (a taken name, an illegal transition). */
export class ConflictError extends DomainError {
  readonly code = 'conflict';
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export class ValidationError extends DomainError {
  readonly code = 'validation_failed';
  constructor(
    message: string,
    readonly issues: readonly ValidationIssue[] = [],
  ) {
    super(message);
    this.name = 'ValidationError';
  }
}

/** No credentials, or credentials that do not prove who the caller is. */
export class UnauthorizedError extends DomainError {
  readonly code = 'unauthorized';
  constructor(message = 'missing or invalid bearer token') {
    super(message);
    this.name = 'UnauthorizedError';
  }
}

/** The caller is known but lacks the right (a role, or a node acting for another node). */
export class ForbiddenError extends DomainError {
  readonly code = 'forbidden';
  constructor(message: string) {
    super(message);
    this.name = 'ForbiddenError';
  }
}

/** A dependency (database, identity provider) is away; the same request may succeed later. */
export class UnavailableError extends DomainError {
  readonly code = 'service_unavailable';
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'UnavailableError';
  }
}
