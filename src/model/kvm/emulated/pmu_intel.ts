/**
 * Intel specifics of the perf-backed vPMU: a port of arch/x86/kvm/vmx/pmu_intel.c (counters,
 * FIXED_CTR_CTRL, refresh, RDPMC decoding, guest LBR event and LBR MSR proxying, legacy
 * freeze-LBRs-on-PMI). kvm-vpmu.md §2.4, §2.6, §2.12, §2.13.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit, lowMask, signExtend } from '../../hw/bits.js';
import { attr } from '../../host/types.js';
import {
  fixed_ctrl_field,
  type KvmPmuCap,
  kvm_pmu_request_counter_reprogram,
  pmc_read_counter,
  pmc_write_counter,
} from './pmu.js';
import { INTEL_PMC_IDX_FIXED_VLBR, type KvmPmc, type KvmVcpuState } from './state.js';

export const MSR_IA32_PERFCTR0 = 0xc1;
export const MSR_IA32_PMC0 = 0x4c1;
export const MSR_P6_EVNTSEL0 = 0x186;
export const MSR_CORE_PERF_FIXED_CTR0 = 0x309;
export const MSR_CORE_PERF_FIXED_CTR_CTRL = 0x38d;
export const MSR_LBR_SELECT = 0x1c8;
export const MSR_LBR_TOS = 0x1c9;
export const DEBUGCTLMSR_LBR = bit(0);
export const DEBUGCTLMSR_FREEZE_LBRS_ON_PMI = bit(11);
const HSW_IN_TX = bit(32);
const HSW_IN_TX_CHECKPOINTED = bit(33);
export const PERF_CAP_FW_WRITES = bit(13);
export const PERF_CAP_LBR_FMT = 0x3fn;
/** INTEL_FIXED_VLBR_EVENT: the config of the guest LBR event. */
export const INTEL_FIXED_VLBR_EVENT = 0x1b00n;

/** get_gp_pmc: the GP PMC an MSR of the family at `base` addresses. */
function get_gp_pmc(vcpu: KvmVcpuState, msr: number, base: number): KvmPmc | undefined {
  const i = msr - base;
  return i >= 0 && i < vcpu.pmu.nrArchGpCounters ? vcpu.pmu.gp[i] : undefined;
}

/** get_fixed_pmc. */
function get_fixed_pmc(vcpu: KvmVcpuState, msr: number): KvmPmc | undefined {
  const i = msr - MSR_CORE_PERF_FIXED_CTR0;
  return i >= 0 && i < vcpu.pmu.nrArchFixedCounters ? vcpu.pmu.fixed[i] : undefined;
}

/** vcpu_get_perf_capabilities: PERF_CAPABILITIES counts only while guest CPUID has PDCM. */
export function vcpu_get_perf_capabilities(vcpu: KvmVcpuState): bigint {
  return vcpu.cpuid.pdcm ? vcpu.perfCapabilities : 0n;
}

/** fw_writes_is_enabled + get_fw_gp_pmc: the IA32_PMCx aliases need PERF_CAPABILITIES.FW_WRITES. */
function get_fw_gp_pmc(vcpu: KvmVcpuState, msr: number): KvmPmc | undefined {
  return (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_FW_WRITES) !== 0n ? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0) : undefined;
}

/** cpuid_model_is_consistent: legacy LBRs need the guest's family/model to be the host's. */
function cpuid_model_is_consistent(vcpu: KvmVcpuState): boolean {
  const h = vcpu.host.profile;
  return vcpu.cpuid.family === h.family && vcpu.cpuid.model === h.model;
}

