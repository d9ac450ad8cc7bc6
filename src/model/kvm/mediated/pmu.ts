/**
 * Vendor-neutral logic of the mediated vPMU: a port of the mediated paths of arch/x86/kvm/pmu.c
 * (merged for 6.20, series "KVM: x86: Add support for mediated vPMUs" v6). Guest counters are the
 * physical counters (identity mapping); KVM creates no perf events, keeps the guest's values in
 * struct kvm_pmc while the guest is out, and swaps them with perf's at every VM-entry and VM-exit
 * (kvm_mediated_pmu_load / kvm_mediated_pmu_put). kvm-vpmu.md §2.3–§2.12, §2.19.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit, lowMask } from '../../hw/bits.js';
import { ModelError } from '../../hw/errors.js';
import { fixedIndices, type Profile } from '../../hw/profile.js';
import {
  perf_load_guest_context,
  perf_load_guest_lvtpc,
  perf_put_guest_context,
  perf_put_guest_lvtpc,
} from '../../host/mediated.js';
import { is_fixed_event_allowed, is_gp_event_allowed, type KvmX86PmuEventFilter, kvm_vm_ioctl_set_pmu_event_filter } from '../emulated/filter.js';
import type { HostAccess, KvmPmuEventFilter } from '../types.js';
import {
  intel_is_valid_msr,
  intel_mediated_pmu_load,
  intel_mediated_pmu_put,
  intel_pmu_get_msr,
  intel_pmu_is_mediated_pmu_supported,
  intel_pmu_refresh,
  intel_pmu_set_msr,
  intel_pmu_write_global_ctrl,
  intel_rdpmc_ecx_to_pmc,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from './pmu_intel.js';
import {
  KVM_FIXED_PMC_BASE_IDX,
  type MediatedKvm,
  type MediatedPmc,
  type MediatedPmu,
  type MediatedVcpuState,
  newMediatedPmc,
} from './state.js';

export const MSR_CORE_PERF_GLOBAL_STATUS = 0x38e;
export const MSR_CORE_PERF_GLOBAL_CTRL = 0x38f;
export const MSR_CORE_PERF_GLOBAL_OVF_CTRL = 0x390;
export const MSR_CORE_PERF_GLOBAL_STATUS_SET = 0x391;

export const ARCH_PERFMON_EVENTSEL_USR = bit(16);
export const ARCH_PERFMON_EVENTSEL_OS = bit(17);
export const ARCH_PERFMON_EVENTSEL_INT = bit(20);
export const ARCH_PERFMON_EVENTSEL_ENABLE = bit(22);
/** X86_RAW_EVENT_MASK: event select, umask, edge, inv, cmask. */
export const X86_RAW_EVENT_MASK = 0xff84_ffffn;
export const KVM_MAX_NR_INTEL_GP_COUNTERS = 8;
export const KVM_MAX_NR_INTEL_FIXED_COUNTERS = 3;
export const PERF_COUNT_HW_INSTRUCTIONS = 0x00c0n;
export const PERF_COUNT_HW_BRANCH_INSTRUCTIONS = 0x00c4n;
const AMD64_RAW_EVENT_MASK_NB = 0xf_0000_ffffn;
/** INTEL_PMC_FIXED_RDPMC_BASE: RDPMC type 0x4000 selects the fixed counters. */
export const INTEL_PMC_FIXED_RDPMC_BASE = 0x4000_0000;

/** kvm_pmu_cap (what KVM offers guests) and kvm_host_pmu (what perf reports of the hardware). */
export interface MediatedPmuCap {
  readonly enablePmu: boolean;
  /** enable_mediated_pmu after kvm_init_pmu_capability, and why not when false. */
  readonly enableMediatedPmu: boolean;
  readonly unavailable: string | null;
  readonly version: number;
  readonly numCountersGp: number;
  readonly numCountersFixed: number;
  readonly bitWidthGp: number;
  readonly bitWidthFixed: number;
  readonly eventsMaskLen: number;
  /** kvm_host_pmu: perf_get_x86_pmu_capability, not clamped to what KVM supports. */
  readonly host: { readonly numCountersGp: number; readonly numCountersFixed: number; readonly bitWidthGp: number; readonly bitWidthFixed: number };
}

