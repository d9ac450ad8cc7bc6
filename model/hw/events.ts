/**
 * Which occurrences of a work unit an event select counts (pmu-semantics.md §1.4, §1.5).
 * Availability in CPUID.0AH:EBX does not gate counting (decision D33); encodings outside the
 * architectural table count nothing (decision D29).
 */

/** Occurrence sources, indices into the per-unit occurrence vector. */
export const SRC = {
  NONE: 0,
  INSTRUCTIONS: 1,
  CYCLES: 2,
  REF_CYCLES: 3,
  TSC_CYCLES: 4,
  LLC_REFERENCES: 5,
  LLC_MISSES: 6,
  BRANCHES: 7,
  BRANCH_MISSES: 8,
  SLOTS: 9,
  TD_BACKEND: 10,
  TD_BAD_SPEC: 11,
  TD_FRONTEND: 12,
  TD_RETIRING: 13,
  LBR_INSERTS: 14,
} as const;
export const N_SRC = 15;

/** Architectural events by `(umask << 8) | event`, as KVM's tests write them. */
const ARCH: ReadonlyMap<number, number> = new Map([
  [0x003c, SRC.CYCLES],
  [0x00c0, SRC.INSTRUCTIONS],
  [0x013c, SRC.REF_CYCLES],
  [0x4f2e, SRC.LLC_REFERENCES],
  [0x412e, SRC.LLC_MISSES],
  [0x00c4, SRC.BRANCHES],
  [0x00c5, SRC.BRANCH_MISSES],
  [0x01a4, SRC.SLOTS],
  [0x02a4, SRC.TD_BACKEND],
  [0x0073, SRC.TD_BAD_SPEC],
  [0x019c, SRC.TD_FRONTEND],
  [0x02c2, SRC.TD_RETIRING],
  [0x01e4, SRC.LBR_INSERTS],
]);

/** The source a GP counter's EVTSEL selects. */
export function gpSource(evtsel: bigint): number {
  return ARCH.get(Number(evtsel & 0xffffn)) ?? SRC.NONE;
}

/** Fixed counters 0..3: instructions, core cycles, TSC-rate reference cycles, slots (§1.5). */
const FIXED_SRC = [SRC.INSTRUCTIONS, SRC.CYCLES, SRC.TSC_CYCLES, SRC.SLOTS];

export function fixedSource(i: number): number {
  return FIXED_SRC[i] ?? SRC.NONE;
}

/** The CPUID.0AH:EBX bit (architectural event index) of each source, -1 for none (D33). */
const EBX_BIT: readonly number[] = (() => {
  const order = [
    SRC.CYCLES,
    SRC.INSTRUCTIONS,
    SRC.REF_CYCLES,
    SRC.LLC_REFERENCES,
    SRC.LLC_MISSES,
    SRC.BRANCHES,
    SRC.BRANCH_MISSES,
    SRC.SLOTS,
    SRC.TD_BACKEND,
    SRC.TD_BAD_SPEC,
    SRC.TD_FRONTEND,
    SRC.TD_RETIRING,
    SRC.LBR_INSERTS,
  ];
  const bits = new Array<number>(N_SRC).fill(-1);
  order.forEach((src, i) => (bits[src] = i));
  return bits;
})();

export function archEventIndex(src: number): number {
  return EBX_BIT[src] ?? -1;
}
