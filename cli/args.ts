/** Argument parsers the commands share: a bad value is commander's one-line error, never a trace. */

import { InvalidArgumentError } from 'commander';

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** fast-check seeds are 32-bit signed integers. */
export function seedArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n >= 2 ** 31)
    throw new InvalidArgumentError('must be a 32-bit integer');
  return n;
}
