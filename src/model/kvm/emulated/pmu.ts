/**
 * Vendor-neutral vPMU logic: a port of arch/x86/kvm/pmu.c (and the inline helpers of pmu.h) for
 * the perf-event-backed design, Intel only. Each function names the kernel function it ports;
 * kvm-vpmu.md §2.3–§2.12 is the reference.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit, isSet, lowMask } from '../../hw/bits.js';
import type { Profile } from '../../hw/profile.js';
import { attr, type PerfEvent } from '../../host/types.js';
import type { HostAccess, KvmPmuEventFilter } from '../types.js';
import { is_fixed_event_allowed, is_gp_event_allowed, type KvmX86PmuEventFilter, kvm_vm_ioctl_set_pmu_event_filter } from './filter.js';
import {
  intel_is_valid_msr,
  intel_pmu_cleanup,
  intel_pmu_deliver_pmi,
  intel_pmu_get_msr,
  intel_pmu_refresh,
  intel_pmu_reset,
  intel_pmu_set_msr,
  intel_rdpmc_ecx_to_pmc,
} from './pmu_intel.js';
import { KVM_FIXED_PMC_BASE_IDX, type KvmPmc, type KvmPmu, type KvmState, type KvmVcpuState, newPmc } from './state.js';

export const MSR_CORE_PERF_GLOBAL_STATUS = 0x38e;
export const MSR_CORE_PERF_GLOBAL_CTRL = 0x38f;
export const MSR_CORE_PERF_GLOBAL_OVF_CTRL = 0x390;

export const ARCH_PERFMON_EVENTSEL_USR = bit(16);
export const ARCH_PERFMON_EVENTSEL_OS = bit(17);
export const ARCH_PERFMON_EVENTSEL_EDGE = bit(18);
export const ARCH_PERFMON_EVENTSEL_INT = bit(20);
export const ARCH_PERFMON_EVENTSEL_ENABLE = bit(22);
export const ARCH_PERFMON_EVENTSEL_INV = bit(23);
/** X86_RAW_EVENT_MASK: event select, umask, edge, inv, cmask. */
export const X86_RAW_EVENT_MASK = 0xff84_ffffn;
export const KVM_MAX_NR_INTEL_GP_COUNTERS = 8;
export const KVM_MAX_NR_INTEL_FIXED_COUTNERS = 3;
/** perf's generic encodings KVM matches emulated instructions and branches against. */
export const PERF_COUNT_HW_INSTRUCTIONS = 0x00c0n;
export const PERF_COUNT_HW_BRANCH_INSTRUCTIONS = 0x00c4n;
/** AMD64_RAW_EVENT_MASK_NB: event select (with AMD's bits 35:32, Intel's IN_TX/IN_TXCP) and umask. */
const AMD64_RAW_EVENT_MASK_NB = 0xf_0000_ffffn;
/** HSW_IN_TX_CHECKPOINTED: perf refuses a sample period with it. */
const HSW_IN_TX_CHECKPOINTED = bit(33);

/** kvm_pmu_cap: what KVM can offer on this host (kvm_init_pmu_capability), with enable_pmu. */
export interface KvmPmuCap {
  /** enable_pmu after kvm_init_pmu_capability: false leaves every vCPU without a vPMU. */
  readonly enablePmu: boolean;
  readonly version: number;
  readonly numCountersGp: number;
  readonly numCountersFixed: number;
  readonly bitWidthGp: number;
  readonly bitWidthFixed: number;
  readonly eventsMaskLen: number;
}

/** kvm_init_pmu_capability: the host's PMU as perf reports it, version capped at 2. */
export function kvm_init_pmu_capability(host: Profile): KvmPmuCap {
  // Intel: no vPMU without an architectural host PMU with GP counters; the caps are then all zero.
  if (host.version === 0 || host.nGP === 0)
    return { enablePmu: false, version: 0, numCountersGp: 0, numCountersFixed: 0, bitWidthGp: 0, bitWidthFixed: 0, eventsMaskLen: 0 };
  return {
    enablePmu: true,
    version: Math.min(host.version, 2),
    numCountersGp: Math.min(host.nGP, KVM_MAX_NR_INTEL_GP_COUNTERS),
    numCountersFixed: Math.min(host.nFixedContig, KVM_MAX_NR_INTEL_FIXED_COUTNERS),
    bitWidthGp: host.gpWidth,
    bitWidthFixed: host.fixedWidth,
    eventsMaskLen: host.evLen,
  };
}

