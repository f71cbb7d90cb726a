import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSseParser, type SseMessage } from '../../src/client/sse-parser.js';

function parse(chunks: readonly string[]): { events: SseMessage[]; ids: string[]; retries: number[] } {
  const out = { events: [] as SseMessage[], ids: [] as string[], retries: [] as number[] };
  const parser = createSseParser({ onEvent: (m) => out.events.push(m), onId: (id) => out.ids.push(id), onRetry: (ms) => out.retries.push(ms) });
  for (const c of chunks) parser.feed(c);
  return out;
}

const STREAM =
  '\uFEFFretry: 2000\nid: 7\n\n: ping\n\nid: 8\nevent: deployment\ndata: {"a":1,\ndata: "b":2}\n\r\n' +
  'event: replica\r\ndata:x\r\n\r\nid: bad\u0000id\nretry: soon\ndata\n\nid:9\rdata: y\r\r';

const EXPECTED = {
  events: [
    { event: 'deployment', data: '{"a":1,\n"b":2}', id: '8' },
    { event: 'replica', data: 'x', id: '8' },
    { event: undefined, data: '', id: '8' },
    { event: undefined, data: 'y', id: '9' },
  ],
  ids: ['7', '8', '9'],
  retries: [2000],
};

describe('event-stream parser', () => {
  it('follows the format: fields, comments, CRLF/LF/CR, BOM, an id without data, a NUL id and a bad retry ignored', () => {
    expect(parse([STREAM])).toEqual(EXPECTED);
  });

  it('gives the same events however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: STREAM.length - 1 }), { maxLength: 12 }), (cuts) => {
        const at = [0, ...[...cuts].sort((a, b) => a - b), STREAM.length];
        const chunks = at.slice(1).map((end, i) => STREAM.slice(at[i], end));
        expect(parse(chunks)).toEqual(EXPECTED);
      }),
    );
  });

  it('refuses a line that never ends past 1 MiB', () => {
    const parser = createSseParser({ onEvent: () => undefined });
    expect(() => parser.feed(`data: ${'x'.repeat((1 << 20) + 1)}`)).toThrow(/longer than/);
  });
});
