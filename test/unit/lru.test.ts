import { describe, expect, it } from 'vitest';
import { LruMap } from '../../src/lib/lru.js';

describe('LruMap', () => {
  it('keeps at most capacity entries, dropping the least recently used', () => {
    const map = new LruMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    expect(map.get('a')).toBe(1); // a is now the most recent
    map.set('c', 3);
    expect(map.get('b')).toBeUndefined();
    expect(map.get('a')).toBe(1);
    expect(map.get('c')).toBe(3);
    expect(map.size).toBe(2);
  });

  it('lists entries oldest first without touching their recency', () => {
    const map = new LruMap<string, number>(3);
    for (const [k, v] of [['a', 1], ['b', 2], ['c', 3]] as const) map.set(k, v);
    map.get('a');
    expect([...map]).toEqual([['b', 2], ['c', 3], ['a', 1]]);
    map.set('d', 4);
    expect([...map].map(([k]) => k)).toEqual(['c', 'a', 'd']);
  });
});