export function newKvmPmu(): KvmPmu {
  const pmu: KvmPmu = {
    version: 0,
    nrArchGpCounters: 0,
    nrArchFixedCounters: 0,
    availableEventTypes: 0,
    counterBitmaskGp: 0n,
    counterBitmaskFixed: 0n,
    globalCtrl: 0n,
    globalStatus: 0n,
    fixedCtrCtrl: 0n,
    globalCtrlRsvd: ~0n,
    globalStatusRsvd: ~0n,
    fixedCtrCtrlRsvd: ~0n,
    reservedBits: 0xffff_ffff_0020_0000n,
    rawEventMask: X86_RAW_EVENT_MASK,
    gp: [],
    fixed: [],
    reprogramPmi: 0n,
    allValidPmcIdx: 0n,
    pmcInUse: 0n,
    pmcCountingInstructions: 0n,
    pmcCountingBranches: 0n,
    eventCount: 0,
    needCleanup: false,
  };
  return pmu;
}

/** kvm_pmu_init + intel_pmu_init: the PMC array and the fixed counters' generic encodings. */
export function kvm_pmu_init(pmu: KvmPmu): void {
  for (let i = 0; i < KVM_MAX_NR_INTEL_GP_COUNTERS; i++) pmu.gp.push(newPmc(i, 'gp'));
  // intel_get_fixed_pmc_eventsel: instructions, cycles, ref cycles (perf's REF_CPU_CYCLES pseudo-encoding).
  const fixedEvents = [0x00c0n, 0x003cn, 0x0300n];
  for (let i = 0; i < KVM_MAX_NR_INTEL_FIXED_COUTNERS; i++) {
    const pmc = newPmc(KVM_FIXED_PMC_BASE_IDX + i, 'fixed');
    pmc.eventsel = fixedEvents[i]!;
    pmu.fixed.push(pmc);
  }
}

export function pmc_bitmask(vcpu: KvmVcpuState, pmc: KvmPmc): bigint {
  return pmc.type === 'gp' ? vcpu.pmu.counterBitmaskGp : vcpu.pmu.counterBitmaskFixed;
}

/** The valid PMCs, in kvm_for_each_pmc order (GP then fixed). */
export function validPmcs(pmu: KvmPmu): KvmPmc[] {
  return [...pmu.gp.slice(0, pmu.nrArchGpCounters), ...pmu.fixed.slice(0, pmu.nrArchFixedCounters)];
}

/** pmc_read_counter: base + emulated + what the perf event counted, masked. */
export function pmc_read_counter(vcpu: KvmVcpuState, pmc: KvmPmc): bigint {
  let c = pmc.counter + pmc.emulatedCounter;
  if (pmc.perfEvent !== null && !pmc.isPaused) {
    vcpu.cost.perfCalls++;
    c += vcpu.host.perf_event_read_value(pmc.perfEvent);
  }
  return c & pmc_bitmask(vcpu, pmc);
}

/** get_sample_period: the events left before the guest counter overflows. */
export function get_sample_period(vcpu: KvmVcpuState, pmc: KvmPmc, counterValue: bigint): bigint {
  const mask = pmc_bitmask(vcpu, pmc);
  const p = -counterValue & mask;
  return p === 0n ? mask + 1n : p;
}

/** is_sampling_event: a counting event (sample_period 0) has no period to recalibrate. */
function is_sampling_event(ev: PerfEvent): boolean {
  return ev.attr.samplePeriod !== 0n;
}

/** pmc_update_sample_period. */
function pmc_update_sample_period(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perfEvent === null || pmc.isPaused || !is_sampling_event(pmc.perfEvent)) return;
  vcpu.cost.perfCalls++;
  vcpu.host.perf_event_period(pmc.perfEvent, get_sample_period(vcpu, pmc, pmc.counter));
}

