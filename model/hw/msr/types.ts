import type { Access } from '../access.js';
import type { PmuState } from '../state.js';

/** One MSR as the guest sees it: its rule for RDMSR and WRMSR. Absent MSRs have no def (→ #GP). */
export interface MsrDef {
  readonly address: number;
  readonly name: string;
  readonly read: (s: PmuState) => Access;
  /** Legalizes and stores `v`; returns the stored value or the #GP rule. */
  readonly write: (s: PmuState, v: bigint) => Access;
}