/** kvm_init_pmu_capability: host caps, version capped at 2 even with the mediated PMU; enable_mediated_pmu forced off without vendor support. */
export function kvm_init_pmu_capability(p: Profile): MediatedPmuCap {
  const fixed = fixedIndices(p);
  // perf_get_x86_pmu_capability: num_counters_fixed is fls() of the fixed-counter mask (K15).
  const host = {
    numCountersGp: p.nGP,
    numCountersFixed: fixed.length === 0 ? 0 : Math.max(...fixed) + 1,
    bitWidthGp: p.gpWidth,
    bitWidthFixed: p.fixedWidth,
  };
  const enablePmu = p.version !== 0 && p.nGP !== 0;
  const why = !enablePmu ? `${p.name} has no architectural PMU with GP counters (enable_pmu off)` : intel_pmu_is_mediated_pmu_supported(p);
  return {
    enablePmu,
    enableMediatedPmu: why === null,
    unavailable: why,
    version: enablePmu ? Math.min(p.version, 2) : 0,
    numCountersGp: enablePmu ? Math.min(p.nGP, KVM_MAX_NR_INTEL_GP_COUNTERS) : 0,
    numCountersFixed: enablePmu ? Math.min(p.nFixedContig, KVM_MAX_NR_INTEL_FIXED_COUNTERS) : 0,
    bitWidthGp: enablePmu ? p.gpWidth : 0,
    bitWidthFixed: enablePmu ? p.fixedWidth : 0,
    eventsMaskLen: enablePmu ? p.evLen : 0,
    host,
  };
}

export function newMediatedPmu(): MediatedPmu {
  return {
    version: 0,
    nrArchGpCounters: 0,
    nrArchFixedCounters: 0,
    availableEventTypes: 0,
    counterBitmaskGp: 0n,
    counterBitmaskFixed: 0n,
    globalCtrl: 0n,
    globalStatus: 0n,
    fixedCtrCtrl: 0n,
    fixedCtrCtrlHw: 0n,
    globalCtrlRsvd: ~0n,
    globalStatusRsvd: ~0n,
    fixedCtrCtrlRsvd: ~0n,
    reservedBits: 0xffff_ffff_0020_0000n,
    rawEventMask: X86_RAW_EVENT_MASK,
    gp: [],
    fixed: [],
    reprogramPmi: 0n,
    allValidPmcIdx: 0n,
    pmcCountingInstructions: 0n,
    pmcCountingBranches: 0n,
  };
}

/** kvm_pmu_init + intel_pmu_init: the PMC array; fixed counters carry perf's generic encodings. */
export function kvm_pmu_init(pmu: MediatedPmu): void {
  for (let i = 0; i < KVM_MAX_NR_INTEL_GP_COUNTERS; i++) pmu.gp.push(newMediatedPmc(i, 'gp'));
  const fixedEvents = [0x00c0n, 0x003cn, 0x0300n];
  for (let i = 0; i < KVM_MAX_NR_INTEL_FIXED_COUNTERS; i++) {
    const pmc = newMediatedPmc(KVM_FIXED_PMC_BASE_IDX + i, 'fixed');
    pmc.eventsel = fixedEvents[i]!;
    pmu.fixed.push(pmc);
  }
}

export function pmc_bitmask(vcpu: MediatedVcpuState, pmc: MediatedPmc): bigint {
  return pmc.type === 'gp' ? vcpu.pmu.counterBitmaskGp : vcpu.pmu.counterBitmaskFixed;
}

/** The valid PMCs, in kvm_for_each_pmc order. */
export function validPmcs(pmu: MediatedPmu): MediatedPmc[] {
  return [...pmu.gp.slice(0, pmu.nrArchGpCounters), ...pmu.fixed.slice(0, pmu.nrArchFixedCounters)];
}

