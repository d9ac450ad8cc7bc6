/** Argument parsers the commands share: a bad value is commander's one-line error, never a trace. */

import { InvalidArgumentError } from 'commander';

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** A share of a run, `i/n`: the i-th of n shards, 1 <= i <= n. */
export function shardArg(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (m === null || !(index >= 1 && index <= count && count <= 1000))
    throw new InvalidArgumentError('must be i/n with 1 <= i <= n <= 1000, e.g. 2/3');
  return { index, count };
}

/** fast-check seeds are 32-bit signed integers. */
export function seedArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n >= 2 ** 31)
    throw new InvalidArgumentError('must be a 32-bit integer');
  return n;
}
