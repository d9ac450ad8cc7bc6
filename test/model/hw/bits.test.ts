import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { setBits } from '../../../model/hw/bits.js';

/** The reference: every index whose bit is set, by one BigInt test each. */
const naive = (v: bigint): number[] => {
  const out: number[] = [];
  for (let i = 0; v >> BigInt(i) !== 0n; i++) if (((v >> BigInt(i)) & 1n) === 1n) out.push(i);
  return out;
};

describe('setBits (bits.ts)', () => {
  it('lists the set bits of any u64 lowest first, bits 31, 32 and 63 included', () => {
    expect(setBits(0n)).toEqual([]);
    expect(setBits((1n << 63n) | (1n << 32n) | (1n << 31n) | 1n)).toEqual([0, 31, 32, 63]);
    expect(setBits((1n << 64n) - 1n)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => void expect(setBits(v)).toEqual(naive(v))),
    );
  });

  it('past 64 bits too', () => {
    expect(setBits((1n << 70n) | 2n)).toEqual([1, 70]);
  });
});
