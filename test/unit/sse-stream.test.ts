import { describe, expect, it } from 'vitest';
import { SseStream, type CloseReason } from '../../src/api/events/sse-stream.js';

const decoder = new TextDecoder();

function setup(overrides: { maxBufferedBytes?: number; stallMs?: number; pingMs?: number } = {}) {
  let clock = 0;
  const closes: CloseReason[] = [];
  const stream = new SseStream({
    retryMs: 2000,
    pingMs: overrides.pingMs ?? 60_000,
    maxBufferedBytes: overrides.maxBufferedBytes ?? 1024 * 1024,
    stallMs: overrides.stallMs ?? 60_000,
    onClose: (reason) => closes.push(reason),
    now: () => clock,
  });
  return { stream, closes, advance: (ms: number) => (clock += ms) };
}

async function readAll(body: ReadableStream<Uint8Array>): Promise<{ text: string; error: unknown }> {
  const reader = body.getReader();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, error: null };
      text += decoder.decode(value);
    }
  } catch (error) {
    return { text, error };
  }
}

const payload = { blob: 'x'.repeat(1000) };

describe('SseStream', () => {
  it('writes the wire format: retry and id in the opening block, then id, event and one data line', async () => {
    const { stream } = setup();
    stream.open(41n);
    stream.event(42n, 'replica', { a: 'line\nbreak' });
    stream.close();
    const { text, error } = await readAll(stream.body);
    expect(error).toBeNull();
    expect(text).toBe('retry: 2000\nid: 41\n\nid: 42\nevent: replica\ndata: {"a":"line\\nbreak"}\n\n');
  });

  it('holds what a client does not read up to the bound, then drops it', () => {
    const { stream, closes } = setup({ maxBufferedBytes: 10_000 });
    // 64 KiB go into the body (the transport's share); then the backlog fills.
    for (let i = 0; i < 64 && stream.isOpen; i++) stream.event(BigInt(i), 'x', payload);
    expect(stream.isOpen).toBe(true);
    for (let i = 64; i < 200 && stream.isOpen; i++) stream.event(BigInt(i), 'x', payload);
    expect(stream.isOpen).toBe(false);
    expect(closes).toEqual(['slow']);
  });

  it('keeps a slow client that keeps reading', async () => {
    const { stream, closes } = setup({ maxBufferedBytes: 10_000 });
    const reader = stream.body.getReader();
    let received = 0;
    let chunks = 0;
    for (let i = 0; i < 500; i++) {
      stream.event(BigInt(i), 'x', payload);
      if (i % 5 === 4) {
        // Read a little now and then (one chunk per event): the backlog drains as fast as it is read.
        for (; chunks < i - 2; chunks++) received += (await reader.read()).value?.byteLength ?? 0;
      }
    }
    expect(stream.isOpen).toBe(true);
    expect(received).toBeGreaterThan(100 * 1000);
    stream.close();
    expect(closes).toEqual(['shutdown']);
  });

  it('drops a client that takes nothing for the stall time, and not before', async () => {
    const { stream, closes, advance } = setup({ stallMs: 1000, pingMs: 5 });
    for (let i = 0; i < 80; i++) stream.event(BigInt(i), 'x', payload);
    advance(999);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(stream.isOpen).toBe(true);
    advance(1);
    await expect.poll(() => stream.isOpen, { timeout: 5_000 }).toBe(false);
    expect(closes).toEqual(['slow']);
    expect((await readAll(stream.body)).error).toBeInstanceOf(Error);
  });

  it('pings while idle and stops its timer when the client goes away', async () => {
    const { stream, closes } = setup({ pingMs: 5 });
    const reader = stream.body.getReader();
    const first = decoder.decode((await reader.read()).value);
    expect(first).toBe(': ping\n\n');
    await reader.cancel();
    expect(closes).toEqual(['client']);
    expect(stream.isOpen).toBe(false);
  });
});
