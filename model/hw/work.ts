/**
 * Work units: what the simulated CPU executes. A unit is atomic; its events all happen at its CPL,
 * and a PMI for an overflow it caused arrives at the boundary after it (design.md "Timing";
 * decision D36). The unit is also the sampling interval for CMASK and EDGE (decision D4).
 */

import { WorkError } from './errors.js';
import type { TopdownSlots } from './msr/topdown.js';
import { BRANCH_KINDS, type BranchKind } from './state.js';

/** A taken branch as it retires, for counting and for the LBRs. */
export interface Branch {
  readonly from: bigint;
  readonly to: bigint;
  readonly kind: BranchKind;
  /** CPL the branch is recorded at (decision D22); defaults to the unit's CPL. */
  readonly cpl?: number;
  readonly mispredict?: boolean;
}

export interface WorkUnit {
  /** Current privilege level, 0..3. */
  readonly cpl: number;
  /** Instructions retired, branches included. */
  readonly instructions?: number;
  /** Unhalted core cycles (event 0x3C/0x00, IA32_FIXED_CTR1). */
  readonly cycles?: number;
  /** Unhalted reference cycles at the bus/crystal rate (event 0x3C/0x01). */
  readonly refCycles?: number;
  /** Reference cycles at the TSC rate (IA32_FIXED_CTR2): not the same clock (§1.4). */
  readonly tscCycles?: number;
  readonly llcReferences?: number;
  readonly llcMisses?: number;
  /** Conditional branches retired not taken: counted by event 0xC4, never recorded. */
  readonly untakenBranches?: number;
  /** Taken branches, oldest first. */
  readonly branches?: readonly Branch[];
  /** Topdown slot breakdown (SLOTS and PERF_METRICS). */
  readonly slots?: TopdownSlots;
}

const KINDS: Readonly<Record<string, true>> = Object.fromEntries(BRANCH_KINDS.map((k) => [k, true]));
const CANON_LOW_END = 1n << 47n;
const CANON_HIGH_START = 0xffff_8000_0000_0000n;
const U64_MAX = (1n << 64n) - 1n;

/** A u64 that is a canonical 48-bit address: bits 63:47 all equal. */
function canonical(v: unknown): boolean {
  return typeof v === 'bigint' && ((v >= 0n && v < CANON_LOW_END) || (v >= CANON_HIGH_START && v <= U64_MAX));
}

const okCount = (v: number | undefined) => v === undefined || (Number.isSafeInteger(v) && v >= 0);
const okCpl = (v: unknown) => v === 0 || v === 1 || v === 2 || v === 3;

function badCount(what: string, v: unknown): never {
  throw new WorkError(`${what} must be a non-negative integer, got ${String(v)}`);
}

/**
 * Units already validated. Units are immutable values that the oracle and every simulated CPU
 * execute in turn, so each is checked once.
 */
const validated = new WeakSet<WorkUnit>();

/** One instruction retired at each CPL, as constant units (validated once): an instruction's retirement. */
export const RETIRED_AT_CPL: readonly WorkUnit[] = [0, 1, 2, 3].map((cpl) => Object.freeze({ cpl, instructions: 1 }));

/** The unit validated last: the design's CPU and bare metal step each unit in turn, so most lookups end here. */
let last: WorkUnit | null = null;

/**
 * A unit whose maker guarantees it can happen, with every field: the simulator skips its check. Only a generator whose
 * every unit a test holds to validateUnit (scenarios/work.ts) makes them; the WeakSet lookup and the check of each
 * generated unit cost a twentieth of a conformance program. It prints and serialises as the plain unit of its fields.
 */
export class MadeValidUnit implements WorkUnit {
  constructor(
    readonly cpl: number,
    readonly instructions: number,
    readonly cycles: number,
    readonly refCycles: number,
    readonly tscCycles: number,
    readonly llcReferences: number,
    readonly llcMisses: number,
    readonly untakenBranches: number,
    readonly branches: readonly Branch[],
    readonly slots: TopdownSlots,
  ) {}
}

/** Throws a WorkError naming the field for a unit that cannot happen. */
export function validateUnit(u: WorkUnit): void {
  if (u === last || u instanceof MadeValidUnit) return;
  if (!validated.has(u)) {
    checkUnit(u);
    validated.add(u);
  }
  last = u;
}

function checkUnit(u: WorkUnit): void {
  if (!okCpl(u.cpl)) throw new WorkError(`unit cpl must be 0..3, got ${String(u.cpl)}`);
  if (!okCount(u.instructions)) badCount('instructions', u.instructions);
  if (!okCount(u.cycles)) badCount('cycles', u.cycles);
  if (!okCount(u.refCycles)) badCount('refCycles', u.refCycles);
  if (!okCount(u.tscCycles)) badCount('tscCycles', u.tscCycles);
  if (!okCount(u.llcReferences)) badCount('llcReferences', u.llcReferences);
  if (!okCount(u.llcMisses)) badCount('llcMisses', u.llcMisses);
  if (!okCount(u.untakenBranches)) badCount('untakenBranches', u.untakenBranches);
  const brs = u.branches;
  if (brs !== undefined) {
    for (const b of brs) {
      if (KINDS[b.kind] !== true)
        throw new WorkError(`unknown branch kind '${String(b.kind)}' (known: ${BRANCH_KINDS.join(', ')})`);
      if (b.cpl !== undefined && !okCpl(b.cpl)) throw new WorkError(`branch cpl must be 0..3, got ${String(b.cpl)}`);
      if (!canonical(b.from))
        throw new WorkError(`branch from ${String(b.from)} is not a canonical 48-bit address (u64 bigint)`);
      if (!canonical(b.to))
        throw new WorkError(`branch to ${String(b.to)} is not a canonical 48-bit address (u64 bigint)`);
    }
    const brInsns = brs.length + (u.untakenBranches ?? 0);
    if (u.instructions !== undefined && u.instructions < brInsns)
      throw new WorkError(`unit retires ${brInsns} branches but only ${u.instructions} instructions`);
  }
  const t = u.slots;
  if (t !== undefined) {
    if (!okCount(t.retiring)) badCount('slots.retiring', t.retiring);
    if (!okCount(t.badSpeculation)) badCount('slots.badSpeculation', t.badSpeculation);
    if (!okCount(t.frontendBound)) badCount('slots.frontendBound', t.frontendBound);
    if (!okCount(t.backendBound)) badCount('slots.backendBound', t.backendBound);
    if (!okCount(t.heavyOperations)) badCount('slots.heavyOperations', t.heavyOperations);
    if (!okCount(t.branchMispredicts)) badCount('slots.branchMispredicts', t.branchMispredicts);
    if (!okCount(t.fetchLatency)) badCount('slots.fetchLatency', t.fetchLatency);
    if (!okCount(t.memoryBound)) badCount('slots.memoryBound', t.memoryBound);
    if ((t.heavyOperations ?? 0) > t.retiring) throw new WorkError('slots.heavyOperations exceeds its level-1 parent');
    if ((t.branchMispredicts ?? 0) > t.badSpeculation)
      throw new WorkError('slots.branchMispredicts exceeds its level-1 parent');
    if ((t.fetchLatency ?? 0) > t.frontendBound) throw new WorkError('slots.fetchLatency exceeds its level-1 parent');
    if ((t.memoryBound ?? 0) > t.backendBound) throw new WorkError('slots.memoryBound exceeds its level-1 parent');
  }
}
