/** Work-unit arbitraries: small, CPL-tagged units with canonical branch addresses. */

import fc from 'fast-check';
import { BRANCH_KINDS } from '../model/hw/state.js';
import type { Drawn } from './draw.js';
import { type Branch, MadeValidUnit, type WorkUnit } from '../model/hw/work.js';

const USER_BASE = 0x40_0000n;
const KERNEL_BASE = 0xffff_ffff_8100_0000n;
/** Branch addresses per text, 16 bytes apart, from a small pool so branches repeat. */
const ADDRESSES = 0x1000;
const baseOf = (cpl: number): bigint => (cpl === 0 ? KERNEL_BASE : USER_BASE);
/** Every address a branch may take, per text, made once: a bigint built per branch was most of a unit's cost. */
const USER_TEXT = Array.from({ length: ADDRESSES }, (_, i) => USER_BASE + BigInt(i) * 16n);
const KERNEL_TEXT = Array.from({ length: ADDRESSES }, (_, i) => KERNEL_BASE + BigInt(i) * 16n);
const textOf = (cpl: number): readonly bigint[] => (cpl === 0 ? KERNEL_TEXT : USER_TEXT);

/**
 * One arbitrary per CPL, built on first use and reused: building an arbitrary for every value
 * (inside `chain`) costs about as much as drawing from it, and a prebuilt one draws the same values.
 */
function perCpl<T>(build: (cpl: number) => fc.Arbitrary<T>): (cpl: number) => fc.Arbitrary<T> {
  const built: fc.Arbitrary<T>[] = [];
  return (cpl) => (built[cpl] ??= build(cpl));
}

/** A canonical address in user or kernel text. */
export const address = perCpl((cpl): fc.Arbitrary<bigint> => fc.nat(ADDRESSES - 1).map((o) => textOf(cpl)[o]!));

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

/** A unit's small counts in draw order, each from 0 to its bound: overflow needs a preset, as real tests do. */
const COUNTS = [
  ['cycles', 8],
  ['refCycles', 4],
  ['tscCycles', 8],
  ['llcReferences', 3],
  ['llcMisses', 2],
  ['untakenBranches', 2],
] as const;
const MAX_BRANCHES = 3;
/** Instructions beyond the branches: retired, never recorded. */
const MAX_EXTRA = 6;
const SLOT_MAX = 16;

/** A unit taken apart into what its draws were: the shrinker works on these and puts a unit together again. */
interface UnitDraws {
  cpl: number;
  counts: number[];
  /** [from, to, kind, mispredict] per branch: address slots, an index into BRANCH_KINDS, 0 or 1. */
  branches: [number, number, number, number][];
  /** Level 1 (retiring, bad speculation, frontend, backend), then level 2, each at most its level-1 parent. */
  slots: number[];
  extra: number;
}

function unitOfDraws(d: UnitDraws): WorkUnit {
  const text = textOf(d.cpl);
  const cpl = d.cpl;
  const branches = d.branches.map(([f, t, k, m]): Branch => ({
    from: text[f]!,
    to: text[t]!,
    kind: BRANCH_KINDS[k]!,
    mispredict: m === 1,
    cpl,
  }));
  const [c, s] = [d.counts, d.slots];
  // Every field in one order (one map for V8: the simulator reads units hot), valid by construction (work.test.ts).
  return new MadeValidUnit(cpl, branches.length + c[5]! + d.extra, c[0]!, c[1]!, c[2]!, c[3]!, c[4]!, c[5]!, branches, {
    retiring: s[0]!,
    badSpeculation: s[1]!,
    frontendBound: s[2]!,
    backendBound: s[3]!,
    heavyOperations: s[4]!,
    branchMispredicts: s[5]!,
    fetchLatency: s[6]!,
    memoryBound: s[7]!,
  });
}

