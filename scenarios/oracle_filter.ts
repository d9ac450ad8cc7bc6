/**
 * The oracle of KVM_SET_PMU_EVENT_FILTER: bare metal on which a counter programmed with a denied
 * event does not count (it keeps its value and the guest still reads back its own selector). The
 * filter's meaning is taken from the KVM API documentation (Documentation/virt/kvm/api.rst,
 * KVM_SET_PMU_EVENT_FILTER), not from KVM's code: legacy entries match event select and unit
 * mask; masked entries match an event select and (umask & mask) == match; the fixed-counter
 * bitmap alone decides for fixed counters.
 */

import { Cpu, NO_COUNTERS, type PmiDelivery } from '../model/hw/cpu.js';
import type { WorkUnit } from '../model/hw/work.js';
import type { KvmPmuEventFilter } from '../model/kvm/types.js';
import {
  ARCH_PERFMON_EVENTSEL_ENABLE,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../model/hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../model/hw/msr/global.js';
import type { Access } from '../model/hw/access.js';
import { relied } from '../model/hw/relied.js';
import { fixedIndices } from '../model/hw/profile.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_LBR, MSR_IA32_DEBUGCTLMSR } from '../model/hw/msr/debugctl.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS } from '../model/hw/msr/lbr_legacy.js';

/** The counter an MSR names (GP i through either alias, fixed j as 32 + j), or null. */
export function counterIndexOf(msr: number): number | null {
  if (msr >= MSR_IA32_PERFCTR0 && msr < MSR_IA32_PERFCTR0 + 8) return msr - MSR_IA32_PERFCTR0;
  if (msr >= MSR_IA32_PMC0 && msr < MSR_IA32_PMC0 + 8) return msr - MSR_IA32_PMC0;
  if (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr < MSR_CORE_PERF_FIXED_CTR0 + 4) return 32 + msr - MSR_CORE_PERF_FIXED_CTR0;
  return null;
}

/** Control MSRs whose write (re)arms a counter's perf event in KVM (a reprogram): the selectors and the global and fixed controls. */
export const isCounterControl = (msr: number) =>
  (msr >= MSR_P6_EVNTSEL0 && msr < MSR_P6_EVNTSEL0 + 8) ||
  msr === MSR_CORE_PERF_FIXED_CTR_CTRL ||
  msr === MSR_CORE_PERF_GLOBAL_CTRL;

const NO_LAGS: readonly (readonly [number, bigint])[] = [];

const ALLOW = 0;
const MASKED = 1;

/** Does an entry of the filter cover this event select + unit mask? */
function covers(f: KvmPmuEventFilter, e: bigint, event: bigint, umask: bigint): { hit: boolean; exclude: boolean } {
  if ((f.flags & MASKED) === 0)
    return { hit: (e & ~0xffffn) === 0n && (e & 0xffn) === event && ((e >> 8n) & 0xffn) === umask, exclude: false };
  const mask = (e >> 56n) & 0xffn;
  const match = (e >> 8n) & 0xffn;
  return { hit: (e & 0xffn) === event && (umask & mask) === match, exclude: ((e >> 55n) & 1n) === 1n };
}

/** Whether the filter lets a GP counter with this selector count. */
export function gpEventAllowed(f: KvmPmuEventFilter, evtsel: bigint): boolean {
  const event = evtsel & 0xffn;
  const umask = (evtsel >> 8n) & 0xffn;
  let included = false;
  let excluded = false;
  for (const e of f.events) {
    const c = covers(f, e, event, umask);
    if (!c.hit) continue;
    if (c.exclude) excluded = true;
    else included = true;
  }
  return included && !excluded ? f.action === ALLOW : f.action !== ALLOW;
}

/** Whether the filter lets fixed counter `i` count. */
export function fixedCounterAllowed(f: KvmPmuEventFilter, i: number): boolean {
  const set = ((f.fixed_counter_bitmap >>> i) & 1) === 1;
  return f.action === ALLOW ? set : !set;
}

/**
 * A bare-metal CPU that honours a VMM's event filter (denied counters sit out each unit) and, where a declared
 * divergence is adopted for its guest, ignores FREEZE_LBRS_ON_PMI.
 */
