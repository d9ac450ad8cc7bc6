/**
 * Known divergences of seed 003's proposal (model/kvm/series/hw_assigned.ts: Like Xu, "Intel Virtual
 * PMU Optimization" v2, 2019) from bare metal, each with the mechanism in the posted patches that
 * causes it ("patch N/5" of the series). They come on top of what its base, the perf-based vPMU,
 * already declares. A program whose first divergence matches none is a finding against the series.
 */

import { isGp, type Observation } from '../../scenarios/observation.js';
import type { DivergenceContext, KnownDivergence } from './types.js';
import { EMULATED_EXPECTATIONS, hostCompeted } from './emulated.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from './emulated_invisibility.js';
import { ANYTHREAD_RESERVED, counterOf, counterOfMsr, isCounter, lbrFreezeEffect, lostOnly } from './common.js';
import { MAX_GP } from '../../model/hw/profile.js';
import { fixedCounterAllowed, gpEventAllowed } from '../../scenarios/oracle_filter.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../model/hw/msr/capabilities.js';
import type { KvmPmuEventFilter } from '../../model/kvm/types.js';
import { lowMask } from '../../model/hw/bits.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  X86_RAW_EVENT_MASK,
  MSR_IA32_PERFCTR0,
  MSR_P6_EVNTSEL0,
} from '../../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL, MSR_CORE_PERF_GLOBAL_STATUS } from '../../model/hw/msr/global.js';
import { intel_get_event_constraints, type Constraint, x86_schedule_events } from '../../model/host/schedule.js';
import { HW_LIFE_COUNT_MAX } from '../../model/kvm/series/hw_assigned.js';

const isEvtsel = (m: number | null) => m !== null && m >= MSR_P6_EVNTSEL0 && m < MSR_P6_EVNTSEL0 + MAX_GP;

/** The RDPMC index types the 5.0 decoder reads as flags: bit 31 (fast) and bit 30 (fixed), nothing in 29:16. */
const flagsOnlyType = (ecx: number) => ((ecx >>> 16) & 0x3fff) === 0 && (ecx & 0x8000_0000) !== 0;

/** What a counter's count decides: a read of it or of GLOBAL_STATUS, RDPMC, a run's PMIs, an instruction's PMIs. */
/** What a count decides, a VMM's KVM_GET_MSRS of a counter among them: the declarations that use it opt in (vmm). */
const countEffect = (o: Observation) =>
  o.kind === 'rdpmc' ||
  o.kind === 'run' ||
  o.kind === 'pmi' ||
  (o.kind === 'rdmsr' && o.target !== null && (isCounter(o.target) || o.target === MSR_CORE_PERF_GLOBAL_STATUS)) ||
  (o.vmm?.op === 'get-msr' && isCounter(o.vmm.msr));

/** The counter a read names: a guest's RDMSR or RDPMC, or the VMM's KVM_GET_MSRS; null for anything else. */
const readCounter = (o: Observation) => (o.vmm?.op === 'get-msr' ? counterOfMsr(o.vmm.msr) : counterOf(o));

/** What a count of one of `counters` decides: a read of one of them, or a run's PMIs, GLOBAL_STATUS, any count effect. */
function decidedBy(o: Observation, counters: ReadonlySet<number>): boolean {
  if (!countEffect(o)) return false;
  const idx = readCounter(o);
  return idx === null ? counters.size > 0 : counters.has(idx);
}

/** The counters of the guest's width: GP from CPUID.0AH.EAX[23:16], fixed from EDX[12:5], each capped at the host's. */
function widthMask(c: DivergenceContext, idx: number): bigint {
  const { eax, edx } = c.guest.cpuid.leaf0a;
  return idx < 32
    ? lowMask(Math.min((eax >>> 16) & 0xff, c.host.gpWidth))
    : lowMask(Math.min((edx >>> 5) & 0xff, c.host.fixedWidth));
}

/**
 * The counter a guest write stored otherwise than bare metal: the series keeps the value as written,
 * where bare metal sign-extends a legacy-alias write from bit 31 and keeps only the counter's width.
 */
function rawWriteOf(h: Observation, c: DivergenceContext): number | null {
  // A VMM's KVM_SET_MSRS too: bare metal keeps only the counter's width (not sign-extended, a host write).
  if (h.vmm?.op === 'set-msr' && h.sut.kind === 'ok') {
    const i = counterOfMsr(h.vmm.msr);
    return i !== null && (h.vmm.value & widthMask(c, i)) !== h.vmm.value ? i : null;
  }
  if (h.kind !== 'wrmsr' || h.sut.kind !== 'accepted' || h.target === null || h.value === null) return null;
  const idx = counterOfMsr(h.target);
  if (idx === null) return null;
  const legacy = h.target >= MSR_IA32_PERFCTR0 && h.target < MSR_IA32_PERFCTR0 + MAX_GP;
  const held = (legacy ? BigInt.asUintN(64, BigInt.asIntN(32, h.value)) : h.value) & widthMask(c, idx);
  return held === h.value ? null : idx;
}

