import type { ListPosition } from '../db/queries/deployment-list.js';
import { ValidationError } from '../domain/errors.js';

/**
 * The list cursor: opaque to clients (base64url of `v1:<created_at µs>:<id>`), validated strictly on
 * the way back in so a forged cursor is a 422, never a database error.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`v1:${position.createdAtMicros}:${position.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): ListPosition {
  const invalid = () => new ValidationError('invalid query', [{ path: 'cursor', message: 'not a cursor this API issued' }]);
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  const [version, micros, id, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  // 1..16 digits: any instant from 1970 to year 2286 in microseconds, far inside bigint and timestamptz.
  if (version !== 'v1' || rest.length > 0 || !micros || !/^\d{1,16}$/.test(micros) || !id || !UUID.test(id)) throw invalid();
  return { createdAtMicros: BigInt(micros), id };
}