export class OracleCpu extends Cpu {
  filter: KvmPmuEventFilter | null = null;
  /**
   * Set when bare metal takes on a guest PMU version without the LBR freeze: told each time that changes what it does
   * (a freeze skipped, a version-1 freeze bit held).
   */
  lbrFreezeAdopted: (() => void) | null = null;

  /**
   * Under that adoption a CPU below version 2 also holds FREEZE_LBRS_ON_PMI, a bit its DEBUGCTL lacks (D37), as KVM
   * lets a version-1 guest with LBRs hold it, and a VMM's KVM_SET_MSRS any guest: stored, never acted on.
   */
  override wrmsr(address: number, value: bigint): Access {
    if (this.periodFloorAdopted === null) return this.wrmsrFreeze(address, value);
    // Only a control write can change the controls: the others skip their copy.
    const before = isCounterControl(address) ? this.controls() : null;
    const r = this.wrmsrFreeze(address, value);
    if (!r.ok) return r;
    const idx = counterIndexOf(address);
    if (idx !== null) this.counterWritten(idx);
    else this.reprogramAfterRetire = before === null ? NO_COUNTERS : this.changedBy(before, this.controls());
    // vmx_set_debugctl: DEBUGCTL.LBR creates the guest LBR event, if there is none.
    if (address === MSR_IA32_DEBUGCTLMSR && (value & DEBUGCTLMSR_LBR) !== 0n) this.guestLbrEventCreated();
    return r;
  }

  /**
   * The guest LBR event of KVM, as far as bare metal can tell (the guest has LBRs): none, created (by DEBUGCTL.LBR or an
   * LBR MSR access) and not yet released (at a reschedule with DEBUGCTL.LBR clear), or unknown (after a restore).
   */
  guestLbrEvent: 'none' | 'exists' | 'unknown' = 'none';
  /** A host user of the branch stack was opened: the guest LBR event may not run, and KVM then intercepts the LBR MSRs. */
  hostLbrUser = false;
  /**
   * A host user's pinned event was opened: KVM's events, pinned too, may find no counter (ctx_sched_in schedules
   * CPU-pinned events first) and sit in ERROR until KVM enables them again, counting only what KVM counts in software,
   * so bare metal cannot tell whether perf armed one at -1 with its floor.
   */
  hostPinnedUser = false;

  /** intel_pmu_create_guest_lbr_event: installing it on the vCPU task reschedules its context (ctx_resched). */
  private guestLbrEventCreated(): void {
    if (this.periodFloorAdopted === null || this.profile.legacyLbr === undefined || this.guestLbrEvent !== 'none')
      return;
    this.guestLbrEvent = 'exists';
    this.kvmResched();
  }

  /** The LBR MSRs KVM passes through while the guest LBR event runs (vmx_passthrough_lbr_msrs). */
  private isGuestLbrMsr(m: number): boolean {
    const l = this.profile.legacyLbr;
    if (l === undefined) return false;
    const inRecords = (base: number | undefined) => base !== undefined && m >= base && m < base + l.depth;
    return (
      m === MSR_LBR_TOS ||
      (l.select && m === MSR_LBR_SELECT) ||
      inRecords(l.fromBase) ||
      inRecords(l.toBase) ||
      inRecords(l.infoBase)
    );
  }

  private wrmsrFreeze(address: number, value: bigint): Access {
    const frz = value & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
    if (address !== MSR_IA32_DEBUGCTLMSR || frz === 0n || this.lbrFreezeAdopted === null || this.profile.version >= 2)
      return super.wrmsr(address, value);
    relied('D37'); // a version-1 DEBUGCTL has no freeze bits: held here only because KVM holds it
    const r = super.wrmsr(address, value & ~frz);
    if (r.ok) {
      this.state.debugctl |= frz;
      this.lbrFreezeAdopted();
    }
    return r.ok ? { ok: true, value: r.value | frz } : r;
  }

  protected override freezeLbrsOnPmi(): void {
    if (this.lbrFreezeAdopted === null) super.freezeLbrsOnPmi();
    else this.lbrFreezeAdopted();
  }