/** pmc_read_counter, mediated: the stored value is the guest's (valid while the PMU is put). */
export function pmc_read_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): bigint {
  if (vcpu.pmuLoaded) throw new ModelError('pmc_read_counter while the guest PMU is loaded: hardware holds the value');
  return pmc.counter & pmc_bitmask(vcpu, pmc);
}

/** pmc_write_counter, mediated: store the masked value; the next load writes it to hardware. */
export function pmc_write_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc, val: bigint): void {
  if (vcpu.pmuLoaded) throw new ModelError('pmc_write_counter while the guest PMU is loaded');
  pmc.counter = val & pmc_bitmask(vcpu, pmc);
}

/** kvm_pmu_has_perf_global_ctrl. */
export function kvm_pmu_has_perf_global_ctrl(pmu: MediatedPmu): boolean {
  return pmu.version > 1;
}

/** fixed_ctrl_field. */
export function fixed_ctrl_field(ctrl: bigint, i: number): number {
  return Number((ctrl >> BigInt(4 * i)) & 0xfn);
}

/** pmc_is_locally_enabled: EN for GP counters, OS|USR for fixed ones. */
export function pmc_is_locally_enabled(vcpu: MediatedVcpuState, pmc: MediatedPmc): boolean {
  if (pmc.type === 'gp') return (pmc.eventsel & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n;
  return (fixed_ctrl_field(vcpu.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX) & 3) !== 0;
}

/** pmc_is_event_allowed: the VM's filter, if any. */
function pmc_is_event_allowed(vcpu: MediatedVcpuState, pmc: MediatedPmc): boolean {
  const f = vcpu.kvm.pmuEventFilter;
  if (f === null) return true;
  if (pmc.type === 'gp') return is_gp_event_allowed(f, pmc.eventsel);
  return is_fixed_event_allowed(f, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
}

/** kvm_vm_ioctl_set_pmu_event_filter: install, then reprogram every PMC of every vCPU. */
export function kvm_vm_set_pmu_event_filter(kvm: MediatedKvm, filter: KvmPmuEventFilter | null): HostAccess {
  let next: KvmX86PmuEventFilter | null = null;
  if (filter !== null) {
    const r = kvm_vm_ioctl_set_pmu_event_filter(filter);
    if ('error' in r) return { ok: false, error: r.error };
    next = r;
  }
  kvm.pmuEventFilter = next;
  for (const v of kvm.vcpus) {
    v.pmu.reprogramPmi = lowMask(64);
    v.requests.add('PMU');
  }
  return { ok: true, value: 0n };
}

/**
 * kvm_mediated_pmu_refresh_event_filter: the filter clears ENABLE in eventsel_hw, or the fixed
 * counter's field in fixed_ctr_ctrl_hw; the guest still reads back what it wrote.
 */
function kvm_mediated_pmu_refresh_event_filter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  const allowed = pmc_is_event_allowed(vcpu, pmc);
  const pmu = vcpu.pmu;
  if (pmc.type === 'gp') {
    pmc.eventselHw = allowed ? pmc.eventsel : pmc.eventsel & ~ARCH_PERFMON_EVENTSEL_ENABLE;
    return;
  }
  const field = 0xfn << BigInt(4 * (pmc.idx - KVM_FIXED_PMC_BASE_IDX));
  pmu.fixedCtrCtrlHw = allowed ? (pmu.fixedCtrCtrlHw & ~field) | (pmu.fixedCtrCtrl & field) : pmu.fixedCtrCtrlHw & ~field;
}

/** reprogram_counter, mediated branch: only the filter shadows change; no perf event. */
function reprogram_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  kvm_mediated_pmu_refresh_event_filter(vcpu, pmc);
  vcpu.cost.reprograms++;
}

/** kvm_pmu_request_counter_reprogram: recalc emulation at once, so the skipped WRMSR itself counts. */
export function kvm_pmu_request_counter_reprogram(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
  vcpu.pmu.reprogramPmi |= bit(pmc.idx);
  vcpu.requests.add('PMU');
}

