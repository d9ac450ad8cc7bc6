import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { unitArb } from '../../scenarios/work.js';
import { MadeValidUnit, validateUnit, type WorkUnit } from '../../model/hw/work.js';

const SEEDS = { seed: 42, numRuns: 300 };

/** The first counterexample fast-check reports for a predicate on one unit, fully shrunk. */
function shrunk(pred: (u: WorkUnit) => boolean, seed: number): WorkUnit {
  const d = fc.check(fc.property(unitArb, pred), { seed, numRuns: 1000 });
  if (!d.failed) throw new Error(`no unit broke the predicate on seed ${seed}`);
  return d.counterexample![0];
}

describe('work units (unitArb)', () => {
  it('draws units the simulator accepts, with every field, branches at the unit CPL and slots within their parents', () => {
    fc.assert(
      fc.property(unitArb, (u) => {
        // A plain copy: the unit itself is a MadeValidUnit, which the simulator takes on this test's word.
        expect(u).toBeInstanceOf(MadeValidUnit);
        expect(() => validateUnit({ ...u })).not.toThrow();
        // The direct draw and the draws shrinking takes the unit apart into agree (work.ts builds units in both).
        expect(unitArb.canShrinkWithoutContext(u)).toBe(true);
        expect(Object.keys(u)).toEqual([
          'cpl',
          'instructions',
          'cycles',
          'refCycles',
          'tscCycles',
          'llcReferences',
          'llcMisses',
          'untakenBranches',
          'branches',
          'slots',
        ]);
        for (const b of u.branches!) expect(b.cpl).toBe(u.cpl);
        expect(u.instructions).toBeGreaterThanOrEqual(u.branches!.length + u.untakenBranches!);
        const s = u.slots!;
        expect(s.heavyOperations).toBeLessThanOrEqual(s.retiring);
        expect(s.memoryBound).toBeLessThanOrEqual(s.backendBound);
      }),
      SEEDS,
    );
  });

  it('reaches every CPL, up to three branches, and the bounds of each count', () => {
    const units = fc.sample(unitArb, { seed: 7, numRuns: 3000 });
    expect(new Set(units.map((u) => u.cpl))).toEqual(new Set([0, 1, 2, 3]));
    expect(Math.max(...units.map((u) => u.branches!.length))).toBe(3);
    expect(Math.max(...units.map((u) => u.cycles!))).toBe(8);
    expect(Math.max(...units.map((u) => u.slots!.retiring))).toBe(16);
    // CPL 3, 0, 1, 2 weighted 6:4:1:1.
    const user = units.filter((u) => u.cpl === 3).length / units.length;
    expect(user).toBeGreaterThan(0.45);
    expect(user).toBeLessThan(0.55);
  });

  it('the same seed draws the same units', () => {
    expect(fc.sample(unitArb, { seed: 3, numRuns: 50 })).toEqual(fc.sample(unitArb, { seed: 3, numRuns: 50 }));
  });

  it('shrinks a unit to the least that still fails, field by field, as fast-check shrinks integers', () => {
    for (const seed of [1, 2, 3]) {
      // Two taken branches at least: the rest goes to zero, the branches to the first address and kind.
      expect(shrunk((u) => u.branches!.length < 2, seed)).toEqual({
        cpl: 3,
        instructions: 2,
        cycles: 0,
        refCycles: 0,
        tscCycles: 0,
        llcReferences: 0,
        llcMisses: 0,
        untakenBranches: 0,
        branches: [0, 1].map(() => ({ from: 0x40_0000n, to: 0x40_0000n, kind: 'COND', mispredict: false, cpl: 3 })),
        slots: {
          retiring: 0,
          badSpeculation: 0,
          frontendBound: 0,
          backendBound: 0,
          heavyOperations: 0,
          branchMispredicts: 0,
          fetchLatency: 0,
          memoryBound: 0,
        },
      });
      // A kernel unit stays at CPL 0, its addresses in kernel text; a threshold shrinks to the threshold.
      const k = shrunk((u) => !(u.cpl === 0 && u.cycles! >= 5 && u.slots!.heavyOperations! >= 2), seed);
      expect([k.cpl, k.cycles, k.slots!.retiring, k.slots!.heavyOperations, k.instructions]).toEqual([0, 5, 2, 2, 0]);
    }
  });

  it('shrinks a unit given without its draws (a replayed or hand-written one), and refuses one it could not make', () => {
    const u = fc.sample(unitArb, { seed: 9, numRuns: 20 }).find((x) => x.cycles! > 2 && x.cpl === 3)!;
    expect(unitArb.canShrinkWithoutContext(u)).toBe(true);
    const first = [...unitArb.shrink(u, undefined).take(1)][0]!.value;
    expect(first).toEqual({ ...u, cycles: 0 });
    expect(unitArb.canShrinkWithoutContext({ ...u, cycles: 9 })).toBe(false);
    expect(unitArb.canShrinkWithoutContext({ ...u, instructions: 99 })).toBe(false);
    expect(unitArb.canShrinkWithoutContext({ cpl: 3 })).toBe(false);
    expect([...unitArb.shrink({ cpl: 3 }, undefined)]).toEqual([]);
  });
});