/** Do two counter values agree in bits 31:0, which a write through either alias stores alike? */
const sameLow32 = (a: bigint, b: bigint) => ((a ^ b) & lowMask(32)) === 0n;

/**
 * Would the host counter refuse a value written raw to it: bits above its width, GP or fixed (decision D2 for a fixed
 * counter). KVM's wrmsrl faults, is fixed up, and the counter keeps what it held.
 */
const refusedByHost = (value: bigint, c: DivergenceContext) =>
  value >> BigInt(Math.min(c.host.gpWidth, c.host.fixedWidth)) !== 0n;

/** An accepted guest write of `msr`. */
const wrote = (h: Observation, msr: (m: number) => boolean) =>
  h.kind === 'wrmsr' && h.sut.kind === 'accepted' && h.target !== null && msr(h.target);

/**
 * The MSR and value of a write KVM took through intel_pmu_set_msr, which treats both alike: the guest's accepted WRMSR,
 * or the VMM's KVM_SET_MSRS.
 */
function written(h: Observation): { msr: number; value: bigint } | null {
  if (h.vmm?.op === 'set-msr') return h.sut.kind === 'ok' ? { msr: h.vmm.msr, value: h.vmm.value } : null;
  return wrote(h, () => true) && h.value !== null ? { msr: h.target!, value: h.value } : null;
}

/** kvm_pmu_refresh's reserved_bits: bits 63:32 and AnyThread (21). */
const KVM_RESERVED_EVTSEL = 0xffff_ffff_0020_0000n;

/** A guest event-select write (of `msr`, or of any) the series dropped for its reserved bits. */
const droppedEvtsel = (h: Observation, msr: number | null) =>
  wrote(h, (m) => isEvtsel(m) && (msr === null || m === msr)) &&
  h.value !== null &&
  (h.value & KVM_RESERVED_EVTSEL) !== 0n;

/**
 * The counters whose GLOBAL_CTRL bit changed (the guest's write or the VMM's) while their control enabled them:
 * cleared under an enabled counter (which then counts on), or set for one already enabled (whose event
 * the GLOBAL_CTRL write creates, its control never loaded); and those a control write enables while their GLOBAL_CTRL
 * bit is clear, with an event from an earlier enabling still held (the write loads the host control anyway).
 * GLOBAL_CTRL starts with the GP bits set.
 */
