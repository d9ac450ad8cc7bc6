/**
 * MSR value arbitraries built from bits, with edge values weighted in by hand: inside
 * `fc.commands` fast-check applies no bias, and its bigint shrinker shrinks magnitude, not bits
 * (toolchain.md §0 findings 1 and 2). These shrink toward fewer set bits.
 */

import fc from 'fast-check';
import { type FieldTable, setBits, setField, U64_MASK } from '../model/hw/bits.js';

export function bitsToU64(bs: readonly number[]): bigint {
  let v = 0n;
  for (const b of bs) v |= 1n << BigInt(b);
  return v;
}

function u64ToBits(v: unknown): number[] {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MASK) throw new Error('not a u64');
  return setBits(v);
}

/** Values that break virtualizers: 0, all ones, the sign bits of 32/48/64-bit views, masks. */
export const EDGE_VALUES: readonly bigint[] = [
  0n,
  U64_MASK,
  1n,
  1n << 63n,
  0xffff_ffffn,
  0x8000_0000n,
  0x7fff_ffffn,
  (1n << 48n) - 1n,
  1n << 47n,
  1n << 48n,
  0xffff_8000_0000_0000n,
  0x8000_0000_0000_0001n,
];

/** A u64 as a set of bits, shrinking by removing bits. */
export const bitSetU64: fc.Arbitrary<bigint> = fc.uniqueArray(fc.nat(63), { maxLength: 10 }).map(bitsToU64, u64ToBits);

/** Sparse values: few bits, often legal, still reaching every bit position. */
export const sparseU64: fc.Arbitrary<bigint> = fc.uniqueArray(fc.nat(63), { maxLength: 3 }).map(bitsToU64, u64ToBits);

/** Any u64, weighted: edges, single bits, sparse and dense bit sets. */
export const u64: fc.Arbitrary<bigint> = fc.oneof(
  { arbitrary: fc.constantFrom(...EDGE_VALUES), weight: 2 },
  { arbitrary: fc.nat(63).map((b) => 1n << BigInt(b)), weight: 2 },
  { arbitrary: sparseU64, weight: 3 },
  { arbitrary: bitSetU64, weight: 2 },
);

/** A register value from named fields: `encode(EVTSEL, { event: 0xc0n, en: 1n })`. */
export function encode<K extends string>(t: FieldTable<K>, f: { readonly [P in K]?: bigint }): bigint {
  let v = 0n;
  for (const k of Object.keys(f) as K[]) v = setField(v, t[k], f[k] ?? 0n);
  return v;
}
