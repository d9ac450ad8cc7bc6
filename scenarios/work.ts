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

export const branchArb = perCpl((cpl): fc.Arbitrary<Branch> =>
  fc
    .record({
      from: address(cpl),
      to: address(cpl),
      kind: fc.constantFrom(...BRANCH_KINDS),
      mispredict: fc.boolean(),
    })
    // A literal, not a spread plus cpl: V8 gives that form a slow map, and the simulator reads branches hot.
    .map((b) => ({ from: b.from, to: b.to, kind: b.kind, mispredict: b.mispredict, cpl })),
);

export const slotsArb = fc
  .record({
    retiring: fc.nat(16),
    badSpeculation: fc.nat(16),
    frontendBound: fc.nat(16),
    backendBound: fc.nat(16),
  })
  .chain((l1) =>
    fc
      .record({
        heavyOperations: fc.nat(l1.retiring),
        branchMispredicts: fc.nat(l1.badSpeculation),
        fetchLatency: fc.nat(l1.frontendBound),
        memoryBound: fc.nat(l1.backendBound),
      })
      .map((l2) => ({
        retiring: l1.retiring,
        badSpeculation: l1.badSpeculation,
        frontendBound: l1.frontendBound,
        backendBound: l1.backendBound,
        heavyOperations: l2.heavyOperations,
        branchMispredicts: l2.branchMispredicts,
        fetchLatency: l2.fetchLatency,
        memoryBound: l2.memoryBound,
      })),
  );

/**
 * One work unit; every count is small so overflow needs a preset, as real tests do. Every unit
 * has every field, in one order, so the simulator's property loads stay monomorphic.
 */
const unitOf = perCpl((cpl): fc.Arbitrary<WorkUnit> =>
  fc
    .record({
      cycles: fc.nat(8),
      refCycles: fc.nat(4),
      tscCycles: fc.nat(8),
      llcReferences: fc.nat(3),
      llcMisses: fc.nat(2),
      untakenBranches: fc.nat(2),
      branches: fc.array(branchArb(cpl), { maxLength: 3 }),
      slots: slotsArb,
      extra: fc.nat(6),
    })
    .map((r) => ({
      cpl,
      instructions: r.branches.length + r.untakenBranches + r.extra,
      cycles: r.cycles,
      refCycles: r.refCycles,
      tscCycles: r.tscCycles,
      llcReferences: r.llcReferences,
      llcMisses: r.llcMisses,
      untakenBranches: r.untakenBranches,
      branches: r.branches,
      slots: r.slots,
    })),
);

export const unitArb: fc.Arbitrary<WorkUnit> = cplArb.chain(unitOf);

export const workArb: fc.Arbitrary<WorkUnit[]> = fc.array(unitArb, { maxLength: 12 });
