import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: 'json' | 'pretty' | 'auto';
  /** Where JSON lines go; stdout by default. Tests pass a stream to read the lines back. */
  readonly destination?: NodeJS.WritableStream;
}

/**
 * JSON lines on stdout by default; one coloured line per event on a terminal (or LOG_FORMAT=pretty).
 * Anything that could carry a credential is redacted wherever it appears in a log object.
 */
export function createLogger(options: LoggerOptions): Logger {
  const base: pino.LoggerOptions = {
    level: options.level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        'authorization',
        'token',
        'secret',
        'password',
        'databaseUrl',
        '*.authorization',
        '*.token',
        '*.secret',
        '*.password',
        '*.databaseUrl',
        'req.headers.authorization',
      ],
      censor: '[redacted]',
    },
  };
  const wantPretty = options.format === 'pretty' || (options.format === 'auto' && process.stdout.isTTY === true);
  if (wantPretty && !options.destination) {
    return pino(base, pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino(base, options.destination ?? pino.destination({ sync: true }));
}
