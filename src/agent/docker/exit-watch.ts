import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../../logger.js';
import type { DockerEngine } from './engine.js';

export interface ExitWatchOptions {
  readonly engine: DockerEngine;
  /** Label filters (`key=value`) the containers must carry. */
  readonly labels: readonly string[];
  /** Called with the container id of every exit, and with null after a reconnect (exits may have been missed). */
  readonly onExit: (containerId: string | null) => void;
  readonly logger: Logger;
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

/**
 * Follows the engine's `/events` stream for container exits and OOM kills; reconnects with backoff
 * when the stream drops (the engine restarted). Exits missed meanwhile are found by the agent's next
 * pass, which lists every container; the reconnect itself also calls `onExit(null)` to ask for one.
 */
export class ExitWatch {
  readonly #options: ExitWatchOptions;
  #closed = false;
  #close: (() => void) | null = null;
  readonly #abort = new AbortController();
  readonly #loop: Promise<void>;
  #connected = false;

  constructor(options: ExitWatchOptions) {
    this.#options = options;
    this.#loop = this.#run();
  }

  get connected(): boolean {
    return this.#connected;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#close?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { engine, labels, onExit, logger } = this.#options;
    const baseMs = this.#options.retryBaseMs ?? 200;
    const maxMs = this.#options.retryMaxMs ?? 5_000;
    let failures = 0;
    let everConnected = false;
    while (!this.#closed) {
      try {
        const stream = await engine.events({ type: ['container'], event: ['die', 'oom'], label: [...labels] });
        this.#close = stream.close;
        if (this.#closed) stream.close();
        this.#connected = true;
        if (everConnected) {
          logger.info('Docker event stream reconnected');
          onExit(null);
        }
        everConnected = true;
        failures = 0;
        for await (const event of stream.events) onExit(event.Actor.ID);
      } catch (err) {
        failures++;
        if (failures === 1) logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'Docker event stream unavailable; retrying');
      } finally {
        this.#connected = false;
        this.#close = null;
      }
      if (this.#closed) break;
      if (failures === 0) logger.warn('Docker event stream ended; reconnecting');
      await delay(Math.min(baseMs * 2 ** Math.max(0, failures - 1), maxMs), undefined, { signal: this.#abort.signal }).catch(() => undefined);
    }
  }
}
