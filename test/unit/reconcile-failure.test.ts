import { describe, expect, it } from 'vitest';
import { reconcileFailure } from '../../src/controller/reconcile-failure.js';
import { StaleReadError } from '../../src/db/controller/reconcile-store.js';

const pgError = (code: string): Error => Object.assign(new Error(`pg ${code}`), { code });

describe('reconcileFailure', () => {
  it('takes the database being away, a deadlock and a serialization failure as transient', () => {
    for (const err of [pgError('57P01'), pgError('08006'), pgError('53300'), pgError('40001'), pgError('40P01'), pgError('ECONNREFUSED'), new Error('Connection terminated unexpectedly')]) {
      expect(reconcileFailure(err), err.message).toBe('transient');
    }
  });

  it('takes a stale read and what the allocation trigger refused as a conflict', () => {
    expect(reconcileFailure(new StaleReadError('replicas to stop'))).toBe('conflict');
    expect(reconcileFailure(pgError('ST001'))).toBe('conflict');
    expect(reconcileFailure(pgError('ST003'))).toBe('conflict');
  });

  it('takes anything else as a fault', () => {
    for (const err of [new Error('boom'), pgError('23505'), pgError('ST002'), 'a string', null, undefined]) expect(reconcileFailure(err)).toBe('fault');
  });
});