/** intel_pmu_refresh: the guest PMU from guest CPUID.0AH and PERF_CAPABILITIES, clamped to the host. */
export function intel_pmu_refresh(vcpu: KvmVcpuState, cap: KvmPmuCap): void {
  const pmu = vcpu.pmu;
  const lbr = vcpu.lbr;
  lbr.nr = 0;
  const { eax, ebx, edx } = vcpu.cpuid.leaf0a;
  pmu.version = eax & 0xff; // not clamped to what KVM advertises (kvm-vpmu.md §2.4)
  if (pmu.version === 0) return;
  pmu.nrArchGpCounters = Math.min((eax >>> 8) & 0xff, cap.numCountersGp);
  const gpWidth = Math.min((eax >>> 16) & 0xff, cap.bitWidthGp);
  pmu.counterBitmaskGp = lowMask(gpWidth);
  const maskLen = Math.min((eax >>> 24) & 0xff, cap.eventsMaskLen);
  pmu.availableEventTypes = ~ebx & ((1 << maskLen) - 1);
  if (vcpu.cpuid.tsx === true && vcpu.host.profile.tsx) {
    pmu.reservedBits ^= HSW_IN_TX;
    pmu.rawEventMask |= HSW_IN_TX | HSW_IN_TX_CHECKPOINTED;
  }
  // intel_pmu_lbr_is_compatible: the records are vmx_lbr_caps, i.e. what perf manages.
  if (cpuid_model_is_consistent(vcpu) && (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_LBR_FMT) !== 0n && vcpu.lbrCaps.nr !== 0) {
    lbr.nr = vcpu.lbrCaps.nr;
    pmu.allValidPmcIdx |= bit(INTEL_PMC_IDX_FIXED_VLBR);
  }
  if (pmu.version === 1) return;
  pmu.nrArchFixedCounters = Math.min(edx & 0x1f, cap.numCountersFixed); // the v5 ECX bitmap is not consumed
  const fixedWidth = Math.min((edx >>> 5) & 0xff, cap.bitWidthFixed);
  pmu.counterBitmaskFixed = lowMask(fixedWidth);
  for (let i = 0; i < pmu.nrArchFixedCounters; i++) pmu.fixedCtrCtrlRsvd &= ~(0xbn << BigInt(4 * i));
  const counterRsvd = ~(lowMask(pmu.nrArchGpCounters) | (lowMask(pmu.nrArchFixedCounters) << 32n));
  pmu.globalCtrlRsvd = counterRsvd;
  pmu.globalStatusRsvd = pmu.globalCtrlRsvd & ~(bit(62) | bit(63));
}

/** intel_pmu_reset: also drops the guest LBR event. */
export function intel_pmu_reset(vcpu: KvmVcpuState): void {
  intel_pmu_release_guest_lbr_event(vcpu);
}

/** intel_pmu_lbr_is_enabled. */
export function intel_pmu_lbr_is_enabled(vcpu: KvmVcpuState): boolean {
  return vcpu.lbr.nr !== 0;
}

/** intel_pmu_is_valid_lbr_msr: LBR_SELECT, LBR_TOS and the records' FROM/TO/INFO (an info base of 0: none). */
export function intel_pmu_is_valid_lbr_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (!intel_pmu_lbr_is_enabled(vcpu)) return false;
  const r = vcpu.lbrCaps;
  const nr = vcpu.lbr.nr;
  const inRange = (base: number) => base !== 0 && msr >= base && msr < base + nr;
  return msr === MSR_LBR_SELECT || msr === MSR_LBR_TOS || inRange(r.from) || inRange(r.to) || inRange(r.info);
}

/** The LBR MSRs passed through while the guest LBR event owns the LBRs. */
export function lbrMsrs(vcpu: KvmVcpuState): number[] {
  if (!intel_pmu_lbr_is_enabled(vcpu)) return [];
  const r = vcpu.lbrCaps;
  const out = [MSR_LBR_SELECT, MSR_LBR_TOS];
  for (let i = 0; i < vcpu.lbr.nr; i++) {
    out.push(r.from + i, r.to + i);
    if (r.info !== 0) out.push(r.info + i);
  }
  return out;
}

/** intel_is_valid_msr (the vendor part of kvm_pmu_is_valid_msr; PEBS MSRs are not ported: K2). */
export function intel_is_valid_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return vcpu.pmu.version > 1;
  return (
    get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) !== undefined ||
    get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0) !== undefined ||
    get_fixed_pmc(vcpu, msr) !== undefined ||
    get_fw_gp_pmc(vcpu, msr) !== undefined ||
    intel_pmu_is_valid_lbr_msr(vcpu, msr)
  );
}

