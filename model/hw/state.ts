/**
 * The architectural state of one logical CPU's PMU (pmu-semantics.md §4.1). Plain mutable
 * storage: the MSR modules own the rules, `Cpu` owns the dynamics.
 */

import type { Profile } from './profile.js';

/** Where a branch goes, for LBR filtering and Arch LBR BR_TYPE (pmu-semantics.md §2.13, §3.4). */
export const BRANCH_KINDS = [
  'COND',
  'NEAR_REL_JMP',
  'NEAR_IND_JMP',
  'NEAR_REL_CALL',
  'NEAR_IND_CALL',
  'NEAR_RET',
  'FAR',
] as const;
export type BranchKind = (typeof BRANCH_KINDS)[number];

/** Hidden topdown accumulators behind PERF_METRICS, in 1/255-slot units (decision D12). */
export interface TopdownAcc {
  /** Retiring, BadSpec, FeBound, BeBound, Heavy, BrMispredict, FetchLat, MemBound. */
  readonly acc: bigint[];
  /** Total L1 slots (×255) the fractions are taken over; 0 means "read the written value". */
  total: bigint;
  /** The value last written (or rebased to), read back while `total` is 0. */
  written: bigint;
}

export class PmuState {
  readonly profile: Profile;
  /** GP counters, stored masked to gpWidth; IA32_PMCi and IA32_A_PMCi alias them. */
  readonly pmc: bigint[];
  readonly evtsel: bigint[];
  /** Fixed counters indexed by counter number; absent ones stay 0. */
  readonly fixed: bigint[];
  fixedCtrl = 0n;
  globalCtrl: bigint;
  globalStatus = 0n;
  debugctl = 0n;
  /** x2APIC LVT Performance Monitoring Counters register (MSR 0x834); masked at reset. */
  lvtpc = 0x1_0000n;
  readonly topdown: TopdownAcc = { acc: [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n], total: 0n, written: 0n };

  // Legacy LBR (model-specific MSRs).
  lbrSelect = 0n;
  lbrTos = 0;
  /** Has software written TOS since RESET? Until then TOS and the records sit where RESET left them (D40). */
  lbrTosWritten = false;
  readonly lbrFrom: bigint[];
  readonly lbrTo: bigint[];
  readonly lbrInfo: bigint[];

  // Arch LBR.
  lbrCtl = 0n;
  lbrDepth: number;
  /**
   * Arch LBR records as a ring: architectural entry k (0 = newest) is stored at index
   * (alHead + k) mod lbrDepth, so recording a branch moves one index, not every record.
   */
  readonly alFrom: bigint[];
  readonly alTo: bigint[];
  readonly alInfo: bigint[];
  alHead = 0;
  /** LER fields of the Arch LBR XSAVE component; not MSRs, never recorded (D27). */
  lerFrom = 0n;
  lerTo = 0n;
  lerInfo = 0n;

  /** Core cycles since the last LBR record, for LBR cycle counts (decision D23). */
  cyclesSinceLbr = 0;

  /** Per-GP-counter EDGE detector: did the condition hold in the previous unit (decision D5). */
  readonly edgePrev: boolean[];

  // Environment that RDPMC reads.
  cr4Pce = false;
  protectedMode = true;

  /** Bumped by every write that can change which counters count; `Cpu` caches on it. */
  configEpoch = 0;

  constructor(profile: Profile) {
    this.profile = profile;
    this.pmc = new Array<bigint>(profile.nGP).fill(0n);
    this.evtsel = new Array<bigint>(profile.nGP).fill(0n);
    this.edgePrev = new Array<boolean>(profile.nGP).fill(false);
    this.fixed = new Array<bigint>(7).fill(0n);
    // SDM post-RESET value: every GP enable set (pmu-semantics.md §2.5).
    this.globalCtrl = profile.version >= 2 ? (1n << BigInt(profile.nGP)) - 1n : 0n;
    const ld = profile.legacyLbr?.depth ?? 0;
    this.lbrFrom = new Array<bigint>(ld).fill(0n);
    this.lbrTo = new Array<bigint>(ld).fill(0n);
    this.lbrInfo = new Array<bigint>(ld).fill(0n);
    const ad = profile.archLbr?.maxDepth ?? 0;
    this.lbrDepth = ad; // D25: reset to the maximum depth
    this.alFrom = new Array<bigint>(ad).fill(0n);
    this.alTo = new Array<bigint>(ad).fill(0n);
    this.alInfo = new Array<bigint>(ad).fill(0n);
  }
}