function globalGated(history: readonly Observation[], c: DivergenceContext): Set<number> {
  const out = new Set<number>();
  const nGp = (c.guest.cpuid.leaf0a.eax >>> 8) & 0xff;
  let global = lowMask(Math.min(nGp, c.host.nGP));
  const enabled = new Map<number, boolean>();
  const held = new Set<number>(); // counters once enabled in both: their event outlives a disable
  const isOn = (idx: number) => ((global >> BigInt(idx)) & 1n) !== 0n;
  const enable = (idx: number, on: boolean) => {
    enabled.set(idx, on);
    if (on && isOn(idx)) held.add(idx);
    else if (on && held.has(idx)) out.add(idx);
  };
  for (const h of history) {
    const x = written(h);
    if (x === null) continue;
    const { msr: m, value } = x;
    if (isEvtsel(m)) enable(m - MSR_P6_EVNTSEL0, (value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n);
    else if (m === MSR_CORE_PERF_FIXED_CTR_CTRL)
      for (let j = 0; j < 3; j++) enable(32 + j, ((value >> BigInt(4 * j)) & 3n) !== 0n);
    else if (m === MSR_CORE_PERF_GLOBAL_CTRL) {
      for (const [idx, on] of enabled) if (on && ((global ^ value) & (1n << BigInt(idx))) !== 0n) out.add(idx);
      global = value;
      for (const [idx, on] of enabled) if (on && isOn(idx)) held.add(idx);
    }
  }
  return out;
}

/** fixed_pmc_events: the config KVM gives fixed counter j's perf event. */
const FIXED_PMC_EVENTS = [0x00c0n, 0x003cn, 0x0300n];

/**
 * Perf's placement of the guest's events, replayed. `moved`: the guest counters (GP i, fixed 32 + j) whose perf event
 * host perf moved to another hardware counter when the guest enabled another counter: a new event joins the vCPU thread's events, x86_schedule_events' fast path fails on it (it
 * has no previous counter), and the slow path assigns every event again by weight, fixed counters first. The guest's
 * events are replayed from its control writes (and the VMM's): an event is created when a counter is enabled both in its
 * control and in GLOBAL_CTRL and has none yet; the series releases one only after two slices disabled (not replayed:
 * it is kept) or at a vCPU reset (a new CPUID; a save/restore, whose restored controls create them again).
 * `staleCross`: the guest counters whose event sits on a host counter of the other kind (a GP event on a fixed counter,
 * or a fixed one on a GP counter) and whose control was written again while it did: that write reaches the counter
 * only through the event's first hw.config.
 */
function replayGuestEvents(
  history: readonly Observation[],
  c: DivergenceContext,
): { moved: Set<number>; staleCross: Set<number> } {
  const moved = new Set<number>();
  const staleCross = new Set<number>();
  let fixedCtrl = 0n;
  let version = 0;
  let global = 0n;
  const config = new Map<number, bigint>(); // the enabled counters, by the config of their event
  let events: { idx: number; constraint: Constraint; hw: number }[] = [];
  // A vCPU reset: no events, controls cleared, GLOBAL_CTRL with the GP bits set (v1: no GLOBAL_CTRL, always on).
  const reset = (eax: number) => {
    version = eax & 0xff;
    global = version < 2 ? ~0n : lowMask(Math.min((eax >>> 8) & 0xff, c.host.nGP));
    config.clear();
    fixedCtrl = 0n;
    events = [];
  };
  let eax = c.guest.cpuid.leaf0a.eax;
  let perfCaps = (c.facts?.initialGuest(0) ?? c.guest).perfCapabilities;
  reset(eax);
  // KVM reprograms the counters a write enabled in index order (kvm_pmu_handle_event walks reprogram_pmi).
  const create = () => {
    for (const [idx, cfg] of [...config].sort(([a], [b]) => a - b)) {
      if (((global >> BigInt(idx)) & 1n) === 0n || events.some((e) => e.idx === idx)) continue;
      const constraint = intel_get_event_constraints(c.host, cfg, false);
      if (constraint === null) continue;
      const next = [...events, { idx, constraint, hw: -1 }];
      const assign = x86_schedule_events(next.map((e) => ({ constraint: e.constraint, lastIdx: e.hw })));
      if (assign === null) continue; // it never runs: the guest counter reads pmc->counter
      next.forEach((e, k) => {
        if (e.hw !== -1 && e.hw !== assign[k]) moved.add(e.idx);
        e.hw = assign[k]!;
      });
      events = next;
    }
  };
  for (const h of history) {
    if (h.vmm?.op === 'set-cpuid' && h.sut.kind === 'ok') reset((eax = h.vmm.cpuid.leaf0a.eax));
    // A save/restore gives the thread a new vCPU whose restored controls create their events afresh.
    if (h.vmm?.op === 'save-restore') {
      events = [];
      create();
    }
    const x = written(h);
    if (x === null) continue;
    // kvm_set_msr_common: a PERF_CAPABILITIES the VMM changes refreshes the PMU, and kvm_pmu_refresh resets it first
    // (1647b52757d5): every event released, every control cleared (FC_SEED=226312238).
    if (x.msr === MSR_IA32_PERF_CAPABILITIES) {
      if (x.value !== perfCaps) reset(eax);
      perfCaps = x.value;
      continue;
    }
    // A control write to a counter whose event sits on a host counter of the other kind.
    const crossed = (idx: number) => {
      if (events.some((e) => e.idx === idx && e.hw !== -1 && idx < 32 !== e.hw < 32)) staleCross.add(idx);
    };
    if (isEvtsel(x.msr)) {
      const i = x.msr - MSR_P6_EVNTSEL0;
      crossed(i);
      if ((x.value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n) config.set(i, x.value & X86_RAW_EVENT_MASK);
      else config.delete(i);
    } else if (x.msr === MSR_CORE_PERF_FIXED_CTR_CTRL)
      for (let j = 0; j < 3; j++) {
        if (((x.value ^ fixedCtrl) >> BigInt(4 * j)) & 0xfn) crossed(32 + j);
        if (((x.value >> BigInt(4 * j)) & 3n) !== 0n) config.set(32 + j, FIXED_PMC_EVENTS[j]!);
        else config.delete(32 + j);
      }
    else if (x.msr === MSR_CORE_PERF_GLOBAL_CTRL && version >= 2) global = x.value;
    else continue;
    if (x.msr === MSR_CORE_PERF_FIXED_CTR_CTRL) fixedCtrl = x.value;
    create();
  }
  return { moved, staleCross };
}

/** The counters of vCPU `v` written (any alias, by the guest or the VMM), whatever the value, as GLOBAL_STATUS bits. */
function writtenCounterBits(history: readonly Observation[], v: number): bigint {
  let bits = 0n;
  for (const h of history) {
    const x = written(h);
    const idx = x === null || h.vcpu !== v ? null : counterOfMsr(x.msr);
    if (idx !== null) bits |= 1n << BigInt(idx);
  }
  return bits;
}

/** A GLOBAL_STATUS read (the guest's, or the VMM's KVM_GET_MSRS) differing from bare metal only in `bits`. */
function statusDiffersIn(o: Observation, bits: bigint): boolean {
  const isStatus =
    (o.kind === 'rdmsr' && o.target === MSR_CORE_PERF_GLOBAL_STATUS) ||
    (o.vmm?.op === 'get-msr' && o.vmm.msr === MSR_CORE_PERF_GLOBAL_STATUS);
  if (!isStatus || o.sut.kind !== 'value' || o.oracle.kind !== 'value') return false;
  return ((o.sut.value ^ o.oracle.value) & ~bits) === 0n;
}

/** A write of counter `idx` on vCPU `v` that KVM took: the guest's WRMSR of either alias, or the VMM's KVM_SET_MSRS. */
const wroteCounter = (h: Observation, v: number, idx: number) => {
  const x = written(h);
  return h.vcpu === v && x !== null && counterOfMsr(x.msr) === idx;
};

/**
 * The counters of vCPU `v` whose event the series released at a sched-in on another pCPU, not written since: enabled
 * once, then disabled by their control for HW_LIFE_COUNT_MAX scheduling slices, the thread then migrated. The release
 * saves the counter from the new pCPU's counter, which never held it.
 */
function releasedOnOtherCpu(c: DivergenceContext, v: number): Set<number> {
  const cpus = c.facts?.cpus ?? 2;
  let cpu = c.facts?.initialCpu(v) ?? v % cpus;
  const enabled = new Set<number>();
  const idle = new Map<number, number>(); // counters with an event, disabled: sched-ins since
  const out = new Set<number>();
  const control = (idx: number, on: boolean) => {
    if (on) {
      enabled.add(idx);
      idle.delete(idx);
    } else if (enabled.delete(idx)) idle.set(idx, 0);
  };
  for (const h of c.history) {
    if (h.vcpu !== v) continue;
    const x = written(h);
    if (x !== null) {
      const idx = counterOfMsr(x.msr);
      if (idx !== null) out.delete(idx); // the write loads the counter again
      if (isEvtsel(x.msr)) control(x.msr - MSR_P6_EVNTSEL0, (x.value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n);
      else if (x.msr === MSR_CORE_PERF_FIXED_CTR_CTRL)
        for (let j = 0; j < 3; j++) control(32 + j, ((x.value >> BigInt(4 * j)) & 3n) !== 0n);
      continue;
    }
    if (h.vmm?.op === 'save-restore') idle.clear();
    if (h.vmm?.op !== 'migrate' && h.vmm?.op !== 'preempt') continue;
    const to = h.vmm.op === 'migrate' ? ((h.vmm.cpu % cpus) + cpus) % cpus : cpu;
    for (const [idx, n] of idle)
      if (n < HW_LIFE_COUNT_MAX) idle.set(idx, n + 1);
      else {
        idle.delete(idx);
        if (to !== cpu) out.add(idx);
      }
    cpu = to;
  }
  return out;
}

/**
 * A VMM's KVM_GET_MSRS of a counter that shows a count rolled back: vCPU `v` was preempted or migrated since the
 * counter was last written (a write loads the counter, so nothing rolls back past it), and the value read has counted
 * no more since that write than bare metal's (the World's facts: what the write left in bare metal's counter).
 */
function vmmReadRolledBack(o: Observation, c: DivergenceContext): boolean {
  const idx = o.vmm?.op === 'get-msr' ? counterOfMsr(o.vmm.msr) : null;
  if (idx === null || o.sut.kind !== 'value' || o.oracle.kind !== 'value') return false;
  const bare = c.facts?.oracleCounter(o.vcpu, idx);
  if (bare === undefined || bare === null) return false;
  const w = c.history.findLastIndex((h) => wroteCounter(h, o.vcpu, idx));
  const rescheduled = c.history
    .slice(w + 1)
    .some((h) => h.vcpu === o.vcpu && (h.vmm?.op === 'preempt' || h.vmm?.op === 'migrate'));
  const mask = widthMask(c, idx);
  const base = w < 0 ? 0n : (bare.written ?? 0n);
  return rescheduled && ((o.sut.value - base) & mask) < ((o.oracle.value - base) & mask);
}

/**
 * The counters that count an event the VMM's filter denies on a counter perf assigned for an allowed one: enabled (by
 * the guest's or the VMM's last control write) with an event a later KVM_SET_PMU_EVENT_FILTER denies (as
 * is_gp_event_allowed / is_fixed_event_allowed decide), or a GP counter whose enabled, allowed event is rewritten,
 * possibly disabled in between, to one the filter in force denies. Their events outlive the denial, and any later enabling write
 * loads their control again.
 */
function enabledBeforeFilter(history: readonly Observation[]): Set<number> {
  const selects = new Map<number, bigint>(); // enabled GP counters: their event selects
  // GP counters with an event created while the filter allowed it: a disabling write keeps it (reprogram_counter only
  // pauses), a reschedule of a disabled counter may release it (kvm_pmu_cleanup; taken as released, which is narrower).
  const live = new Set<number>();
  const fixed = new Set<number>(); // enabled fixed counters
  const out = new Set<number>();
  let filter: KvmPmuEventFilter | null = null;
  for (const h of history) {
    if (h.vmm?.op === 'migrate' || h.vmm?.op === 'preempt') for (const i of live) if (!selects.has(i)) live.delete(i);
    if (h.vmm?.op === 'save-restore')
      for (const i of [...live])
        if (!selects.has(i) || (filter !== null && !gpEventAllowed(filter, selects.get(i)!))) live.delete(i);
    // Read as the World's bare metal reads a filter the ioctl took, not through the design's own predicates.
    if (h.vmm?.op === 'set-filter' && h.sut.kind === 'ok') {
      filter = h.vmm.filter;
      const f = h.vmm.filter;
      if (f !== null) {
        for (const [i, sel] of selects) if (!gpEventAllowed(f, sel)) out.add(i);
        for (const j of fixed) if (!fixedCounterAllowed(f, j)) out.add(32 + j);
      }
    }
    const x = written(h);
    if (x === null) continue;
    if (isEvtsel(x.msr)) {
      const i = x.msr - MSR_P6_EVNTSEL0;
      if ((x.value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n) {
        selects.set(i, x.value);
        if (filter === null || gpEventAllowed(filter, x.value)) live.add(i);
        else if (live.has(i)) out.add(i);
      } else selects.delete(i);
    } else if (x.msr === MSR_CORE_PERF_FIXED_CTR_CTRL)
      for (let j = 0; j < 3; j++)
        if (((x.value >> BigInt(4 * j)) & 3n) !== 0n) fixed.add(j);
        else fixed.delete(j);
  }
  return out;
}

/**
 * The counters whose event a KVM_SET_PMU_EVENT_FILTER created: enabled by their control (the guest's write or the VMM's)
 * while the filter in force denied their event, so reprogram_counter made none, then allowed by a new filter, whose
 * reprogram of every PMC makes it with its control unloaded; until the control is written again, the vCPU is scheduled
 * in (a migration, a preemption) or reset (a new CPUID, a save/restore).
 */
function filterCreated(history: readonly Observation[]): Set<number> {
  const denied = new Map<number, bigint | null>(); // enabled counters the filter denied: GP i's select, fixed 32 + j
  const out = new Set<number>();
  let filter: KvmPmuEventFilter | null = null;
  let fixedCtrl = 0n;
  const allowed = (idx: number, sel: bigint | null) =>
    filter === null || (idx < 32 ? gpEventAllowed(filter, sel!) : fixedCounterAllowed(filter, idx - 32));
  const control = (idx: number, on: boolean, sel: bigint | null) => {
    out.delete(idx);
    denied.delete(idx);
    if (on && !allowed(idx, sel)) denied.set(idx, sel);
  };
  for (const h of history) {
    const op = h.vmm?.op;
    if (op === 'migrate' || op === 'preempt') out.clear();
    if (op === 'save-restore' || (op === 'set-cpuid' && h.sut.kind === 'ok')) {
      out.clear();
      denied.clear();
      fixedCtrl = 0n;
    }
    if (h.vmm?.op === 'set-filter' && h.sut.kind === 'ok') {
      filter = h.vmm.filter;
      for (const [idx, sel] of [...denied])
        if (allowed(idx, sel)) {
          denied.delete(idx);
          out.add(idx);
        }
    }
    const x = written(h);
    if (x === null) continue;
    if (isEvtsel(x.msr)) control(x.msr - MSR_P6_EVNTSEL0, (x.value & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n, x.value);
    else if (x.msr === MSR_CORE_PERF_FIXED_CTR_CTRL) {
      // reprogram_fixed_counters reprograms (and the series loads) only the fields that changed.
      for (let j = 0; j < 3; j++)
        if (((x.value ^ fixedCtrl) >> BigInt(4 * j)) & 0xfn)
          control(32 + j, ((x.value >> BigInt(4 * j)) & 3n) !== 0n, null);
      fixedCtrl = x.value;
    }
  }
  return out;
}

/** A save at a guest instruction's exit: KVM_RUN had returned before re-entering, KVM's folding of emulated events due. */
/**
 * The counters of vCPU `v` an instruction the VMM saved at the exit of counted (bare metal), not written since: the
 * assigned counter KVM_GET_MSRS read lacked the events KVM had not folded in yet.
 */
function countedAtAnExitSave(history: readonly Observation[], v: number): Set<number> {
  const out = new Set<number>();
  for (const h of history) {
    if (h.vcpu !== v) continue;
    const counted = h.vmm?.op === 'save-restore' ? (h.vmm.atExit?.counted ?? 0n) : 0n;
    for (let i = 0; counted >> BigInt(i) !== 0n; i++) if (((counted >> BigInt(i)) & 1n) === 1n) out.add(i);
    for (const i of out) if (wroteCounter(h, v, i)) out.delete(i);
  }
  return out;
}

const DESCHEDULE_ROLLBACK: KnownDivergence = {
  id: 'deschedule-rollback',
  title:
    "a preemption or migration rolls a guest counter back to its last sync (the guest's last access, reprogram or overflow): counts are lost, also to a VMM's KVM_GET_MSRS of the counter",
  kernelRef:
    "series patch 4/5: kvm_arch_sched_out → intel_pmu_save_guest_pmc saves nothing, perf_event_task_sched_out having run first (prepare_task_switch: the event's oncpu is -1, so !intel_pmc_is_assigned); kvm_arch_sched_in → intel_pmu_restore_guest_pmc writes the stale pmc->counter, which patch 5/5's intel_pmu_get_msr reads back from hw.event_base for KVM_GET_MSRS as for a guest RDMSR",
  // Only losses: counts, overflow bits and PMIs the guest misses, never ones it gains; the program goes on. A VMM's
  // read meets it only for a counter rolled back since its last write.
  matches: (o, c) =>
    o.kind === 'vmm'
      ? vmmReadRolledBack(o, c)
      : c.history.some((h) => h.vmm?.op === 'preempt' || h.vmm?.op === 'migrate') && lostOnly(o, c, true) === null,
  // Counts since a counter's write start from the value as written (counter-write-raw).
  contract: (o, c) => lostOnly(o, c, true),
  vmm: true,
};

export const HW_ASSIGNED_EXPECTATIONS: readonly KnownDivergence[] = [
  // Upstream's rule, which the series keeps for FIXED_CTR_CTRL (its selector writes drop the bit: evtsel-reserved-dropped).
  ANYTHREAD_RESERVED,
  {
    id: 'evtsel-reserved-dropped',
    title:
      'an event select write with bits KVM reserves is dropped without #GP: where bare metal #GPs nothing else differs, where it takes the write (AnyThread from v3) the old select stays and counts',
    kernelRef:
      'series patch 5/5 intel_pmu_set_msr: "if (data == pmc->eventsel || (data & pmu->reserved_bits)) return 0;" (was: #GP)',
    matches: (o, c) =>
      (o.kind === 'wrmsr' && isEvtsel(o.target) && o.sut.kind === 'accepted' && isGp(o.oracle)) ||
      (o.kind === 'rdmsr' && isEvtsel(o.target) && c.history.some((h) => h !== o && droppedEvtsel(h, o.target))) ||
      (countEffect(o) && c.history.some((h) => droppedEvtsel(h, null) && h.oracle.kind === 'accepted')),
    // Bare metal adopts a #GP'd one (W6): the write retires with no effect, as the design drops it.
    adopt: (a) => (a.kind === 'wrmsr' && isEvtsel(a.msr) && a.sut.ok && !a.oracle.ok ? a.sut : null),
    vmm: true,
  },
  {
    id: 'rdpmc-null-oops',
    title: 'RDPMC with an ECX that names no counter oopses the host (NULL pointer dereference)',
    kernelRef:
      'series patch 2/5 intel_pmc_read_counter: pmc = msr_idx_to_pmc(vcpu, idx) with no NULL check, then intel_pmc_is_assigned(pmc) dereferences it; patch 4/5 kvm_pmu_rdpmc calls it for every RDPMC',
    matches: (o) => o.kind === 'rdpmc' && o.sut.kind === 'oops',
  },
  {
    id: 'rdpmc-flags',
    title:
      "RDPMC reads ECX[31:30] as flags (5.0's decoder): fast reads (bit 31) and types 0x8000/0xC000 return the whole counter where bare metal #GPs",
    kernelRef:
      'Linux 5.0 intel_msr_idx_to_pmc: "fixed = idx & (1u << 30); idx &= ~(3u << 30)"; series patch 4/5 kvm_pmu_rdpmc: the vendor pmc_read_counter skips the fast-mode truncation',
    matches: (o) =>
      o.kind === 'rdpmc' && o.target !== null && flagsOnlyType(o.target) && o.sut.kind === 'value' && isGp(o.oracle),
  },
  {
    id: 'counter-write-raw',
    title:
      'a guest counter write is kept as written: no sign extension from bit 31 through the legacy alias, bits above the counter width kept and read back, or, on a host counter that refuses them (decision D2 for a fixed one), the write lost',
    kernelRef:
      'series patch 5/5 intel_pmu_set_msr: "pmc->counter = data" (the (s64)(s32) extension and pmc_bitmask dropped), wrmsrl(hw.event_base) if assigned; intel_pmu_get_msr returns pmc->counter unmasked',
    // A read of that counter (a guest's, or the VMM's KVM_GET_MSRS) after a raw last write of it: differing only above
    // bit 31, where the sign extension and the width mask act, or anyhow where the host counter refused the value (the
    // write lost). Or what a raw-written count decides later (overflow, PMIs, GLOBAL_STATUS).
    matches: (o, c) => {
      if (!countEffect(o)) return false;
      const idx = readCounter(o);
      if (idx === null) return c.history.some((h) => h !== o && rawWriteOf(h, c) !== null);
      const last = c.history.findLast((h) => h !== o && wroteCounter(h, o.vcpu, idx));
      if (last === undefined || rawWriteOf(last, c) !== idx) return false;
      return (
        refusedByHost(written(last)!.value, c) ||
        (o.sut.kind === 'value' && o.oracle.kind === 'value' && sameLow32(o.sut.value, o.oracle.value))
      );
    },
    vmm: true,
  },
  {
    id: 'overflow-from-perf-period',
    title:
      "once the guest has written a counter, its overflows bring no PMI and no GLOBAL_STATUS bit (or bring them late): perf still decides the overflow from the period it armed when it created the event, and the guest's direct counter writes leave that period stale",
    kernelRef:
      'series patch 1/5 (perf writes no counter of an exclude_host event) and 5/5 (intel_pmu_set_msr writes the guest value to hw.event_base); arch/x86/events/intel/core.c handle_pmi_common → intel_pmu_save_and_restart → x86_perf_event_set_period decides, from its own period_left, whether kvm_perf_overflow runs',
    // The PMI, the overflow bits of the counters written (a guest's read, or the VMM's KVM_GET_MSRS of the same
    // pmu->global_status), and what the legacy LBR freeze at that PMI changes.
    matches: (o, c) => {
      const bits = writtenCounterBits(c.history, o.vcpu);
      return (
        bits !== 0n &&
        (o.kind === 'run' || o.kind === 'pmi' || statusDiffersIn(o, bits) || lbrFreezeEffect(o, c.history))
      );
    },
    vmm: true,
  },
  DESCHEDULE_ROLLBACK,
  {
    id: 'released-on-other-pcpu',
    title:
      "a counter the guest left disabled for two scheduling slices loses its value when the vCPU thread is next scheduled in on another pCPU: the series releases it there, saving what that pCPU's counter holds",
    kernelRef:
      "series patch 4/5 kvm_arch_sched_in → intel_pmu_sched_in: a vPMC whose hw_life_count ran out is stopped (intel_pmc_stop_counter → intel_pmu_save_guest_pmc reads hw.event_base) before any restore, perf having just scheduled its event in on the new pCPU's counter, which patch 1/5 leaves unpreset",
    // A read of such a counter (a guest's, or the VMM's KVM_GET_MSRS), or what its count decides once enabled again.
    matches: (o, c) => decidedBy(o, releasedOnOtherCpu(c, o.vcpu)),
    vmm: true,
  },
  {
    id: 'global-ctrl-not-loaded',
    title:
      "the guest's GLOBAL_CTRL does not gate its counters: one it disables keeps counting once perf assigned it a counter, and one whose event a GLOBAL_CTRL write creates counts nothing until the next sched-in, its control never loaded",
    kernelRef:
      'series patch 5/5: reprogram_gp_counter returns early for an assigned vPMC and intel_pmu_enable_host_counter runs only from intel_pmu_set_msr (event select) and reprogram_fixed_counters; patch 1/5 leaves the control of the new event unwritten; intel_guest_get_msrs enables every exclude_host counter for the guest',
    // A read of such a counter, or what any counter's count decides (runs, PMIs, GLOBAL_STATUS).
    matches: (o, c) => decidedBy(o, globalGated(c.history, c)),
    vmm: true,
  },
  {
    id: 'event-filter-not-applied',
    title:
      "an event the VMM's event filter denies counts on a counter perf assigned to the vPMC for an event it allowed (before the filter, or before the guest changed the event): the reprogram stops nothing of an assigned counter, and an enabling write loads the guest's control whatever it decided",
    kernelRef:
      "series patch 4/5: pmc_stop_counter only syncs an assigned counter; the base's reprogram_counter returns for an event pmc_is_event_allowed refuses after it (kvm_vm_ioctl_set_pmu_event_filter reprograms every PMC), leaving the host counter's control as patch 5/5's intel_pmu_enable_host_counter loaded it; intel_pmu_set_msr enables the host counter after reprogram_counter whatever it decided. (The filter postdates the series' 5.0 base: this is the series on pre-reuse's base.)",
    // A read of such a counter (a guest's, or the VMM's KVM_GET_MSRS), or what any such counter's count decides.
    matches: (o, c) => decidedBy(o, enabledBeforeFilter(c.history)),
    vmm: true,
  },
  {
    id: 'filter-created-event-not-loaded',
    title:
      "a counter the guest (or the VMM) enabled for an event the VMM's filter denied counts nothing once a new filter allows it, until its control is written again or the vCPU is next scheduled in: the filter's reprogram makes its event, whose control the series never loads",
    kernelRef:
      "kvm_vm_ioctl_set_pmu_event_filter requests a reprogram of every PMC, and the base's reprogram_counter makes the now-allowed event; series patch 1/5 leaves a new event's control unwritten and patch 5/5 loads it only from intel_pmu_set_msr and reprogram_fixed_counters (the mechanism global-ctrl-not-loaded declares for an event a GLOBAL_CTRL write makes). (The filter postdates the series' 5.0 base: this is the series on pre-reuse's base.)",
    // A read of such a counter (a guest's, or the VMM's KVM_GET_MSRS), or what its count decides. Found at
    // FC_SEED=198347419 (designs.test.ts, vmm-conformance).
    matches: (o, c) => decidedBy(o, filterCreated(c.history)),
    vmm: true,
  },
  {
    id: 'counter-moved',
    title:
      "when host perf reschedules the guest's event onto another counter (a host event on the vCPU's pCPU or thread takes its counter, or the guest's own new event makes perf place every event again), the guest's count stays behind and the guest reads and counts from what the new counter holds, host counts included",
    kernelRef:
      'series patch 1/5: x86_perf_event_set_event_base / set_config_base skip the preset and the control of an exclude_host event on its new counter; patch 2/5 intel_pmc_is_assigned only asks that the event be on some counter',
    // A host event where the vCPU's events run (now or before), or a counter the guest's own events moved.
    matches: (o, c) =>
      countEffect(o) && (hostCompeted(c, o.vcpu, false) || decidedBy(o, replayGuestEvents(c.history, c).moved)),
    vmm: true,
  },
  {
    id: 'cross-mapped-stale-config',
    title:
      "a guest counter perf placed on a counter of the other kind (a GP event on a fixed counter, or a fixed one on a GP counter) keeps the event and mode bits of its first control: the guest's later event-select or FIXED_CTR_CTRL changes reach it only through perf's stale hw.config",
    kernelRef:
      'series patch 3/5 intel_pmu_enable_host_fixed_counter (bits from pmc->perf_event->hw.config) and patch 5/5 reprogram_fixed_counters (hwc->config | ENABLE on a host GP counter); reprogram_gp_counter keeps an assigned event whatever the new select',
    matches: (o, c) => decidedBy(o, replayGuestEvents(c.history, c).staleCross),
    vmm: true,
  },
  {
    id: 'emulated-count-lost-at-save',
    title:
      "events KVM counts in software for an assigned counter (an emulated or skipped instruction) are not in a save the VMM makes at that instruction's exit: KVM_GET_MSRS reads the assigned counter from hardware, and the events are folded in only at the next VM-entry",
    kernelRef:
      'series patch 5/5 intel_pmu_get_msr reads hw.event_base of an assigned counter; the base folds pmc->emulated_counter in reprogram_counter, from kvm_pmu_handle_event in vcpu_enter_guest',
    // A count of a counter such an instruction counted, not written since, decides it.
    matches: (o, c) => decidedBy(o, countedAtAnExitSave(c.history, o.vcpu)),
    vmm: true,
  },
];

/** Nothing the series changes of what a migration or save/restore loses yet; the base's list. */
export const HW_ASSIGNED_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = [
  {
    id: DESCHEDULE_ROLLBACK.id,
    title: DESCHEDULE_ROLLBACK.title,
    kernelRef: DESCHEDULE_ROLLBACK.kernelRef,
    // Either run may have lost counts: the inserted migration, or one of the program's own.
    matches: (o, c) => countEffect(o) && c.history.some((h) => h.vmm?.op === 'preempt' || h.vmm?.op === 'migrate'),
    vmm: true,
  },
  ...EMULATED_INVISIBILITY_EXPECTATIONS,
];

/** Host-private values the series lets the guest read (property 2). */
export const HW_ASSIGNED_LEAKS: readonly KnownDivergence[] = [
  {
    id: 'counter-moved-leak',
    title:
      "once host perf moves the guest's event onto a counter a host event used (one on the vCPU's pCPU or thread), the guest reads that counter's host value (perf's preset of the host event's period, its count)",
    kernelRef:
      'series patch 1/5: the new counter is neither preset nor zeroed for an exclude_host event; patch 5/5 intel_pmu_get_msr and patch 2/5 intel_pmc_read_counter read hw.event_base as it is',
    matches: (o, c) => countEffect(o) && hostCompeted(c, o.vcpu, false),
    vmm: true,
  },
];

/**
 * The base's declarations follow the series' own. Bare metal takes on none of the base's perf period floor: the series
 * counts on the counters perf assigned, so when KVM re-arms them is the series' own, which the base's matcher judges.
 */
export const HW_ASSIGNED_ALL_EXPECTATIONS: readonly KnownDivergence[] = [
  ...HW_ASSIGNED_EXPECTATIONS,
  ...EMULATED_EXPECTATIONS.map(({ periodFloor: _, ...k }) => k),
];
