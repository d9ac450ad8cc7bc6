/**
 * Bit helpers and declarative bit-field tables. MSR values are `bigint` (u64) everywhere.
 */

export const U64_MASK = (1n << 64n) - 1n;

/** Bits 0..63 as masks, made once: a BigInt shift allocates, and bits are tested on every access. */
const BITS: readonly bigint[] = Array.from({ length: 64 }, (_, n) => 1n << BigInt(n));

/** A single bit `n` as a u64 mask. */
export function bit(n: number): bigint {
  return BITS[n] ?? 1n << BigInt(n);
}

/** Bits `hi:lo` inclusive as a u64 mask. */
export function bits(hi: number, lo: number): bigint {
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

const LOW_MASKS: readonly bigint[] = Array.from({ length: 65 }, (_, n) => (1n << BigInt(n)) - 1n);

/** Low `n` bits set: the value mask of an n-bit counter (0..64 precomputed: counting masks with it per unit). */
export function lowMask(n: number): bigint {
  return LOW_MASKS[n] ?? (1n << BigInt(n)) - 1n;
}

export function isSet(v: bigint, n: number): boolean {
  const b = BITS[n];
  return b !== undefined ? (v & b) !== 0n : ((v >> BigInt(n)) & 1n) === 1n;
}

/** Sign-extend `v` from bit `signBit` to 64 bits (u64 result). */
export function signExtend(v: bigint, signBit: number): bigint {
  const m = lowMask(signBit + 1);
  const low = v & m;
  return isSet(low, signBit) ? (low | (U64_MASK & ~m)) & U64_MASK : low;
}

/** True when bits 63:signBit are all equal (the value is a sign extension of bit `signBit`). */
export function isSignExtended(v: bigint, signBit: number): boolean {
  return signExtend(v, signBit) === (v & U64_MASK);
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** The indices of the set bits of `v`, lowest first. */
export function setBits(v: bigint): number[] {
  const out: number[] = [];
  if (v >= 0n && v <= U64_MASK) {
    // A u64 as two 32-bit numbers: a BigInt shift per bit allocates, and status words are walked in every PMI.
    for (let i = 0, lo = Number(v & 0xffff_ffffn); lo !== 0; i++, lo >>>= 1) if ((lo & 1) !== 0) out.push(i);
    for (let i = 32, hi = Number(v >> 32n); hi !== 0; i++, hi >>>= 1) if ((hi & 1) !== 0) out.push(i);
    return out;
  }
  let x = v;
  let i = 0;
  while (x !== 0n) {
    if ((x & 1n) === 1n) out.push(i);
    x >>= 1n;
    i++;
  }
  return out;
}

/** One named field of a register: a single bit or the inclusive range hi:lo. */
export interface Field {
  readonly name: string;
  readonly hi: number;
  readonly lo: number;
}

/** A register's layout, in the order the SDM lists the fields. */
export type FieldTable<K extends string> = { readonly [P in K]: Field };

/** Builds a field table from `name: bit` or `name: [hi, lo]` entries. */
export function fields<K extends string>(spec: {
  readonly [P in K]: number | readonly [number, number];
}): FieldTable<K> {
  const out = {} as { [P in K]: Field };
  for (const name of Object.keys(spec) as K[]) {
    const s = spec[name];
    out[name] = typeof s === 'number' ? { name, hi: s, lo: s } : { name, hi: s[0], lo: s[1] };
  }
  return out;
}

export function fieldMask(f: Field): bigint {
  return bits(f.hi, f.lo);
}

export function getField(v: bigint, f: Field): bigint {
  return (v >> BigInt(f.lo)) & lowMask(f.hi - f.lo + 1);
}

export function setField(v: bigint, f: Field, x: bigint): bigint {
  const m = fieldMask(f);
  return (v & ~m) | ((x << BigInt(f.lo)) & m);
}

/** The union mask of the named fields. */
export function maskOf<K extends string>(t: FieldTable<K>, names: readonly K[]): bigint {
  let m = 0n;
  for (const n of names) m |= fieldMask(t[n]);
  return m;
}

/** Lists reserved bits that are set, for #GP explanations ("bits 33,40"). */
export function describeBits(v: bigint): string {
  const b = setBits(v);
  return b.length === 1 ? `bit ${b[0]}` : `bits ${b.join(',')}`;
}

/** The number of bits set in `x` (x ≥ 0). */
export function bitCount(x: bigint): number {
  let n = 0;
  for (; x !== 0n; x &= x - 1n) n++;
  return n;
}
