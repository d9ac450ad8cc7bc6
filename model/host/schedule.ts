/**
 * Counter constraints and assignment, as arch/x86/events/core.c and intel/core.c compute them:
 * which counters an event may use (the FIXED_EVENT_CONSTRAINT table), and x86_schedule_events'
 * fast path (every event keeps its previous counter) and slow path (perf_assign_events: fewest
 * choices first, fixed counters before GP ones).
 */

import { isSet, setBits, U64_MASK } from '../hw/bits.js';
import { fixedExists, type Profile } from '../hw/profile.js';
import { X86_RAW_EVENT_MASK, HSW_IN_TX, HSW_IN_TX_CHECKPOINTED } from '../hw/msr/counters.js';

/** INTEL_PMC_IDX_FIXED: fixed counter j is index 32 + j in every counter bitmap. */
export const FIXED_BASE = 32;
/**
 * INTEL_PMC_IDX_FIXED_VLBR: the pseudo counter KVM's guest LBR event takes, GLOBAL_STATUS's LBR_FRZ bit (58, "Fixed26"
 * of umask 0x1b), which handle_pmi_common masks before its loop so that it is never taken for an overflow.
 */
export const IDX_VLBR = FIXED_BASE + 26;
/** INTEL_FIXED_VLBR_EVENT: the config KVM gives the guest LBR event. */
export const VLBR_CONFIG = 0x1b00n;
/** INTEL_PMC_IDX_FIXED_SLOTS: fixed counter 3, which counts the topdown slots. */
export const IDX_FIXED_SLOTS = FIXED_BASE + 3;
/** INTEL_PMC_IDX_METRIC_BASE: topdown metric i takes the pseudo index 48 + i (GLOBAL_CTRL bit 48 for all). */
export const IDX_METRIC_BASE = 48;
/** INTEL_TD_METRIC_RETIRING: metric i of PERF_METRICS is the pseudo-event 0x8000 + 0x100·i. */
export const INTEL_TD_METRIC_RETIRING = 0x8000n;
/** INTEL_TD_SLOTS: Linux's pseudo-encoding of the slots event, fixed counter 3 only. */
export const INTEL_TD_SLOTS = 0x0400n;

/** num_topdown_events: the PERF_METRICS bytes perf exposes as metric events (model-specific; 0 without PERF_METRICS). */
export function num_topdown_events(p: Profile): number {
  if (!p.perfMetrics) return 0;
  return p.topdownL2 ? 8 : 4;
}

/** is_metric_event: the topdown metric pseudo-event's metric number, or -1. */
export function metricOf(config: bigint): number {
  const m = Number((config - INTEL_TD_METRIC_RETIRING) >> 8n);
  return config >= INTEL_TD_METRIC_RETIRING && (config & 0xffn) === 0n && m < 8 ? m : -1;
}

/** is_topdown_idx: fixed counter 3 or a metric index. */
export function is_topdown_idx(idx: number): boolean {
  return idx === IDX_FIXED_SLOTS || (idx >= IDX_METRIC_BASE && idx < IDX_METRIC_BASE + 8);
}

/** The raw config bits perf keeps on this part (HSW_IN_TX/IN_TX_CP only where TSX exists). */
export function rawEventMask(p: Profile): bigint {
  return p.tsx ? X86_RAW_EVENT_MASK | HSW_IN_TX | HSW_IN_TX_CHECKPOINTED : X86_RAW_EVENT_MASK;
}

/** A fixed counter that counts `config` natively, and whether a GP counter may count it instead. */
export interface FixedMapping {
  readonly idx: number;
  readonly gpFallback: boolean;
}

/**
 * FIXED_EVENT_CONSTRAINT entries: the architectural encodings with a GP equivalent, and Linux's
 * pseudo-encodings (event 0x00, umask j+1) that only fixed counter j can count (decision H8).
 */
export function fixedMapping(config: bigint): FixedMapping | null {
  switch (config) {
    case 0x00c0n:
      return { idx: 0, gpFallback: true };
    case 0x003cn:
      return { idx: 1, gpFallback: true };
    case 0x01a4n:
      return { idx: 3, gpFallback: true };
    default:
      break;
  }
  const umask = Number((config >> 8n) & 0xffn);
  if ((config & ~0xff00n) === 0n && umask >= 1 && umask <= 7) return { idx: umask - 1, gpFallback: false };
  return null;
}

