import { InvalidArgumentError, type Command } from 'commander';
import { parseDuration } from '../lib/duration.js';

/** Argument parsers for commander options: a bad value is a usage error (exit code 2) naming the option. */
export function integerIn(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

export function durationAtLeast(minMs: number, example: string): (text: string) => number {
  return (text) => {
    const ms = parseDuration(text);
    if (ms === null || ms < minMs) throw new InvalidArgumentError(`expected a duration such as ${example}`);
    return ms;
  };
}

export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A usage error found after parsing (a combination of options, an empty value): exit code 2, with the command's help. */
export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, { exitCode: 2, code: 'steady.usage' });
}
