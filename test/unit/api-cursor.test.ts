import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../src/api/cursor.js';
import { ValidationError } from '../../src/domain/errors.js';

describe('list cursor', () => {
  it('round-trips every position', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 9_999_999_999_999_999n }), fc.uuid(), (createdAtMicros, id) => {
        expect(decodeCursor(encodeCursor({ createdAtMicros, id }))).toEqual({ createdAtMicros, id });
      }),
    );
  });

  it('rejects anything it did not issue with a ValidationError on `cursor`', () => {
    const forged = (text: string) => Buffer.from(text).toString('base64url');
    for (const cursor of ['', '$$$', 'abc', forged('v2:1:3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab'), forged('v1:-1:3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab'), forged('v1:12345678901234567:3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab'), forged('v1:1:not-a-uuid'), forged("v1:1:3f1c2a9e-8b7d-4c6e-9a5f-0123456789ab:x"), forged("v1:1:'; DROP TABLE users; --")]) {
      expect(() => decodeCursor(cursor), cursor).toThrow(ValidationError);
    }
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          decodeCursor(s);
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError);
        }
      }),
    );
  });
});