/** pmc_write_counter: offsets the base so that the read formula yields `val`. */
export function pmc_write_counter(vcpu: KvmVcpuState, pmc: KvmPmc, val: bigint): void {
  pmc.emulatedCounter = 0n;
  pmc.counter += val - pmc_read_counter(vcpu, pmc);
  pmc.counter &= pmc_bitmask(vcpu, pmc);
  pmc_update_sample_period(vcpu, pmc);
}

/** pmc_release_perf_event. */
export function pmc_release_perf_event(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perfEvent === null) return;
  vcpu.cost.perfReleases++;
  vcpu.host.perf_event_release_kernel(pmc.perfEvent);
  pmc.perfEvent = null;
  pmc.currentConfig = 0n;
  vcpu.pmu.eventCount--;
}

/** pmc_stop_counter: folds the count into the base and releases the event. */
export function pmc_stop_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perfEvent === null) return;
  pmc.counter = pmc_read_counter(vcpu, pmc);
  pmc_release_perf_event(vcpu, pmc);
}

/** pmc_pause_counter: folds perf and emulated counts; true iff emulated events wrapped it. */
export function pmc_pause_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const mask = pmc_bitmask(vcpu, pmc);
  let counter = pmc.counter;
  if (pmc.perfEvent !== null && !pmc.isPaused) {
    vcpu.cost.perfCalls++;
    counter += vcpu.host.perf_event_pause(pmc.perfEvent, true);
  }
  const prev = counter & mask;
  counter += pmc.emulatedCounter;
  pmc.counter = counter & mask;
  pmc.emulatedCounter = 0n;
  pmc.isPaused = true;
  return pmc.counter < prev;
}

/** pmc_resume_counter: re-arms the period and re-enables the existing event. */
function pmc_resume_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (pmc.perfEvent === null) return false;
  if (is_sampling_event(pmc.perfEvent)) {
    vcpu.cost.perfCalls++;
    if (!vcpu.host.perf_event_period(pmc.perfEvent, get_sample_period(vcpu, pmc, pmc.counter))) return false;
  }
  vcpu.cost.perfCalls++;
  vcpu.host.perf_event_enable(pmc.perfEvent);
  pmc.isPaused = false;
  return true;
}

/** pmc_reprogram_counter: a pinned, exclude_host, task-bound sampling event on the vCPU thread. */
export function pmc_reprogram_counter(
  vcpu: KvmVcpuState,
  pmc: KvmPmc,
  config: bigint,
  excludeUser: boolean,
  excludeKernel: boolean,
  intr: boolean,
): boolean {
  let samplePeriod = get_sample_period(vcpu, pmc, pmc.counter);
  // IN_TXCP takes no sample period: a counting event at least allocates.
  if ((config & HSW_IN_TX_CHECKPOINTED) !== 0n && vcpu.host.profile.tsx) samplePeriod = 0n;
  vcpu.cost.perfCreates++;
  const ev = vcpu.host.perf_event_create_kernel_counter(
    attr({ config, pinned: true, excludeHost: true, excludeUser, excludeKernel, samplePeriod }),
    { task: vcpu.task },
    () => kvm_perf_overflow(vcpu, pmc),
  );
  if ('error' in ev) return false; // pmc->intr keeps the value of the last event created
  pmc.perfEvent = ev;
  vcpu.pmu.eventCount++;
  pmc.isPaused = false;
  pmc.intr = intr;
  return true;
}

/** kvm_pmu_has_perf_global_ctrl. */
function kvm_pmu_has_perf_global_ctrl(pmu: KvmPmu): boolean {
  return pmu.version > 1;
}

/** pmc_is_globally_enabled. */
export function pmc_is_globally_enabled(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const pmu = vcpu.pmu;
  return !kvm_pmu_has_perf_global_ctrl(pmu) || isSet(pmu.globalCtrl, pmc.idx);
}

/** fixed_ctrl_field. */
export function fixed_ctrl_field(ctrl: bigint, i: number): number {
  return Number((ctrl >> BigInt(4 * i)) & 0xfn);
}

