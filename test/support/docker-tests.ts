import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, inject } from 'vitest';
import { DockerEngine } from '../../src/agent/docker/engine.js';
import type { Logger } from '../../src/logger.js';

/**
 * Docker test suites run against the private engine the global setup started; where none can run,
 * they are skipped with the reason in their title (and the setup prints it once).
 */
export function describeDocker(title: string, body: (host: string) => void): void {
  const host = inject('dockerHost');
  if (host === '') {
    describe.skip(`${title} (skipped: ${inject('dockerSkipReason')})`, () => body(''));
    return;
  }
  describe(title, () => body(host));
}

export const uniqueName = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

export function engineClient(host: string): DockerEngine {
  return new DockerEngine({ host });
}

/** A logger whose every line is kept as text, so a test can prove what was (not) logged. */
export function capturingLogger(): { logger: Logger; text: () => string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), text: () => text };
}