/** intel_pmu_get_msr. */
export function intel_pmu_get_msr(vcpu: KvmVcpuState, msr: number, _hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return ok(pmu.fixedCtrCtrl);
  const ctr = get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) ?? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0);
  if (ctr !== undefined) return ok(pmc_read_counter(vcpu, ctr) & pmu.counterBitmaskGp);
  const fixed = get_fixed_pmc(vcpu, msr);
  if (fixed !== undefined) return ok(pmc_read_counter(vcpu, fixed) & pmu.counterBitmaskFixed);
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) return ok(sel.eventsel);
  const lbr = intel_pmu_handle_lbr_msrs_access(vcpu, msr, null);
  return lbr ?? gp(`MSR 0x${msr.toString(16)}: not a vPMU MSR`);
}

/** reprogram_fixed_counters: store, and reprogram each counter whose 4-bit field changed. */
function reprogram_fixed_counters(vcpu: KvmVcpuState, data: bigint): void {
  const pmu = vcpu.pmu;
  const old = pmu.fixedCtrCtrl; // a u64 snapshot (05519c86d699)
  pmu.fixedCtrCtrl = data;
  for (let i = 0; i < pmu.nrArchFixedCounters; i++) {
    if (fixed_ctrl_field(data, i) === fixed_ctrl_field(old, i)) continue;
    const pmc = pmu.fixed[i]!;
    pmu.pmcInUse |= bit(pmc.idx);
    kvm_pmu_request_counter_reprogram(vcpu, pmc);
  }
}

/** intel_pmu_set_msr. */
export function intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, value: bigint, hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  let data = value;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) {
    if ((data & pmu.fixedCtrCtrlRsvd) !== 0n) return gp('IA32_FIXED_CTR_CTRL: reserved bits (fixed_ctr_ctrl_rsvd)');
    if (pmu.fixedCtrCtrl !== data) reprogram_fixed_counters(vcpu, data);
    return ok(data);
  }
  const ctr = get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) ?? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0);
  if (ctr !== undefined) {
    const fullWidth = msr >= MSR_IA32_PMC0;
    if (fullWidth && (data & ~pmu.counterBitmaskGp) !== 0n) return gp('IA32_PMCx: bits above the counter width');
    if (!hostInitiated && !fullWidth) data = signExtend(data & 0xffff_ffffn, 31); // (s64)(s32)data
    pmc_write_counter(vcpu, ctr, data);
    return ok(data);
  }
  const fixed = get_fixed_pmc(vcpu, msr);
  if (fixed !== undefined) {
    pmc_write_counter(vcpu, fixed, data);
    return ok(data);
  }
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) {
    let reserved = pmu.reservedBits;
    if (sel.idx === 2 && (pmu.rawEventMask & HSW_IN_TX_CHECKPOINTED) !== 0n) reserved ^= HSW_IN_TX_CHECKPOINTED;
    if ((data & reserved) !== 0n) return gp(`IA32_PERFEVTSEL${sel.idx}: reserved bits (reserved_bits)`);
    if (data !== sel.eventsel) {
      sel.eventsel = data;
      kvm_pmu_request_counter_reprogram(vcpu, sel);
    }
    return ok(data);
  }
  const lbr = intel_pmu_handle_lbr_msrs_access(vcpu, msr, data);
  return lbr ?? gp(`MSR 0x${msr.toString(16)}: not a vPMU MSR`);
}

/** intel_rdpmc_ecx_to_pmc: ECX[31:16] is a type, 0 (GP) or 0x4000 (fixed); anything else is invalid. */
export function intel_rdpmc_ecx_to_pmc(vcpu: KvmVcpuState, ecx: number): { pmc: KvmPmc; mask: bigint } | null {
  const pmu = vcpu.pmu;
  const type = ecx >>> 16;
  const idx = ecx & 0xffff;
  if (type === 0x0000) return idx < pmu.nrArchGpCounters ? { pmc: pmu.gp[idx]!, mask: pmu.counterBitmaskGp } : null;
  if (type === 0x4000)
    return idx < pmu.nrArchFixedCounters ? { pmc: pmu.fixed[idx]!, mask: pmu.counterBitmaskFixed } : null;
  return null;
}