/** The draws behind a unit this arbitrary made, or undefined for any other value. */
function drawsOfUnit(u: unknown): UnitDraws | undefined {
  const x = u as WorkUnit;
  if (typeof x !== 'object' || x === null || !Number.isInteger(x.cpl) || x.cpl < 0 || x.cpl > 3) return undefined;
  const counts = COUNTS.map(([k, max]) => (Number.isInteger(x[k]) && x[k]! >= 0 && x[k]! <= max ? x[k]! : -1));
  const base = baseOf(x.cpl);
  const slot = (a: unknown): number => {
    const o = typeof a === 'bigint' ? a - base : -1n;
    return o >= 0n && o < BigInt(ADDRESSES) * 16n && o % 16n === 0n ? Number(o / 16n) : -1;
  };
  if (!Array.isArray(x.branches) || x.branches.length > MAX_BRANCHES) return undefined;
  const branches = (x.branches as readonly Branch[]).map((b): [number, number, number, number] => [
    slot(b.from),
    slot(b.to),
    BRANCH_KINDS.indexOf(b.kind),
    b.cpl === x.cpl && typeof b.mispredict === 'boolean' ? Number(b.mispredict) : -1,
  ]);
  const t = x.slots;
  const slots =
    t === undefined
      ? []
      : [
          t.retiring,
          t.badSpeculation,
          t.frontendBound,
          t.backendBound,
          t.heavyOperations ?? -1,
          t.branchMispredicts ?? -1,
          t.fetchLatency ?? -1,
          t.memoryBound ?? -1,
        ];
  const extra = (x.instructions ?? -1) - branches.length - (x.untakenBranches ?? 0);
  const ok =
    counts.every((n) => n >= 0) &&
    branches.every((b) => b.every((n) => n >= 0)) &&
    slots.length === 8 &&
    slots.every((n, i) => Number.isInteger(n) && n >= 0 && n <= (i < 4 ? SLOT_MAX : slots[i - 4]!)) &&
    extra >= 0 &&
    extra <= MAX_EXTRA;
  return ok ? { cpl: x.cpl, counts, branches, slots, extra } : undefined;
}

/**
 * 0..max as fast-check's `fc.nat(max)` draws it: under a bias factor b, one draw in b comes from near 0 (two chances in
 * three) or near max, log2(max) wide, so that empty and saturated units (every slot in one category) come often.
 */
function nat(mrng: fc.Random, max: number, bias: number | undefined): number {
  if (bias === undefined || max === 0 || mrng.nextInt(1, bias) !== 1) return mrng.nextInt(0, max);
  const gap = Math.floor(Math.log(max) / Math.log(2));
  return mrng.nextInt(-2, 0) < 0 ? mrng.nextInt(0, gap) : mrng.nextInt(max - gap, max);
}

/** fast-check's integer shrink toward 0: 0 first, then halfway, and so on up to n − 1. */
function* towardZero(n: number): Generator<number> {
  for (let gap = n; gap > 0; gap = Math.floor(gap / 2)) yield n - gap;
}

/** Simpler draws, one change each, in draw order: the CPL, each count, each branch out then each field, the slots. */
function* shrinkDraws(d: UnitDraws): Generator<UnitDraws> {
  if (d.cpl !== 3) yield { ...d, cpl: 3 };
  for (let i = 0; i < d.counts.length; i++)
    for (const n of towardZero(d.counts[i]!)) yield { ...d, counts: d.counts.with(i, n) };
  for (let i = 0; i < d.branches.length; i++) yield { ...d, branches: d.branches.toSpliced(i, 1) };
  for (let i = 0; i < d.branches.length; i++)
    for (let f = 0; f < 4; f++)
      for (const n of towardZero(d.branches[i]![f]!))
        yield { ...d, branches: d.branches.with(i, d.branches[i]!.with(f, n) as [number, number, number, number]) };
  for (let i = 0; i < 8; i++)
    for (const n of towardZero(d.slots[i]!)) {
      // A level-1 share shrinks its level-2 part with it.
      const slots = d.slots.with(i, n);
      if (i < 4) slots[i + 4] = Math.min(slots[i + 4]!, n);
      yield { ...d, slots };
    }
  for (const n of towardZero(d.extra)) yield { ...d, extra: n };
}