/** pmc_is_locally_enabled: EN for GP counters, OS|USR for fixed ones. */
export function pmc_is_locally_enabled(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (pmc.type === 'gp') return (pmc.eventsel & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n;
  return (fixed_ctrl_field(vcpu.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX) & 3) !== 0;
}

/** pmc_is_event_allowed (check_pmu_event_filter before 2025): the VM's filter, if any. */
export function pmc_is_event_allowed(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  // Historic vendor vetoes (pmc_event_is_allowed up to 6.8); never set in the faithful port.
  const ops = vcpu.ops;
  if (ops?.pmc_is_enabled !== undefined && !ops.pmc_is_enabled(vcpu, pmc)) return false;
  if (ops?.hw_event_available !== undefined && !ops.hw_event_available(vcpu, pmc)) return false;
  const f = vcpu.kvm.pmuEventFilter;
  if (f === null) return true;
  if (pmc.type === 'gp') return is_gp_event_allowed(f, pmc.eventsel);
  return is_fixed_event_allowed(f, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
}

/** kvm_vm_ioctl_set_pmu_event_filter: install, then reprogram every PMC of every vCPU. */
export function kvm_vm_set_pmu_event_filter(kvm: KvmState, filter: KvmPmuEventFilter | null): HostAccess {
  let next: KvmX86PmuEventFilter | null = null;
  if (filter !== null) {
    const r = kvm_vm_ioctl_set_pmu_event_filter(filter);
    if ('error' in r) return { ok: false, error: r.error };
    next = r;
  }
  kvm.pmuEventFilter = next; // rcu_replace_pointer + synchronize_srcu_expedited
  for (const v of kvm.vcpus) {
    v.pmu.reprogramPmi = ~0n & lowMask(64); // atomic64_set(&pmu->__reprogram_pmi, -1ull)
    v.requests.add('PMU');
  }
  return { ok: true, value: 0n };
}

/** reprogram_counter: pause, then resume the same event or create a new one. */
export function reprogram_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const historic = vcpu.ops?.reprogram_counter; // an older kernel's version, for comparisons
  if (historic !== undefined) return historic(vcpu, pmc);
  vcpu.cost.reprograms++;
  const emulateOverflow = pmc_pause_counter(vcpu, pmc);
  if (!pmc_is_globally_enabled(vcpu, pmc) || !pmc_is_locally_enabled(vcpu, pmc) || !pmc_is_event_allowed(vcpu, pmc))
    return true; // the event stays paused, not released
  if (emulateOverflow) __kvm_perf_overflow(vcpu, pmc, false);

  let eventsel = pmc.eventsel;
  let newConfig = eventsel;
  if (pmc.type === 'fixed') {
    const ctrl = fixed_ctrl_field(vcpu.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
    if (ctrl & 1) eventsel |= ARCH_PERFMON_EVENTSEL_OS;
    if (ctrl & 2) eventsel |= ARCH_PERFMON_EVENTSEL_USR;
    if (ctrl & 8) eventsel |= ARCH_PERFMON_EVENTSEL_INT;
    newConfig = BigInt(ctrl);
  }
  if (pmc.currentConfig === newConfig && pmc_resume_counter(vcpu, pmc)) return true;
  pmc_release_perf_event(vcpu, pmc);
  pmc.currentConfig = newConfig;
  return pmc_reprogram_counter(
    vcpu,
    pmc,
    eventsel & vcpu.pmu.rawEventMask,
    (eventsel & ARCH_PERFMON_EVENTSEL_USR) === 0n,
    (eventsel & ARCH_PERFMON_EVENTSEL_OS) === 0n,
    (eventsel & ARCH_PERFMON_EVENTSEL_INT) !== 0n,
  );
}

/** kvm_pmu_request_counter_reprogram: recalc emulation at once, so the skipped WRMSR itself counts. */
export function kvm_pmu_request_counter_reprogram(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
  vcpu.pmu.reprogramPmi |= bit(pmc.idx);
  vcpu.requests.add('PMU');
}

/** reprogram_counters: every counter whose bit changed in `diff`. */
export function reprogram_counters(vcpu: KvmVcpuState, diff: bigint): void {
  if (diff === 0n) return;
  vcpu.pmu.reprogramPmi |= diff;
  vcpu.requests.add('PMU');
}

/** __kvm_perf_overflow: status bit, and a PMI request if the counter interrupts. */
export function __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, _inPmi: boolean): void {
  vcpu.pmu.globalStatus |= bit(pmc.idx);
  if (pmc.intr) vcpu.requests.add('PMI');
}

/** kvm_perf_overflow: perf's overflow handler, in host NMI context. */
export function kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  const b = bit(pmc.idx);
  // Ignore asynchronous overflows of counters already queued for reprogramming.
  if ((vcpu.pmu.reprogramPmi & b) !== 0n) return;
  vcpu.pmu.reprogramPmi |= b;
  __kvm_perf_overflow(vcpu, pmc, true);
  vcpu.requests.add('PMU');
}