/** intel_pmu_create_guest_lbr_event: a pinned exclude_host call-stack event owning the LBRs. */
export function intel_pmu_create_guest_lbr_event(vcpu: KvmVcpuState): boolean {
  const pmu = vcpu.pmu;
  if (vcpu.lbr.event !== null) {
    pmu.pmcInUse |= bit(INTEL_PMC_IDX_FIXED_VLBR);
    return true;
  }
  vcpu.cost.perfCreates++;
  const ev = vcpu.host.perf_event_create_kernel_counter(
    attr({
      config: INTEL_FIXED_VLBR_EVENT,
      pinned: true,
      excludeHost: true,
      vlbr: true,
      branchSample: { user: true, kernel: false, callStack: true },
    }),
    { task: vcpu.task },
  );
  if ('error' in ev) return false;
  vcpu.lbr.event = ev;
  pmu.eventCount++;
  pmu.pmcInUse |= bit(INTEL_PMC_IDX_FIXED_VLBR);
  return true;
}

/** intel_pmu_release_guest_lbr_event. */
export function intel_pmu_release_guest_lbr_event(vcpu: KvmVcpuState): void {
  const ev = vcpu.lbr.event;
  if (ev === null) return;
  vcpu.cost.perfReleases++;
  vcpu.host.perf_event_release_kernel(ev);
  vcpu.lbr.event = null;
  vcpu.pmu.eventCount--;
}

/**
 * intel_pmu_handle_lbr_msrs_access: an intercepted LBR MSR access. While the guest LBR event is
 * ACTIVE the access goes to the hardware (which holds the guest's LBRs); otherwise reads give 0
 * and writes are dropped. `write` null means a read. Returns null for a non-LBR MSR.
 */
export function intel_pmu_handle_lbr_msrs_access(vcpu: KvmVcpuState, msr: number, write: bigint | null): Access | null {
  if (!intel_pmu_is_valid_lbr_msr(vcpu, msr)) return null;
  const dummy = () => ok(write ?? 0n);
  if (vcpu.lbr.event === null && !intel_pmu_create_guest_lbr_event(vcpu)) return write === null ? ok(0n) : dummy();
  const ev = vcpu.lbr.event!;
  // KVM disables IRQs here so perf cannot take the LBRs between the state check and the access.
  if (ev.state === 'ACTIVE') {
    const hw = vcpu.host.pcpu(vcpu.cpu).hw;
    vcpu.pmu.pmcInUse |= bit(INTEL_PMC_IDX_FIXED_VLBR);
    // ca674df13b19: a proxied write the hardware refuses is a #GP for the guest, not a host fault.
    return write === null ? hw.rdmsr(msr) : hw.wrmsr(msr, write);
  }
  vcpu.pmu.pmcInUse &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
  return write === null ? ok(0n) : dummy();
}

/** intel_pmu_cleanup: the guest LBR event goes when the guest has DEBUGCTL.LBR clear. */
export function intel_pmu_cleanup(vcpu: KvmVcpuState): void {
  if ((vcpu.guestDebugctl & DEBUGCTLMSR_LBR) === 0n) intel_pmu_release_guest_lbr_event(vcpu);
}

/** intel_pmu_legacy_freezing_lbrs_on_pmi: emulated Freeze_LBRs_On_PMI clears DEBUGCTL.LBR. */
function intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu: KvmVcpuState): void {
  if ((vcpu.guestDebugctl & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n) vcpu.guestDebugctl &= ~DEBUGCTLMSR_LBR;
}

/** intel_pmu_deliver_pmi: freeze emulation only for versions 2 and 3, only with guest LBR. */
export function intel_pmu_deliver_pmi(vcpu: KvmVcpuState): void {
  if (!intel_pmu_lbr_is_enabled(vcpu)) return;
  const v = vcpu.pmu.version;
  if (v > 1 && v < 4) intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu);
}
