/** Work-unit arbitraries: small, CPL-tagged units with canonical branch addresses. */

import fc from 'fast-check';
import { BRANCH_KINDS } from '../model/hw/state.js';
import { type Branch, type WorkUnit } from '../model/hw/work.js';

const USER_BASE = 0x40_0000n;
const KERNEL_BASE = 0xffff_ffff_8100_0000n;

/**
 * One arbitrary per CPL, built on first use and reused: building an arbitrary for every value
 * (inside `chain`) costs about as much as drawing from it, and a prebuilt one draws the same values.
 */
function perCpl<T>(build: (cpl: number) => fc.Arbitrary<T>): (cpl: number) => fc.Arbitrary<T> {
  const built: fc.Arbitrary<T>[] = [];
  return (cpl) => (built[cpl] ??= build(cpl));
}

/** A canonical address in user or kernel text, from a small pool so branches repeat. */
export const address = perCpl((cpl): fc.Arbitrary<bigint> =>
  fc.nat(0xfff).map((o) => (cpl === 0 ? KERNEL_BASE : USER_BASE) + BigInt(o) * 16n),
);

export const cplArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constant(3), weight: 3 },
  { arbitrary: fc.constant(0), weight: 2 },
  { arbitrary: fc.constantFrom(1, 2), weight: 1 },
);

/**
 * `fc.record(model).map(f)` without the intermediate object, drawn as fast-check draws a record: each field in the
 * model's key order, then the record's null-prototype coin. Every seed gives the same values and the same shrinks as
 * the record did; the record's object and its key-by-key copy were the generator's largest allocation.
 */
function recordMap<const A extends readonly fc.Arbitrary<unknown>[], T>(
  fields: A,
  f: (...v: { -readonly [K in keyof A]: A[K] extends fc.Arbitrary<infer U> ? U : never }) => T,
): fc.Arbitrary<T> {
  return fc.tuple(...fields, fc.boolean()).map((v) => f(...(v as never as Parameters<typeof f>)));
}

export const branchArb = perCpl((cpl): fc.Arbitrary<Branch> =>
  recordMap(
    [address(cpl), address(cpl), fc.constantFrom(...BRANCH_KINDS), fc.boolean()],
    // A literal: V8 gives it one map, and the simulator reads branches hot.
    (from, to, kind, mispredict) => ({ from, to, kind, mispredict, cpl }),
  ),
);

/** fc.nat(n) for every level-1 count, built once: the level-2 draw is bounded by the level-1 value. */
const NAT_UPTO_16 = Array.from({ length: 17 }, (_, n) => fc.nat(n));

export const slotsArb = recordMap(
  [fc.nat(16), fc.nat(16), fc.nat(16), fc.nat(16)],
  (r, b, f, m) => [r, b, f, m] as const,
).chain(([retiring, badSpeculation, frontendBound, backendBound]) =>
  recordMap(
    [NAT_UPTO_16[retiring]!, NAT_UPTO_16[badSpeculation]!, NAT_UPTO_16[frontendBound]!, NAT_UPTO_16[backendBound]!],
    (heavyOperations, branchMispredicts, fetchLatency, memoryBound) => ({
      retiring,
      badSpeculation,
      frontendBound,
      backendBound,
      heavyOperations,
      branchMispredicts,
      fetchLatency,
      memoryBound,
    }),
  ),
);

/**
 * One work unit; every count is small so overflow needs a preset, as real tests do. Every unit
 * has every field, in one order, so the simulator's property loads stay monomorphic.
 */
const unitOf = perCpl((cpl): fc.Arbitrary<WorkUnit> =>
  recordMap(
    [
      fc.nat(8),
      fc.nat(4),
      fc.nat(8),
      fc.nat(3),
      fc.nat(2),
      fc.nat(2),
      fc.array(branchArb(cpl), { maxLength: 3 }),
      slotsArb,
      fc.nat(6),
    ],
    (cycles, refCycles, tscCycles, llcReferences, llcMisses, untakenBranches, branches, slots, extra) => ({
      cpl,
      instructions: branches.length + untakenBranches + extra,
      cycles,
      refCycles,
      tscCycles,
      llcReferences,
      llcMisses,
      untakenBranches,
      branches,
      slots,
    }),
  ),
);

export const unitArb: fc.Arbitrary<WorkUnit> = cplArb.chain(unitOf);

export const workArb: fc.Arbitrary<WorkUnit[]> = fc.array(unitArb, { maxLength: 12 });