/** pmc_is_event_match: edge, pin, inv and cmask are ignored; IN_TX/IN_TXCP must match (be clear). */
function pmc_is_event_match(pmc: KvmPmc, generic: bigint): boolean {
  return ((pmc.eventsel ^ generic) & AMD64_RAW_EVENT_MASK_NB) === 0n;
}

/** kvm_pmu_recalc_pmc_emulation: which PMCs count emulated instructions and branches (no filter check: it is read at emulation time). */
function kvm_pmu_recalc_pmc_emulation(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  const b = bit(pmc.idx);
  const pmu = vcpu.pmu;
  pmu.pmcCountingInstructions &= ~b;
  pmu.pmcCountingBranches &= ~b;
  if (!pmc_is_locally_enabled(vcpu, pmc)) return;
  if (pmc_is_event_match(pmc, PERF_COUNT_HW_INSTRUCTIONS)) pmu.pmcCountingInstructions |= b;
  if (pmc_is_event_match(pmc, PERF_COUNT_HW_BRANCH_INSTRUCTIONS)) pmu.pmcCountingBranches |= b;
}

/** kvm_pmu_handle_event: KVM_REQ_PMU before VM-entry; failures retry at the next request. */
export function kvm_pmu_handle_event(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  const snapshot = pmu.reprogramPmi;
  pmu.reprogramPmi &= ~snapshot;
  for (const pmc of validPmcs(pmu)) {
    if ((snapshot & bit(pmc.idx)) === 0n) continue;
    if (!reprogram_counter(vcpu, pmc)) pmu.reprogramPmi |= bit(pmc.idx); // retried, no new request
  }
  if (pmu.needCleanup) kvm_pmu_cleanup(vcpu);
  for (const pmc of validPmcs(pmu)) if ((snapshot & bit(pmc.idx)) !== 0n) kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
}

/** kvm_pmu_trigger_event: KVM emulated (or skipped) an instruction of this kind. */
export function kvm_pmu_trigger_event(vcpu: KvmVcpuState, counting: bigint, cpl: number): void {
  const pmu = vcpu.pmu;
  let mask = counting;
  if (kvm_pmu_has_perf_global_ctrl(pmu)) mask &= pmu.globalCtrl;
  for (const pmc of validPmcs(pmu)) {
    if ((mask & bit(pmc.idx)) === 0n) continue;
    if (!pmc_is_event_allowed(vcpu, pmc) || !cpl_is_matched(vcpu, pmc, cpl)) continue;
    pmc.emulatedCounter += 1n; // kvm_pmu_incr_counter
    kvm_pmu_request_counter_reprogram(vcpu, pmc);
  }
}