/** struct event_constraint: the counters an event may use, as a bitmap, and how many. */
export interface Constraint {
  readonly mask: bigint;
  readonly weight: number;
}

function constraintOf(mask: bigint): Constraint {
  let w = 0;
  for (let m = mask; m !== 0n; m &= m - 1n) w++;
  return { mask, weight: w };
}

export const EMPTY_CONSTRAINT: Constraint = { mask: 0n, weight: 0 };

/**
 * intel_get_event_constraints for one event: `config` is already masked to the raw event bits.
 * Returns null when no counter of this part can ever count it (a fixed-only pseudo-encoding
 * whose fixed counter does not exist).
 */
export function intel_get_event_constraints(p: Profile, config: bigint, vlbr: boolean): Constraint | null {
  if (vlbr) return constraintOf(1n << BigInt(IDX_VLBR)); // intel_vlbr_constraints
  const metric = p.perfMetrics ? metricOf(config) : -1; // without PERF_METRICS, 0x8000 is a raw GP event
  if (metric >= 0) return metric < num_topdown_events(p) ? constraintOf(1n << BigInt(IDX_METRIC_BASE + metric)) : null;
  const gpAll = (1n << BigInt(p.nGP)) - 1n;
  if ((config & HSW_IN_TX_CHECKPOINTED) !== 0n) return p.nGP > 2 ? constraintOf(1n << 2n) : null; // counter2_constraint
  const f = fixedMapping(config);
  if (f === null) return p.nGP > 0 ? constraintOf(gpAll) : null;
  const fixedBit = p.version >= 2 && fixedExists(p, f.idx) ? 1n << BigInt(FIXED_BASE + f.idx) : 0n;
  const mask = fixedBit | (f.gpFallback ? gpAll : 0n);
  return mask === 0n ? null : constraintOf(mask);
}

/** What x86_schedule_events needs of one collected event. */
export interface Schedulable {
  readonly constraint: Constraint;
  /** hw.idx from the event's last placement, or -1: the fast path's hint. */
  readonly lastIdx: number;
}

/** __perf_sched_find_counter: the first free fixed counter, else the lowest free GP counter. */
function findCounter(c: Constraint, used: Set<number>): number {
  for (const i of tryOrder(c.mask)) if (!used.has(i)) return i;
  return -1;
}

/** The counters a mask allows in findCounter's order (fixed, then GP, each lowest first), per mask made once. */
const ORDERS = new Map<bigint, readonly number[]>();
function tryOrder(mask: bigint): readonly number[] {
  let o = ORDERS.get(mask);
  if (o === undefined) {
    const b = setBits(mask & U64_MASK);
    ORDERS.set(mask, (o = [...b.filter((i) => i >= FIXED_BASE), ...b.filter((i) => i < FIXED_BASE)]));
  }
  return o;
}

/**
 * x86_schedule_events: a counter index per event (in the order given, which is the order perf
 * collected them), or null when the set does not fit.
 */
export function x86_schedule_events(events: readonly Schedulable[]): number[] | null {
  const n = events.length;
  const assign: number[] = new Array<number>(n).fill(-1);
  const used = new Set<number>();
  // Fast path: every event keeps the counter it had, if its constraint still allows it.
  let i = 0;
  for (; i < n; i++) {
    const e = events[i]!;
    if (e.lastIdx < 0 || !isSet(e.constraint.mask, e.lastIdx) || used.has(e.lastIdx)) break;
    used.add(e.lastIdx);
    assign[i] = e.lastIdx;
  }
  if (i === n) return assign;
  // Slow path (perf_assign_events): by increasing weight, each weight in collection order.
  used.clear();
  assign.fill(-1);
  const weights = [...new Set(events.map((e) => e.constraint.weight))].sort((a, b) => a - b);
  for (const w of weights) {
    for (let k = 0; k < n; k++) {
      const c = events[k]!.constraint;
      if (c.weight !== w) continue;
      const idx = findCounter(c, used);
      if (idx < 0) return null;
      used.add(idx);
      assign[k] = idx;
    }
  }
  return assign;
}