/** reprogram_counters: every counter whose GLOBAL_CTRL bit changed. */
function reprogram_counters(vcpu: MediatedVcpuState, diff: bigint): void {
  if (diff === 0n) return;
  vcpu.pmu.reprogramPmi |= diff;
  vcpu.requests.add('PMU');
}

/** pmc_is_event_match: event select and umask (edge, pin, inv, cmask ignored). */
function pmc_is_event_match(pmc: MediatedPmc, generic: bigint): boolean {
  return ((pmc.eventsel ^ generic) & AMD64_RAW_EVENT_MASK_NB) === 0n;
}

/** kvm_pmu_recalc_pmc_emulation: which PMCs count emulated instructions and branches. */
function kvm_pmu_recalc_pmc_emulation(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  const b = bit(pmc.idx);
  const pmu = vcpu.pmu;
  pmu.pmcCountingInstructions &= ~b;
  pmu.pmcCountingBranches &= ~b;
  if (!pmc_is_locally_enabled(vcpu, pmc)) return;
  if (pmc_is_event_match(pmc, PERF_COUNT_HW_INSTRUCTIONS)) pmu.pmcCountingInstructions |= b;
  if (pmc_is_event_match(pmc, PERF_COUNT_HW_BRANCH_INSTRUCTIONS)) pmu.pmcCountingBranches |= b;
}

/** kvm_pmu_handle_event: KVM_REQ_PMU before VM-entry; mediated reprogramming cannot fail. */
export function kvm_pmu_handle_event(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  const snapshot = pmu.reprogramPmi;
  pmu.reprogramPmi &= ~snapshot;
  for (const pmc of validPmcs(pmu)) if ((snapshot & bit(pmc.idx)) !== 0n) reprogram_counter(vcpu, pmc);
  for (const pmc of validPmcs(pmu)) if ((snapshot & bit(pmc.idx)) !== 0n) kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
}

/** pmc_pmi_enabled: the INT bit, or the fixed field's PMI bit (the guest's values, not the _hw shadows). */
function pmc_pmi_enabled(vcpu: MediatedVcpuState, pmc: MediatedPmc): boolean {
  if (pmc.type === 'gp') return (pmc.eventsel & ARCH_PERFMON_EVENTSEL_INT) !== 0n;
  return (fixed_ctrl_field(vcpu.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX) & 8) !== 0;
}

/** kvm_pmu_incr_counter, mediated: bump the stored counter; on wrap to 0 set the status bit and request a PMI. */
function kvm_pmu_incr_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  pmc.counter = (pmc.counter + 1n) & pmc_bitmask(vcpu, pmc);
  if (pmc.counter !== 0n) return;
  vcpu.pmu.globalStatus |= bit(pmc.idx);
  if (pmc_pmi_enabled(vcpu, pmc)) vcpu.requests.add('PMI');
}

