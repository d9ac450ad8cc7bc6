/**
 * Work units: what the simulated CPU executes. A unit is atomic; its events all happen at its CPL,
 * and a PMI for an overflow it caused arrives at the boundary after it (design.md "Timing";
 * decision D36). The unit is also the sampling interval for CMASK and EDGE (decision D4).
 */

import { isSignExtended } from './bits.js';
import { WorkError } from './errors.js';
import type { TopdownSlots } from './msr/topdown.js';
import { BRANCH_KINDS, type BranchKind } from './state.js';

export type { BranchKind, TopdownSlots };
export { BRANCH_KINDS };

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

const KINDS = new Set<string>(BRANCH_KINDS);
const COUNT_FIELDS = [
  'instructions',
  'cycles',
  'refCycles',
  'tscCycles',
  'llcReferences',
  'llcMisses',
  'untakenBranches',
] as const;
const SLOT_FIELDS = [
  'retiring',
  'badSpeculation',
  'frontendBound',
  'backendBound',
  'heavyOperations',
  'branchMispredicts',
  'fetchLatency',
  'memoryBound',
] as const;

function count(what: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new WorkError(`${what} must be a non-negative integer, got ${String(v)}`);
}

function cplOk(v: unknown): boolean {
  return v === 0 || v === 1 || v === 2 || v === 3;
}

/** Throws a WorkError naming the field for a unit that cannot happen. */
export function validateUnit(u: WorkUnit): void {
  if (!cplOk(u.cpl)) throw new WorkError(`unit cpl must be 0..3, got ${String(u.cpl)}`);
  for (const f of COUNT_FIELDS) count(f, u[f]);
  const brs = u.branches;
  if (brs !== undefined) {
    for (const b of brs) {
      if (!KINDS.has(b.kind))
        throw new WorkError(`unknown branch kind '${String(b.kind)}' (known: ${BRANCH_KINDS.join(', ')})`);
      if (b.cpl !== undefined && !cplOk(b.cpl))
        throw new WorkError(`branch cpl must be 0..3, got ${String(b.cpl)}`);
      if (typeof b.from !== 'bigint' || !isSignExtended(b.from, 47) || b.from < 0n || b.from >= 1n << 64n)
        throw new WorkError(`branch from ${String(b.from)} is not a canonical 48-bit address (u64 bigint)`);
      if (typeof b.to !== 'bigint' || !isSignExtended(b.to, 47) || b.to < 0n || b.to >= 1n << 64n)
        throw new WorkError(`branch to ${String(b.to)} is not a canonical 48-bit address (u64 bigint)`);
    }
    const brInsns = brs.length + (u.untakenBranches ?? 0);
    if (u.instructions !== undefined && u.instructions < brInsns)
      throw new WorkError(`unit retires ${brInsns} branches but only ${u.instructions} instructions`);
  }
  const t = u.slots;
  if (t !== undefined) {
    for (const f of SLOT_FIELDS) count(`slots.${f}`, t[f]);
    const within = (child: number | undefined, parent: number, name: string) => {
      if ((child ?? 0) > parent) throw new WorkError(`slots.${name} exceeds its level-1 parent`);
    };
    within(t.heavyOperations, t.retiring, 'heavyOperations');
    within(t.branchMispredicts, t.badSpeculation, 'branchMispredicts');
    within(t.fetchLatency, t.frontendBound, 'fetchLatency');
    within(t.memoryBound, t.backendBound, 'memoryBound');
  }
}