/** cpl_is_matched: OS for CPL 0, USR otherwise; fixed counters read their nibble. */
function cpl_is_matched(vcpu: KvmVcpuState, pmc: KvmPmc, cpl: number): boolean {
  let os: boolean;
  let usr: boolean;
  if (pmc.type === 'gp') {
    os = (pmc.eventsel & ARCH_PERFMON_EVENTSEL_OS) !== 0n;
    usr = (pmc.eventsel & ARCH_PERFMON_EVENTSEL_USR) !== 0n;
  } else {
    const f = fixed_ctrl_field(vcpu.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
    os = (f & 1) !== 0;
    usr = (f & 2) !== 0;
  }
  return cpl === 0 ? os : usr;
}

/** kvm_pmu_instruction_retired. */
export function kvm_pmu_instruction_retired(vcpu: KvmVcpuState, cpl: number): void {
  kvm_pmu_trigger_event(vcpu, vcpu.pmu.pmcCountingInstructions, cpl);
}

/** kvm_pmu_rdpmc: #GP without a vPMU, for bad ECX, and at CPL > 0 without CR4.PCE. */
export function kvm_pmu_rdpmc(vcpu: KvmVcpuState, ecx: number, cpl: number): Access {
  const pmu = vcpu.pmu;
  if (pmu.version === 0) return gp('RDPMC: no vPMU (pmu->version == 0)');
  const r = intel_rdpmc_ecx_to_pmc(vcpu, ecx);
  if (r === null) return gp(`RDPMC 0x${ecx.toString(16)}: no such counter (intel_rdpmc_ecx_to_pmc)`);
  if (!vcpu.cr4Pce && cpl !== 0) return gp(`RDPMC at CPL ${cpl} with CR4.PCE = 0`);
  return ok(pmc_read_counter(vcpu, r.pmc) & r.mask);
}

/** kvm_pmu_deliver_pmi: KVM_REQ_PMI before VM-entry; returns the vector if LVTPC accepted it. */
export function kvm_pmu_deliver_pmi(vcpu: KvmVcpuState): number | null {
  intel_pmu_deliver_pmi(vcpu);
  return kvm_apic_local_deliver_lvtpc(vcpu);
}

/** NMI_VECTOR: what a PMI delivered in NMI mode is reported as. */
export const NMI_VECTOR = 2;

/**
 * kvm_apic_local_deliver(APIC_LVTPC): dropped while masked. __apic_accept_irq accepts every
 * delivery mode but ExtINT, and an accepted PMI masks LVTPC (a16eb25b09c0, Intel-compatible guests).
 * Fixed/lowest-priority deliver the vector, NMI mode an NMI; SMI, RemoteRead, INIT and SIPI are
 * accepted but not modelled (K8).
 */
function kvm_apic_local_deliver_lvtpc(vcpu: KvmVcpuState): number | null {
  const LVT_MASKED = bit(16);
  const reg = vcpu.lvtpc;
  if ((reg & LVT_MASKED) !== 0n) return null;
  const mode = Number((reg >> 8n) & 7n);
  if (mode === 7) return null; // APIC_DM_EXTINT: not accepted, LVTPC stays unmasked
  vcpu.lvtpc = reg | LVT_MASKED;
  if (mode === 0 || mode === 1) return Number(reg & 0xffn);
  return mode === 4 ? NMI_VECTOR : null;
}

/** kvm_pmu_is_valid_msr: the common global MSRs from v2, then the vendor's. */
export function kvm_pmu_is_valid_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (
    msr === MSR_CORE_PERF_GLOBAL_STATUS ||
    msr === MSR_CORE_PERF_GLOBAL_CTRL ||
    msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL
  )
    return kvm_pmu_has_perf_global_ctrl(vcpu.pmu);
  return intel_is_valid_msr(vcpu, msr);
}

/** kvm_pmu_get_msr. */
export function kvm_pmu_get_msr(vcpu: KvmVcpuState, msr: number, hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  switch (msr) {
    case MSR_CORE_PERF_GLOBAL_STATUS:
      return ok(pmu.globalStatus);
    case MSR_CORE_PERF_GLOBAL_CTRL:
      return ok(pmu.globalCtrl);
    case MSR_CORE_PERF_GLOBAL_OVF_CTRL:
      return ok(0n);
    default:
      return intel_pmu_get_msr(vcpu, msr, hostInitiated);
  }
}

/** kvm_pmu_set_msr: returns #GP (guest) / failure (host) as upstream does. */
export function kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  // Any write to a counter's MSR keeps its perf event alive across lazy cleanup.
  const pmcIdx = msrToPmcIdx(vcpu, msr);
  if (pmcIdx !== null) pmu.pmcInUse |= bit(pmcIdx);
  switch (msr) {
    case MSR_CORE_PERF_GLOBAL_STATUS:
      if (!hostInitiated) return gp('IA32_PERF_GLOBAL_STATUS is read-only');
      if ((data & pmu.globalStatusRsvd) !== 0n) return gp('IA32_PERF_GLOBAL_STATUS: reserved bits');
      pmu.globalStatus = data;
      return ok(data);
    case MSR_CORE_PERF_GLOBAL_CTRL: {
      if ((data & pmu.globalCtrlRsvd) !== 0n) return gp('IA32_PERF_GLOBAL_CTRL: reserved bits (global_ctrl_rsvd)');
      if (pmu.globalCtrl !== data) {
        const diff = pmu.globalCtrl ^ data;
        pmu.globalCtrl = data;
        reprogram_counters(vcpu, diff);
      }
      return ok(data);
    }
    case MSR_CORE_PERF_GLOBAL_OVF_CTRL:
      if ((data & pmu.globalStatusRsvd) !== 0n) return gp('IA32_PERF_GLOBAL_OVF_CTRL: reserved bits (global_status_rsvd)');
      if (!hostInitiated) pmu.globalStatus &= ~data;
      return ok(data);
    default:
      return intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
  }
}