  /**
   * perf-min-period adopted (W6): set when bare metal takes on that KVM's perf arms a guest counter with at least 2
   * events left (x86_perf_event_set_period); told each time a counter is so armed at -1.
   */
  periodFloorAdopted: (() => void) | null = null;

  /**
   * Per counter (GP i, fixed j as 32 + j) under that adoption: by how many events the register here lags the count the
   * guest reads, as KVM's perf event lags the guest's counter after perf raised a period of 1 to 2. The register
   * overflows (status bit, PMI, freeze) when KVM's event does; every read shows the register plus the lag.
   */
  private readonly lags = new Map<number, bigint>();
  /**
   * Counters perf last armed after raising a period of 1 to 2: perf's period_left is one less than the register shows
   * to the wrap, so at the register's -1 the period is used up (the guest's wrap taken without an overflow).
   */
  private readonly floored = new Set<number>();
  /** KVM's sample period of each running counter's event, as last set (pmc_reprogram_counter, pmc_resume_counter, pmc_write_counter). */
  private readonly periods = new Map<number, bigint>();
  private indices: readonly number[] | null = null;
  /** The counters whose controls the last WRMSR changed: KVM reprograms them once the WRMSR retires. */
  private reprogramAfterRetire: readonly number[] = NO_COUNTERS;
  /** The counters whose controls a VMM's KVM_SET_MSRS changed: KVM reprograms them at the next VM-entry (KVM_REQ_PMU). */
  private reprogramAtEntry: number[] = [];

  /** A VMM's KVM_SET_MSRS was taken: the reprogram it requested waits for the vCPU's next VM-entry. */
  hostWrote(): void {
    if (this.periodFloorAdopted === null || this.reprogramAfterRetire.length === 0) return;
    this.reprogramAtEntry = [...new Set([...this.reprogramAtEntry, ...this.reprogramAfterRetire])];
    this.reprogramAfterRetire = NO_COUNTERS;
  }

  /** The vCPU enters the guest: kvm_pmu_handle_event reprograms what the VMM's writes changed, with the counts then. */
  private enter(): void {
    if (this.reprogramAtEntry.length === 0) return;
    const changed = this.reprogramAtEntry;
    this.reprogramAtEntry = [];
    this.kvmReprogram(changed);
  }

  private counterMask(idx: number): bigint {
    return idx < 32 ? this.profile.gpMask : this.profile.fixedMask;
  }

  /** The register itself, read as RDPMC reads it (taking the state would drop the counting cache). */
  private raw(idx: number): bigint {
    const p = this.profile;
    if (p.version === 0) return 0n;
    const s = this.view;
    if (idx < 32) return idx < p.nGP ? s.pmc[idx]! : 0n;
    return p.version >= 2 && this.fixedIdx.includes(idx - 32) ? s.fixed[idx - 32]! : 0n;
  }

  private setRaw(idx: number, v: bigint): void {
    const s = this.state;
    if (idx < 32) s.pmc[idx] = v & this.counterMask(idx);
    else s.fixed[idx - 32] = v & this.counterMask(idx);
  }

  /** The count the guest reads of counter `idx` (GP i, fixed j as 32 + j): the register plus its lag. */
  counterValue(idx: number): bigint | undefined {
    const s = this.view;
    const raw = idx < 32 ? s.pmc[idx] : s.fixed[idx - 32];
    return raw === undefined ? undefined : (raw + (this.lags.get(idx) ?? 0n)) & this.counterMask(idx);
  }

  /** A write of the counter (a guest's or the VMM's): KVM's event is armed from the value written, its lag gone. */
  counterWritten(idx: number): void {
    this.lags.delete(idx);
    this.floored.delete(idx);
    this.setPeriod(idx);
  }

  /** get_sample_period of the count the guest reads now: what KVM gives perf when it (re)arms the counter's event. */
  private setPeriod(idx: number): void {
    if (!this.running(idx)) return;
    const p = -this.counterValue(idx)! & this.counterMask(idx);
    this.periods.set(idx, p === 0n ? this.counterMask(idx) + 1n : p);
  }

