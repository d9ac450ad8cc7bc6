/**
 * Intel specifics of the mediated vPMU: a port of arch/x86/kvm/vmx/pmu_intel.c as the mediated
 * series leaves it (refresh, counter and control MSRs, RDPMC decoding, the mediated requirements,
 * intel_mediated_pmu_load/put). No LBR and no PEBS: the guest's PERF_CAPABILITIES has neither.
 * kvm-vpmu.md §2.4, §2.6, §2.12, §2.19.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit, lowMask, signExtend } from '../../hw/bits.js';
import type { Profile } from '../../hw/profile.js';
import {
  fixed_ctrl_field,
  kvm_pmu_request_counter_reprogram,
  kvm_rdmsr,
  kvm_wrmsr,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  type MediatedPmuCap,
  pmc_read_counter,
  pmc_write_counter,
} from './pmu.js';
import type { MediatedPmc, MediatedVcpuState } from './state.js';

export const MSR_IA32_PERFCTR0 = 0xc1;
export const MSR_IA32_PMC0 = 0x4c1;
export const MSR_P6_EVNTSEL0 = 0x186;
export const MSR_CORE_PERF_FIXED_CTR0 = 0x309;
export const MSR_CORE_PERF_FIXED_CTR_CTRL = 0x38d;
const HSW_IN_TX = bit(32);
const HSW_IN_TX_CHECKPOINTED = bit(33);
export const PERF_CAP_FW_WRITES = bit(13);

/** get_gp_pmc: the GP PMC an MSR of the family at `base` addresses. */
function get_gp_pmc(vcpu: MediatedVcpuState, msr: number, base: number): MediatedPmc | undefined {
  const i = msr - base;
  return i >= 0 && i < vcpu.pmu.nrArchGpCounters ? vcpu.pmu.gp[i] : undefined;
}

/** get_fixed_pmc. */
function get_fixed_pmc(vcpu: MediatedVcpuState, msr: number): MediatedPmc | undefined {
  const i = msr - MSR_CORE_PERF_FIXED_CTR0;
  return i >= 0 && i < vcpu.pmu.nrArchFixedCounters ? vcpu.pmu.fixed[i] : undefined;
}

/** vcpu_get_perf_capabilities: PERF_CAPABILITIES counts only while guest CPUID has PDCM. */
export function vcpu_get_perf_capabilities(vcpu: MediatedVcpuState): bigint {
  return vcpu.cpuid.pdcm ? vcpu.perfCapabilities : 0n;
}

/** fw_writes_is_enabled. */
export function fw_writes_is_enabled(vcpu: MediatedVcpuState): boolean {
  return (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_FW_WRITES) !== 0n;
}

/** get_fw_gp_pmc: the IA32_PMCx aliases need PERF_CAPABILITIES.FW_WRITES. */
function get_fw_gp_pmc(vcpu: MediatedVcpuState, msr: number): MediatedPmc | undefined {
  return fw_writes_is_enabled(vcpu) ? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0) : undefined;
}

/**
 * intel_pmu_is_mediated_pmu_supported: PMU v4+ (for GLOBAL_STATUS_SET) and full-width writes;
 * the VMCS PERF_GLOBAL_CTRL load/save controls exist on every modelled part (K11). Null when
 * supported, else the reason.
 */
export function intel_pmu_is_mediated_pmu_supported(p: Profile): string | null {
  if (p.version < 4) return `${p.name} has PMU version ${p.version}; the mediated vPMU needs v4+ (GLOBAL_STATUS_SET)`;
  if (!p.fwWrite) return `${p.name} lacks PERF_CAPABILITIES.FW_WRITE; the mediated vPMU needs full-width counter writes`;
  return null;
}

/** intel_pmu_refresh: the guest PMU from guest CPUID.0AH, clamped to KVM's caps; never guest LBR or PEBS here. */
export function intel_pmu_refresh(vcpu: MediatedVcpuState, cap: MediatedPmuCap): void {
  const pmu = vcpu.pmu;
  const { eax, ebx, edx } = vcpu.cpuid.leaf0a;
  pmu.version = eax & 0xff; // not clamped to what KVM advertises (K10)
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
  if (pmu.version === 1) return;
  pmu.nrArchFixedCounters = Math.min(edx & 0x1f, cap.numCountersFixed);
  const fixedWidth = Math.min((edx >>> 5) & 0xff, cap.bitWidthFixed);
  pmu.counterBitmaskFixed = lowMask(fixedWidth);
  for (let i = 0; i < pmu.nrArchFixedCounters; i++) pmu.fixedCtrCtrlRsvd &= ~(0xbn << BigInt(4 * i));
  const counterRsvd = ~(lowMask(pmu.nrArchGpCounters) | (lowMask(pmu.nrArchFixedCounters) << 32n));
  pmu.globalCtrlRsvd = counterRsvd;
  pmu.globalStatusRsvd = pmu.globalCtrlRsvd & ~(bit(62) | bit(63));
}

