import { ErrorSchema } from './schemas.js';

/** Documented error responses, all with the one error body. Every /api route may answer 429 and 503. */
const DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed JSON',
  401: 'Missing or invalid bearer token',
  403: 'Missing role',
  404: 'Unknown id, another user\'s resource, or a malformed id',
  409: 'Conflicts with the current state',
  413: 'Body over 64 KiB',
  415: 'Body is not application/json',
  422: 'Validation failed',
  429: 'Over the caller\'s request rate (STEADY_RATE_LIMIT); retry after `Retry-After` seconds',
  503: 'Database unavailable',
};

export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(
    [...statuses, 429, 503].map((status) => [
      status,
      { description: DESCRIPTIONS[status] ?? 'Error', content: { 'application/json': { schema: ErrorSchema } } },
    ]),
  );
}

export const BEARER = [{ bearerAuth: [] }];

export const jsonBody = <T>(schema: T) => ({ required: true, content: { 'application/json': { schema } } });
export const jsonContent = <T>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