/** cpl_is_matched: OS for CPL 0, USR otherwise. */
function cpl_is_matched(vcpu: MediatedVcpuState, pmc: MediatedPmc, cpl: number): boolean {
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

/** kvm_pmu_trigger_event: KVM emulated (or skipped) an instruction; counted in software, the PMU being put. */
export function kvm_pmu_trigger_event(vcpu: MediatedVcpuState, counting: bigint, cpl: number): void {
  const pmu = vcpu.pmu;
  let mask = counting;
  if (kvm_pmu_has_perf_global_ctrl(pmu)) mask &= pmu.globalCtrl;
  for (const pmc of validPmcs(pmu)) {
    if ((mask & bit(pmc.idx)) === 0n) continue;
    if (!pmc_is_event_allowed(vcpu, pmc) || !cpl_is_matched(vcpu, pmc, cpl)) continue;
    kvm_pmu_incr_counter(vcpu, pmc);
  }
}

/** kvm_pmu_instruction_retired. */
export function kvm_pmu_instruction_retired(vcpu: MediatedVcpuState, cpl: number): void {
  kvm_pmu_trigger_event(vcpu, vcpu.pmu.pmcCountingInstructions, cpl);
}

/** kvm_pmu_rdpmc: the intercepted RDPMC; #GP without a vPMU, for bad ECX, at CPL > 0 without CR4.PCE. */
export function kvm_pmu_rdpmc(vcpu: MediatedVcpuState, ecx: number, cpl: number): Access {
  const pmu = vcpu.pmu;
  if (pmu.version === 0) return gp('RDPMC: no vPMU (pmu->version == 0)');
  const r = intel_rdpmc_ecx_to_pmc(vcpu, ecx);
  if (r === null) return gp(`RDPMC 0x${ecx.toString(16)}: no such counter (intel_rdpmc_ecx_to_pmc)`);
  if (!vcpu.cr4Pce && cpl !== 0) return gp(`RDPMC at CPL ${cpl} with CR4.PCE = 0`);
  return ok(pmc_read_counter(vcpu, r.pmc) & r.mask);
}

/** NMI_VECTOR: what a PMI delivered in NMI mode is reported as (K8). */
export const NMI_VECTOR = 2;

/** kvm_pmu_deliver_pmi: KVM_REQ_PMI before VM-entry; no freeze emulation (no guest LBR in mediated mode). */
export function kvm_pmu_deliver_pmi(vcpu: MediatedVcpuState): number | null {
  return kvm_apic_local_deliver_lvtpc(vcpu);
}

/** kvm_apic_local_deliver(APIC_LVTPC): dropped while masked; an accepted PMI masks LVTPC (K8). */
function kvm_apic_local_deliver_lvtpc(vcpu: MediatedVcpuState): number | null {
  const LVT_MASKED = bit(16);
  const reg = vcpu.lvtpc;
  if ((reg & LVT_MASKED) !== 0n) return null;
  const mode = Number((reg >> 8n) & 7n);
  if (mode === 7) return null; // ExtINT is not accepted
  vcpu.lvtpc = reg | LVT_MASKED;
  if (mode === 0 || mode === 1) return Number(reg & 0xffn);
  return mode === 4 ? NMI_VECTOR : null;
}

/** kvm_handle_guest_mediated_pmi: the PERF_GUEST_MEDIATED_PMI_VECTOR handler; status comes from hardware at put. */
export function kvm_handle_guest_mediated_pmi(vcpu: MediatedVcpuState): void {
  vcpu.requests.add('PMI');
}

/** kvm_pmu_is_valid_msr: the global MSRs from v2, then the vendor's (no STATUS_SET/INUSE: K10). */
export function kvm_pmu_is_valid_msr(vcpu: MediatedVcpuState, msr: number): boolean {
  if (msr === MSR_CORE_PERF_GLOBAL_STATUS || msr === MSR_CORE_PERF_GLOBAL_CTRL || msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL)
    return kvm_pmu_has_perf_global_ctrl(vcpu.pmu);
  return intel_is_valid_msr(vcpu, msr);
}

/** kvm_pmu_get_msr: an intercepted (or host-initiated) read, from KVM's copy. */
export function kvm_pmu_get_msr(vcpu: MediatedVcpuState, msr: number, hostInitiated: boolean): Access {
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

/** kvm_pmu_set_msr: mediated GLOBAL_CTRL writes also go to the VMCS (write_global_ctrl). */
export function kvm_pmu_set_msr(vcpu: MediatedVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  switch (msr) {
    case MSR_CORE_PERF_GLOBAL_STATUS:
      if (!hostInitiated) return gp('IA32_PERF_GLOBAL_STATUS is read-only');
      if ((data & pmu.globalStatusRsvd) !== 0n) return gp('IA32_PERF_GLOBAL_STATUS: reserved bits');
      pmu.globalStatus = data; // loaded into hardware through STATUS_SET at the next load
      return ok(data);
    case MSR_CORE_PERF_GLOBAL_CTRL: {
      if ((data & pmu.globalCtrlRsvd) !== 0n) return gp('IA32_PERF_GLOBAL_CTRL: reserved bits (global_ctrl_rsvd)');
      if (pmu.globalCtrl !== data) {
        const diff = pmu.globalCtrl ^ data;
        pmu.globalCtrl = data;
        reprogram_counters(vcpu, diff);
      }
      intel_pmu_write_global_ctrl(vcpu, data);
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

/** kvm_pmu_reset: zero the architectural state (no perf events to stop). */
export function kvm_pmu_reset(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.reprogramPmi = 0n;
  for (const pmc of validPmcs(pmu)) {
    pmc.counter = 0n;
    if (pmc.type === 'gp') {
      pmc.eventsel = 0n;
      pmc.eventselHw = 0n;
    }
  }
  pmu.fixedCtrCtrl = 0n;
  pmu.fixedCtrCtrlHw = 0n;
  pmu.globalCtrl = 0n;
  pmu.globalStatus = 0n;
}

/** kvm_pmu_refresh: before the first KVM_RUN; mediated sets the RESET GLOBAL_CTRL even for v1 and pushes it to the VMCS. */
export function kvm_pmu_refresh(vcpu: MediatedVcpuState, cap: MediatedPmuCap): void {
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
  if (!cap.enablePmu) return;
  intel_pmu_refresh(vcpu, cap);
  if (pmu.nrArchGpCounters > 0) pmu.globalCtrl = lowMask(pmu.nrArchGpCounters); // has_perf_global_ctrl || mediated
  intel_pmu_write_global_ctrl(vcpu, pmu.globalCtrl);
  pmu.allValidPmcIdx |= lowMask(pmu.nrArchGpCounters) | (lowMask(pmu.nrArchFixedCounters) << 32n);
}

// ---- interception decisions ----

/** kvm_need_any_pmc_intercept: unless the guest has exactly the host's counters (perf's count, not KVM's). */
function kvm_need_any_pmc_intercept(vcpu: MediatedVcpuState, cap: MediatedPmuCap): boolean {
  const pmu = vcpu.pmu;
  return pmu.nrArchGpCounters !== cap.host.numCountersGp || pmu.nrArchFixedCounters !== cap.host.numCountersFixed;
}

/** kvm_need_perf_global_ctrl_intercept: GLOBAL_CTRL/STATUS/OVF_CTRL pass through only for a full v2+ guest PMU. */
export function kvm_need_perf_global_ctrl_intercept(vcpu: MediatedVcpuState, cap: MediatedPmuCap): boolean {
  return kvm_need_any_pmc_intercept(vcpu, cap) || !kvm_pmu_has_perf_global_ctrl(vcpu.pmu);
}

/** kvm_need_rdpmc_intercept: unexposed counters are not zeroed at load, so RDPMC must exit unless the guest sees every counter at full width (bugs.md #14). */
export function kvm_need_rdpmc_intercept(vcpu: MediatedVcpuState, cap: MediatedPmuCap): boolean {
  const pmu = vcpu.pmu;
  return (
    kvm_need_any_pmc_intercept(vcpu, cap) ||
    pmu.counterBitmaskGp !== lowMask(cap.host.bitWidthGp) ||
    pmu.counterBitmaskFixed !== lowMask(cap.host.bitWidthFixed)
  ); // enable_vmware_backdoor is not modelled (K2)
}

// ---- the world switch ----

function hwOf(vcpu: MediatedVcpuState) {
  return vcpu.host.pcpu(vcpu.cpu).hw;
}

/** wrmsrq by KVM in the world switch: counted, and a fault is a port bug. */
export function kvm_wrmsr(vcpu: MediatedVcpuState, msr: number, v: bigint): void {
  vcpu.cost.entryExitMsrAccesses++;
  const r = hwOf(vcpu).wrmsr(msr, v);
  if (!r.ok) throw new ModelError(`KVM: WRMSR 0x${msr.toString(16)} <- 0x${v.toString(16)} faulted: ${r.gp}`);
}

/** rdmsrq by KVM in the world switch. */
export function kvm_rdmsr(vcpu: MediatedVcpuState, msr: number): bigint {
  vcpu.cost.entryExitMsrAccesses++;
  const r = hwOf(vcpu).rdmsr(msr);
  if (!r.ok) throw new ModelError(`KVM: RDMSR 0x${msr.toString(16)} faulted: ${r.gp}`);
  return r.value;
}

/** rdpmc by KVM in the world switch (counted like an MSR access). */
function kvm_rdpmc(vcpu: MediatedVcpuState, ecx: number): bigint {
  vcpu.cost.entryExitMsrAccesses++;
  const r = hwOf(vcpu).rdpmc(ecx, 0);
  if (!r.ok) throw new ModelError(`KVM: RDPMC 0x${ecx.toString(16)} faulted: ${r.gp}`);
  return r.value;
}

/** kvm_pmu_load_guest_pmcs: counters (only where hardware differs) and selectors; unexposed ones are left alone. */
function kvm_pmu_load_guest_pmcs(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  for (let i = 0; i < pmu.nrArchGpCounters; i++) {
    const pmc = pmu.gp[i]!;
    if (pmc.counter !== kvm_rdpmc(vcpu, i)) kvm_wrmsr(vcpu, MSR_IA32_PMC0 + i, pmc.counter);
    kvm_wrmsr(vcpu, MSR_P6_EVNTSEL0 + i, pmc.eventselHw);
  }
  for (let i = 0; i < pmu.nrArchFixedCounters; i++) {
    const pmc = pmu.fixed[i]!;
    if (pmc.counter !== kvm_rdpmc(vcpu, INTEL_PMC_FIXED_RDPMC_BASE | i)) kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR0 + i, pmc.counter);
  }
}

/** kvm_mediated_pmu_load: perf steps aside, counters off, PMIs to KVM's vector, guest counters and controls in. */
export function kvm_mediated_pmu_load(vcpu: MediatedVcpuState): void {
  if (vcpu.pmuLoaded) throw new ModelError('kvm_mediated_pmu_load: already loaded');
  perf_load_guest_context(vcpu.host, vcpu.cpu);
  // Selectors are in flux: nothing may count until VM-entry loads the guest's GLOBAL_CTRL.
  kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
  vcpu.cost.entryExitMsrAccesses++; // perf_load_guest_lvtpc's APIC write
  perf_load_guest_lvtpc(vcpu.host, vcpu.cpu, vcpu.lvtpc);
  kvm_pmu_load_guest_pmcs(vcpu);
  intel_mediated_pmu_load(vcpu);
  vcpu.pmuLoaded = true;
}

/** kvm_pmu_put_guest_pmcs: save each exposed counter, zero non-zero counters and selectors before perf returns. */
function kvm_pmu_put_guest_pmcs(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  for (let i = 0; i < pmu.nrArchGpCounters; i++) {
    const pmc = pmu.gp[i]!;
    pmc.counter = kvm_rdpmc(vcpu, i);
    if (pmc.counter !== 0n) kvm_wrmsr(vcpu, MSR_IA32_PMC0 + i, 0n);
    if (pmc.eventselHw !== 0n) kvm_wrmsr(vcpu, MSR_P6_EVNTSEL0 + i, 0n);
  }
  for (let i = 0; i < pmu.nrArchFixedCounters; i++) {
    const pmc = pmu.fixed[i]!;
    pmc.counter = kvm_rdpmc(vcpu, INTEL_PMC_FIXED_RDPMC_BASE | i);
    if (pmc.counter !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR0 + i, 0n);
  }
}

/** kvm_mediated_pmu_put: the reverse order: status and fixed controls, counters, LVTPC, then perf's context. */
export function kvm_mediated_pmu_put(vcpu: MediatedVcpuState): void {
  if (!vcpu.pmuLoaded) throw new ModelError('kvm_mediated_pmu_put: not loaded');
  intel_mediated_pmu_put(vcpu); // GLOBAL_CTRL was saved and cleared by VM-exit
  vcpu.pmuLoaded = false;
  kvm_pmu_put_guest_pmcs(vcpu);
  vcpu.cost.entryExitMsrAccesses++; // perf_put_guest_lvtpc's APIC write
  perf_put_guest_lvtpc(vcpu.host, vcpu.cpu);
  perf_put_guest_context(vcpu.host, vcpu.cpu);
}