/** intel_is_valid_msr (no LBR, no PEBS MSRs with the mediated vPMU). */
export function intel_is_valid_msr(vcpu: MediatedVcpuState, msr: number): boolean {
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return vcpu.pmu.version > 1;
  return (
    get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) !== undefined ||
    get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0) !== undefined ||
    get_fixed_pmc(vcpu, msr) !== undefined ||
    get_fw_gp_pmc(vcpu, msr) !== undefined
  );
}

/** intel_pmu_get_msr. */
export function intel_pmu_get_msr(vcpu: MediatedVcpuState, msr: number, _hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return ok(pmu.fixedCtrCtrl);
  const ctr = get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) ?? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0);
  if (ctr !== undefined) return ok(pmc_read_counter(vcpu, ctr) & pmu.counterBitmaskGp);
  const fixed = get_fixed_pmc(vcpu, msr);
  if (fixed !== undefined) return ok(pmc_read_counter(vcpu, fixed) & pmu.counterBitmaskFixed);
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) return ok(sel.eventsel); // the guest's value, even when the filter denies it
  return gp(`MSR 0x${msr.toString(16)}: not a vPMU MSR`);
}

/** reprogram_fixed_counters: store (and the _hw shadow), reprogram each field that changed. */
function reprogram_fixed_counters(vcpu: MediatedVcpuState, data: bigint): void {
  const pmu = vcpu.pmu;
  const old = pmu.fixedCtrCtrl;
  pmu.fixedCtrCtrl = data;
  pmu.fixedCtrCtrlHw = data;
  for (let i = 0; i < pmu.nrArchFixedCounters; i++) {
    if (fixed_ctrl_field(data, i) === fixed_ctrl_field(old, i)) continue;
    kvm_pmu_request_counter_reprogram(vcpu, pmu.fixed[i]!);
  }
}

/** intel_pmu_set_msr. */
export function intel_pmu_set_msr(vcpu: MediatedVcpuState, msr: number, value: bigint, hostInitiated: boolean): Access {
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
    if (!hostInitiated && !fullWidth) data = signExtend(data & 0xffff_ffffn, 31);
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
      sel.eventselHw = data;
      kvm_pmu_request_counter_reprogram(vcpu, sel);
    }
    return ok(data);
  }
  return gp(`MSR 0x${msr.toString(16)}: not a vPMU MSR`);
}

/** intel_rdpmc_ecx_to_pmc: ECX[31:16] is a type, 0 (GP) or 0x4000 (fixed); anything else is invalid. */
export function intel_rdpmc_ecx_to_pmc(vcpu: MediatedVcpuState, ecx: number): { pmc: MediatedPmc; mask: bigint } | null {
  const pmu = vcpu.pmu;
  const type = ecx >>> 16;
  const idx = ecx & 0xffff;
  if (type === 0x0000) return idx < pmu.nrArchGpCounters ? { pmc: pmu.gp[idx]!, mask: pmu.counterBitmaskGp } : null;
  if (type === 0x4000) return idx < pmu.nrArchFixedCounters ? { pmc: pmu.fixed[idx]!, mask: pmu.counterBitmaskFixed } : null;
  return null;
}

/** intel_pmu_write_global_ctrl: GUEST_IA32_PERF_GLOBAL_CTRL in the VMCS. */
export function intel_pmu_write_global_ctrl(vcpu: MediatedVcpuState, globalCtrl: bigint): void {
  vcpu.vmcsGuestPerfGlobalCtrl = globalCtrl;
}

/**
 * intel_mediated_pmu_load: toggle hardware GLOBAL_STATUS to the guest's (clear host-only bits via
 * OVF_CTRL, set guest-only bits via STATUS_SET), then load FIXED_CTR_CTRL. GLOBAL_CTRL is loaded
 * by VM-entry from the VMCS.
 */
export function intel_mediated_pmu_load(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  const status = kvm_rdmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS);
  const toggle = pmu.globalStatus ^ status;
  if ((status & toggle) !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, status & toggle);
  if ((pmu.globalStatus & toggle) !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS_SET, pmu.globalStatus & toggle);
  kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, pmu.fixedCtrCtrlHw);
}

/** intel_mediated_pmu_put: GLOBAL_STATUS into KVM's copy and cleared; FIXED_CTR_CTRL zeroed if set. */
export function intel_mediated_pmu_put(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.globalStatus = kvm_rdmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS);
  if (pmu.globalStatus !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, pmu.globalStatus);
  if (pmu.fixedCtrCtrlHw !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
}
