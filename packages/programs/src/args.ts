/**
 * Program arguments. `container run --arg k=v` hands a program strings or numbers; each program names the
 * args it takes and parses each one here, so that a bad value fails `init` with one line naming the
 * program, the arg and the problem. Sizes and durations go through the one units parser.
 */
import { SlicelabError } from '@slicelab/protocol/errors';
import { parseDuration, parseSize } from '@slicelab/protocol/units';
import type { ProgramArgs } from './program.js';

export class ArgReader {
  constructor(readonly program: string, private readonly args: ProgramArgs, accepted: readonly string[]) {
    for (const name of Object.keys(args)) {
      if (accepted.includes(name)) continue;
      const takes = accepted.length === 0 ? 'takes no args' : `accepted: ${accepted.join(', ')}`;
      throw this.error(`unknown arg ${quote(name)} (${takes})`);
    }
  }

  /** Bytes, at least `min`. */
  size(name: string, fallback: string, min: number): number {
    const bytes = this.parse(name, fallback, parseSize);
    if (bytes < min) throw this.error(`${name}: at least ${min} bytes, got ${bytes}`);
    return bytes;
  }

  /** Milliseconds, more than zero (or zero, when `zero` allows it). */
  duration(name: string, fallback: string, zero = false): number {
    const ms = this.parse(name, fallback, parseDuration);
    if (!(ms > 0 || (zero && ms === 0))) throw this.error(`${name}: must be more than zero, got ${quote(this.args[name] ?? fallback)}`);
    return ms;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.parse(name, fallback, toNumber);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw this.error(`${name}: an integer from ${min} to ${max}, got ${quote(this.args[name] ?? fallback)}`);
    }
    return value;
  }

  /** A finite number, at least `min`. */
  number(name: string, fallback: number, min: number, what: string): number {
    const value = this.parse(name, fallback, toNumber);
    if (!Number.isFinite(value) || value < min) {
      throw this.error(`${name}: ${what} (a number >= ${min}), got ${quote(this.args[name] ?? fallback)}`);
    }
    return value;
  }

  choice<T extends string>(name: string, fallback: T, choices: readonly T[]): T {
    const value = this.args[name] ?? fallback;
    const found = choices.find((choice) => choice === value);
    if (found === undefined) throw this.error(`${name}: one of ${choices.join(', ')}, got ${quote(value)}`);
    return found;
  }

  private parse(name: string, fallback: string | number, parser: (value: string | number) => number): number {
    const value: unknown = this.args[name] ?? fallback;
    if (typeof value !== 'string' && typeof value !== 'number') {
      throw this.error(`${name}: expected a string or a number, got ${typeof value}`);
    }
    try {
      return parser(value);
    } catch (error) {
      throw this.error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** A one-line EINVAL naming the program: for checks that the readers above do not cover. */
  error(problem: string): SlicelabError {
    return new SlicelabError('EINVAL', oneLine(`${this.program}: ${problem}`));
  }
}

/** Numbers as people type them; anything else is NaN, which the caller refuses. */
function toNumber(value: string | number): number {
  if (typeof value === 'number') return value;
  return /^\s*[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?\s*$/i.test(value) ? Number(value) : Number.NaN;
}

function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** Control characters in a user's value must not break the message over several lines. */
function oneLine(text: string): string {
  const escape = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, escape);
}
