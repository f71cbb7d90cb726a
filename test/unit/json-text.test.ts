import { describe, expect, it } from 'vitest';
import { jsonViewOnce } from '../../src/api/json-text.js';

describe('jsonViewOnce', () => {
  it('serializes each object once, and every other object on its own', () => {
    let views = 0;
    const text = jsonViewOnce((s: { n: number }) => {
      views++;
      return { n: s.n, twice: s.n * 2 };
    });
    const a = { n: 1 };
    const b = { n: 2 };
    expect(text(a)).toBe('{"n":1,"twice":2}');
    expect(text(a)).toBe('{"n":1,"twice":2}');
    expect(views).toBe(1);
    expect(text(b)).toBe('{"n":2,"twice":4}');
    expect(views).toBe(2);
  });
});