  /** The guest counters (no SLOTS: its overflow is PERF_METRICS') with the controls KVM reprograms on. */
  private counterIndices(): readonly number[] {
    return (this.indices ??= [
      ...Array.from({ length: this.profile.nGP }, (_, i) => i),
      ...(this.profile.version > 1 ? fixedIndices(this.profile).filter((j) => j < 3) : []).map((j) => 32 + j),
    ]);
  }

  private controls(): { evtsel: bigint[]; fixedCtrl: bigint; globalCtrl: bigint } {
    const s = this.view;
    return { evtsel: [...s.evtsel], fixedCtrl: s.fixedCtrl, globalCtrl: s.globalCtrl };
  }

  /**
   * The counters a control write makes KVM reprogram: a changed selector (intel_pmu_set_msr), a changed fixed field
   * (reprogram_fixed_counters), a toggled GLOBAL_CTRL bit (reprogram_counters).
   */
  private changedBy(a: ReturnType<OracleCpu['controls']>, b: ReturnType<OracleCpu['controls']>): number[] {
    return this.counterIndices().filter((i) =>
      ((a.globalCtrl ^ b.globalCtrl) >> BigInt(i)) & 1n
        ? true
        : i < 32
          ? a.evtsel[i] !== b.evtsel[i]
          : (((a.fixedCtrl ^ b.fixedCtrl) >> BigInt(4 * (i - 32))) & 0xfn) !== 0n,
    );
  }