/**
 * One work unit, drawn straight from the random source: a CPL (3, 0, then 1 or 2, weighted 6:4:1:1), the counts, up to
 * three taken branches between addresses of the CPL's text, a two-level slot breakdown, instructions beyond the
 * branches. As a tuple of fast-check arbitraries a unit cost two dozen wrapped draws and their arrays, the largest
 * share of generation; this draws the same shape without them. Shrinking works from the unit itself, one field at a
 * time toward zero as fast-check's integers do, so a stored or replayed unit shrinks the same way.
 */
class WorkUnitArbitrary extends fc.Arbitrary<WorkUnit> {
  generate(mrng: fc.Random, bias: number | undefined): fc.Value<WorkUnit> {
    return new fc.Value(this.draw(mrng, bias), undefined);
  }
  /** The draws unitOfDraws takes apart, in the same order, with the unit built as they come (no arrays between). */
  draw(mrng: fc.Random, bias: number | undefined): WorkUnit {
    const r = mrng.nextInt(0, 11);
    const cpl = r < 6 ? 3 : r < 10 ? 0 : r - 9;
    const cycles = nat(mrng, COUNTS[0][1], bias);
    const refCycles = nat(mrng, COUNTS[1][1], bias);
    const tscCycles = nat(mrng, COUNTS[2][1], bias);
    const llcReferences = nat(mrng, COUNTS[3][1], bias);
    const llcMisses = nat(mrng, COUNTS[4][1], bias);
    const untakenBranches = nat(mrng, COUNTS[5][1], bias);
    const nb = nat(mrng, MAX_BRANCHES, bias);
    const text = textOf(cpl);
    const branches: Branch[] = [];
    for (let i = 0; i < nb; i++) {
      const from = text[nat(mrng, ADDRESSES - 1, bias)]!;
      const to = text[nat(mrng, ADDRESSES - 1, bias)]!;
      const kind = BRANCH_KINDS[nat(mrng, BRANCH_KINDS.length - 1, bias)]!;
      branches.push({ from, to, kind, mispredict: mrng.nextInt(0, 1) === 1, cpl });
    }
    const retiring = nat(mrng, SLOT_MAX, bias);
    const badSpeculation = nat(mrng, SLOT_MAX, bias);
    const frontendBound = nat(mrng, SLOT_MAX, bias);
    const backendBound = nat(mrng, SLOT_MAX, bias);
    const slots = {
      retiring,
      badSpeculation,
      frontendBound,
      backendBound,
      heavyOperations: nat(mrng, retiring, bias),
      branchMispredicts: nat(mrng, badSpeculation, bias),
      fetchLatency: nat(mrng, frontendBound, bias),
      memoryBound: nat(mrng, backendBound, bias),
    };
    const extra = nat(mrng, MAX_EXTRA, bias);
    return new MadeValidUnit(
      cpl,
      nb + untakenBranches + extra,
      cycles,
      refCycles,
      tscCycles,
      llcReferences,
      llcMisses,
      untakenBranches,
      branches,
      slots,
    );
  }
  canShrinkWithoutContext(value: unknown): value is WorkUnit {
    return drawsOfUnit(value) !== undefined;
  }
  shrink(value: WorkUnit): fc.Stream<fc.Value<WorkUnit>> {
    const d = drawsOfUnit(value);
    return d === undefined
      ? fc.Stream.nil()
      : fc.stream(shrinkDraws(d)).map((x) => new fc.Value(unitOfDraws(x), undefined));
  }
}

const units = new WorkUnitArbitrary();
export const unitArb: fc.Arbitrary<WorkUnit> = units;
/** unitArb with its fast draw (draw.ts), for fc.commands' commands. */
export const unitDrawn: Drawn<WorkUnit> = { arb: units, draw: (r) => units.draw(r, undefined) };

export const workArb: fc.Arbitrary<WorkUnit[]> = fc.array(unitArb, { maxLength: 12 });