/** intel_msr_idx_to_pmc, for the pmc_in_use bookkeeping of kvm_pmu_set_msr: not the IA32_PMCx aliases. */
function msrToPmcIdx(vcpu: KvmVcpuState, msr: number): number | null {
  const pmu = vcpu.pmu;
  for (const base of [0xc1, 0x186]) {
    const i = msr - base;
    if (i >= 0 && i < pmu.nrArchGpCounters) return i;
  }
  const f = msr - 0x309;
  if (f >= 0 && f < pmu.nrArchFixedCounters) return KVM_FIXED_PMC_BASE_IDX + f;
  return null;
}

/** kvm_pmu_reset: stop every counter and zero the architectural state. */
export function kvm_pmu_reset(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.needCleanup = false;
  pmu.reprogramPmi = 0n;
  for (const pmc of validPmcs(pmu)) {
    pmc_stop_counter(vcpu, pmc);
    pmc.counter = 0n;
    pmc.emulatedCounter = 0n;
    if (pmc.type === 'gp') pmc.eventsel = 0n;
  }
  pmu.fixedCtrCtrl = 0n;
  pmu.globalCtrl = 0n;
  pmu.globalStatus = 0n;
  intel_pmu_reset(vcpu);
}

/** kvm_pmu_refresh: before the first KVM_RUN only; reset, then derive from guest CPUID. */
export function kvm_pmu_refresh(vcpu: KvmVcpuState, cap: KvmPmuCap): void {
  if (vcpu.hasRun) throw new Error('KVM_BUG_ON: kvm_pmu_refresh after the first KVM_RUN');
  kvm_pmu_reset(vcpu);
  const pmu = vcpu.pmu;
  pmu.version = 0;
  pmu.nrArchGpCounters = 0;
  pmu.nrArchFixedCounters = 0;
  pmu.counterBitmaskGp = 0n;
  pmu.counterBitmaskFixed = 0n;
  pmu.reservedBits = 0xffff_ffff_0020_0000n;
  pmu.rawEventMask = X86_RAW_EVENT_MASK;
  pmu.globalCtrlRsvd = ~0n;
  pmu.globalStatusRsvd = ~0n;
  pmu.fixedCtrCtrlRsvd = ~0n;
  pmu.allValidPmcIdx = 0n;
  if (!cap.enablePmu) return; // kvm->arch.enable_pmu
  intel_pmu_refresh(vcpu, cap);
  // de120e1d692d: the architectural RESET value of GLOBAL_CTRL.
  if (pmu.nrArchGpCounters > 0 && kvm_pmu_has_perf_global_ctrl(pmu)) pmu.globalCtrl = lowMask(pmu.nrArchGpCounters);
  pmu.allValidPmcIdx |= lowMask(pmu.nrArchGpCounters) | (lowMask(pmu.nrArchFixedCounters) << 32n);
}

/** kvm_pmu_cleanup: lazy release of events the guest stopped using since the last reschedule. */
export function kvm_pmu_cleanup(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.needCleanup = false;
  const unused = pmu.allValidPmcIdx & ~pmu.pmcInUse;
  for (const pmc of validPmcs(pmu)) {
    if ((unused & bit(pmc.idx)) === 0n) continue;
    if (pmc.perfEvent !== null && !pmc_is_locally_enabled(vcpu, pmc)) pmc_stop_counter(vcpu, pmc);
  }
  intel_pmu_cleanup(vcpu);
  pmu.pmcInUse = 0n;
}

/** The raw image of a host-initiated access result. */
export function toHost(a: Access): HostAccess {
  return a.ok ? { ok: true, value: a.value } : { ok: false, error: a.gp };
}