  /** Does counter `idx` count now (pmc_is_globally_enabled, pmc_is_locally_enabled, the VMM's filter)? */
  private running(idx: number): boolean {
    const s = this.view;
    const p = this.profile;
    const global = p.version < 2 || ((s.globalCtrl >> BigInt(idx)) & 1n) === 1n;
    if (idx < 32) {
      const e = s.evtsel[idx] ?? 0n;
      return (
        global && (e & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n && (this.filter === null || gpEventAllowed(this.filter, e))
      );
    }
    const j = idx - 32;
    return (
      global &&
      ((s.fixedCtrl >> BigInt(4 * j)) & 0x3n) !== 0n &&
      (this.filter === null || fixedCounterAllowed(this.filter, j))
    );
  }

  /**
   * perf (re)starts KVM's event of a running counter (x86_perf_event_set_period): a register one event short of the
   * wrap gets two (left < 2); one whose raised period is used up (the guest's count wrapped one event after the raise,
   * no overflow) gets a whole sample period more (left <= 0: left += period), and overflows only after it.
   */
  private floorIfAtMinusOne(idx: number): void {
    const m = this.counterMask(idx);
    if (!this.running(idx) || this.raw(idx) !== m) return;
    if (this.hostPinnedUser) {
      this.unsureArms.add(idx); // the declaration judges the arm, as without the adoption
      return;
    }
    const period = this.periods.get(idx);
    if (!this.floored.has(idx) || period === undefined || period < 2n) {
      // A period not known here is taken as 1; the declaration judges that arm.
      if (this.floored.has(idx) && period === undefined) this.unsureArms.add(idx);
      this.setRaw(idx, m - 1n);
      this.lags.set(idx, (this.lags.get(idx) ?? 0n) + 1n);
      this.floored.add(idx);
    } else {
      const count = this.counterValue(idx)!;
      this.setRaw(idx, -period);
      this.lags.set(idx, (count - this.raw(idx)) & m);
      this.floored.delete(idx);
    }
    this.periodFloorAdopted?.();
  }

  /** pmc_pause_counter then the new period: the lag folded in (an overflow KVM's event had not reached is lost). */
  private fold(idx: number): void {
    const lag = this.lags.get(idx);
    if (lag === undefined) return;
    this.setRaw(idx, this.raw(idx) + lag);
    this.lags.delete(idx);
    this.floored.delete(idx);
  }

  /**
   * KVM reprograms `counters` (pause, then resume or create each running one's event with its period): perf enabling
   * an event reschedules the vCPU task's context (ctx_resched), which re-arms every running event with what it has left.
   */
  private kvmReprogram(counters: readonly number[]): void {
    for (const i of counters) this.fold(i);
    for (const i of counters) this.setPeriod(i);
    if (counters.some((i) => this.running(i))) this.kvmResched();
  }

  /** perf schedules the vCPU task's events in (after a reschedule, or ctx_resched): each restarts with its period left. */
  kvmResched(): void {
    if (this.periodFloorAdopted === null) return;
    for (const i of this.counterIndices()) this.floorIfAtMinusOne(i);
  }

  /** The vCPU thread was rescheduled: perf's sched-in, then KVM's cleanup releases an LBR event DEBUGCTL.LBR no longer uses. */
  kvmSchedIn(): void {
    this.kvmResched();
    if ((this.debugctlNow() & DEBUGCTLMSR_LBR) === 0n) this.guestLbrEvent = 'none';
  }

  /** A restored vCPU: KVM creates every event afresh from the restored counts (what KVM's events had not reached is lost). */
  kvmRecreate(): void {
    if (this.periodFloorAdopted === null) return;
    this.reprogramAtEntry = []; // the new vCPU's events are all made afresh here
    for (const i of [...this.lags.keys()]) this.fold(i);
    for (const i of this.counterIndices()) this.setPeriod(i);
    this.kvmResched();
    this.guestLbrEvent = (this.debugctlNow() & DEBUGCTLMSR_LBR) !== 0n ? 'exists' : 'unknown';
  }

  private debugctlNow(): bigint {
    const r = super.rdmsr(MSR_IA32_DEBUGCTLMSR);
    return r.ok ? r.value : 0n;
  }

  /** Shows every counter with its lag for the length of `f` (a read), then puts the registers back. */
  private shown<T>(f: () => T): T {
    if (this.lags.size === 0) return f();
    const lags = [...this.lags];
    for (const [i, l] of lags) this.setRaw(i, this.raw(i) + l);
    try {
      return f();
    } finally {
      for (const [i, l] of lags) this.setRaw(i, this.raw(i) - l);
    }
  }

  // Without lags (most of the time) straight to the registers, no closure made.
  override rdmsr(address: number): Access {
    return this.lags.size === 0 ? super.rdmsr(address) : this.shown(() => super.rdmsr(address));
  }

  override rdpmc(ecx: number, cpl = 0): Access {
    return this.lags.size === 0 ? super.rdpmc(ecx, cpl) : this.shown(() => super.rdpmc(ecx, cpl));
  }

  override countersAtMinusOne(): readonly number[] {
    return this.lags.size === 0 ? super.countersAtMinusOne() : this.shown(() => super.countersAtMinusOne());
  }

  /**
   * An instruction KVM intercepts retires: KVM counts it in software (kvm_pmu_incr_counter), so each counter that
   * counts it is paused (its lag folded in first, the wrap then exact) and reprogrammed, with those the WRMSR's
   * controls changed. Counters that did not count it keep their lag.
   */
  retireIntercepted(u: WorkUnit, msr: number | null = null): PmiDelivery | null {
    if (this.periodFloorAdopted === null) return this.step(u);
    this.enter();
    // An LBR MSR is passed through while the guest LBR event surely runs: the counters count it. An access without the
    // event creates it; whether KVM intercepts one while a host user may hold the LBRs, bare metal cannot tell.
    let unsure = false;
    if (msr !== null && this.isGuestLbrMsr(msr)) {
      if (this.guestLbrEvent === 'exists' && !this.hostLbrUser) return this.step(u);
      if (this.guestLbrEvent === 'none') this.guestLbrEventCreated();
      else unsure = true;
    }
    const changed = this.reprogramAfterRetire;
    this.reprogramAfterRetire = NO_COUNTERS;
    const lags = this.lags.size === 0 ? NO_LAGS : [...this.lags];
    const floored = this.floored.size === 0 ? NO_COUNTERS : [...this.floored];
    for (const [i] of lags) this.fold(i);
    const indices = this.counterIndices();
    const before = indices.map((i) => this.raw(i));
    const d = this.filteredStep(u);
    const counted = indices.filter((i, k) => this.raw(i) !== before[k]);
    for (const [i, l] of lags)
      if (!counted.includes(i)) {
        this.setRaw(i, this.raw(i) - l);
        this.lags.set(i, l);
        if (floored.includes(i)) this.floored.add(i);
      }
    if (!unsure) this.kvmReprogram(changed.length === 0 ? counted : [...new Set([...counted, ...changed])]);
    else {
      // Counted in software or by the counters: what KVM re-armed, and where, is the declaration's to judge.
      for (const i of this.counterIndices())
        if (counted.includes(i) || this.raw(i) === this.counterMask(i)) this.unsureArms.add(i);
    }
    return d;
  }

  /**
   * Counters perf may have armed at -1 where bare metal could not tell (an LBR MSR KVM may or may not intercept, a
   * write of -1 to a running counter, whose period KVM takes from the old base, a host user's event): the declaration
   * judges what follows.
   */
  private readonly unsureArms = new Set<number>();

  /** A host user's event came or went on: perf may reschedule the vCPU task's events with it (ctx_resched). */
  hostEventChanged(): void {
    if (this.periodFloorAdopted === null) return;
    for (const i of this.counterIndices())
      if (this.running(i) && this.raw(i) === this.counterMask(i)) this.unsureArms.add(i);
  }

  /** The counters perf may have armed at -1 since the last call, where bare metal could not tell. */
  takeUnsureArms(): readonly number[] {
    if (this.unsureArms.size === 0) return NO_COUNTERS;
    const out = [...this.unsureArms];
    this.unsureArms.clear();
    return out;
  }

  /** Does bare metal take perf's period floor on for counter `idx` (not SLOTS, whose overflow is PERF_METRICS')? */
  periodFloorCovers(idx: number): boolean {
    return this.periodFloorAdopted !== null && this.counterIndices().includes(idx);
  }

  /** Does counter `idx` count now (its KVM event running)? */
  counterRunning(idx: number): boolean {
    return this.running(idx);
  }

  /**
   * A unit the hardware counts: a counter whose register wrapped is KVM's event overflowing, which KVM reprograms
   * (kvm_perf_overflow → KVM_REQ_PMU) before the vCPU runs on.
   */
  override step(u: WorkUnit): PmiDelivery | null {
    if (this.periodFloorAdopted === null) return this.filteredStep(u);
    this.enter();
    this.reprogramAfterRetire = NO_COUNTERS;
    // Indexed, no pair per counter: this runs for every unit of every program.
    const indices = this.counterIndices();
    const before = indices.map((i) => this.raw(i));
    const d = this.filteredStep(u);
    let wrapped: number[] | null = null;
    for (let k = 0; k < indices.length; k++) if (this.raw(indices[k]!) < before[k]!) (wrapped ??= []).push(indices[k]!);
    if (wrapped !== null) this.kvmReprogram(wrapped);
    return d;
  }

  private filteredStep(u: WorkUnit): PmiDelivery | null {
    const f = this.filter;
    if (f === null) return super.step(u);
    const s = this.state;
    const evtsel = [...s.evtsel];
    const fixedCtrl = s.fixedCtrl;
    let off = false;
    evtsel.forEach((e, i) => {
      if ((e & ARCH_PERFMON_EVENTSEL_ENABLE) === 0n || gpEventAllowed(f, e)) return;
      s.evtsel[i] = e & ~ARCH_PERFMON_EVENTSEL_ENABLE;
      off = true;
    });
    for (let i = 0; i < 8; i++) {
      const field = (fixedCtrl >> BigInt(4 * i)) & 0x3n;
      if (field === 0n || fixedCounterAllowed(f, i)) continue;
      s.fixedCtrl &= ~(0x3n << BigInt(4 * i));
      off = true;
    }
    if (!off) return super.step(u);
    s.configEpoch++;
    const d = super.step(u);
    // The guest still reads back what it programmed.
    const after = this.state;
    evtsel.forEach((e, i) => (after.evtsel[i] = e));
    after.fixedCtrl = fixedCtrl;
    after.configEpoch++;
    return d;
  }
}
