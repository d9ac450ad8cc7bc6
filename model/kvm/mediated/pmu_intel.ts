/**
 * Intel specifics of the mediated vPMU: a port of arch/x86/kvm/vmx/pmu_intel.c as the mediated
 * series leaves it (refresh, counter and control MSRs, RDPMC decoding, the mediated requirements,
 * intel_mediated_pmu_load/put). No LBR and no PEBS: the guest's PERF_CAPABILITIES has neither.
 * kvm-vpmu.md §2.4, §2.6, §2.12, §2.19.
 */

import type { Access } from '../../hw/access.js';
import type { Profile } from '../../hw/profile.js';
import {
  intel_is_valid_pmc_msr,
  intel_pmu_get_pmc_msr,
  intel_pmu_set_pmc_msr,
  notVpmuMsr,
  reprogram_fixed_counters as common_reprogram_fixed_counters,
} from '../common/pmu_intel.js';
import { kvm_rdmsr, kvm_wrmsr } from './pmu.js';
import type { MediatedVcpuState } from './state.js';
import { MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../hw/msr/global.js';

/**
 * intel_pmu_is_mediated_pmu_supported: PMU v4+ (for GLOBAL_STATUS_SET) and full-width writes;
 * the VMCS PERF_GLOBAL_CTRL load/save controls exist on every modelled part (K11). Null when
 * supported, else the reason.
 */
export function intel_pmu_is_mediated_pmu_supported(p: Profile): string | null {
  if (p.version < 4) return `${p.name} has PMU version ${p.version}; the mediated vPMU needs v4+ (GLOBAL_STATUS_SET)`;
  if (!p.fwWrite)
    return `${p.name} lacks PERF_CAPABILITIES.FW_WRITE; the mediated vPMU needs full-width counter writes`;
  return null;
}

/** intel_is_valid_msr: counters and controls only (no LBR, no PEBS MSRs with the mediated vPMU). */
export function intel_is_valid_msr(vcpu: MediatedVcpuState, msr: number): boolean {
  return intel_is_valid_pmc_msr(vcpu, msr);
}

/** intel_pmu_get_msr: counters and controls only. */
export function intel_pmu_get_msr(vcpu: MediatedVcpuState, msr: number, _hostInitiated: boolean): Access {
  return intel_pmu_get_pmc_msr(vcpu, msr) ?? notVpmuMsr(msr);
}

/**
 * reprogram_fixed_counters, mediated: the _hw shadow takes the new value too (the filter refreshes it at KVM_REQ_PMU).
 */
export function reprogram_fixed_counters(vcpu: MediatedVcpuState, data: bigint): void {
  vcpu.pmu.fixed_ctr_ctrl_hw = data;
  common_reprogram_fixed_counters(vcpu, data);
}

/** intel_pmu_set_msr: counters and controls only; a selector write sets eventsel_hw too. */
export function intel_pmu_set_msr(vcpu: MediatedVcpuState, msr: number, value: bigint, hostInitiated: boolean): Access {
  return intel_pmu_set_pmc_msr(vcpu, msr, value, hostInitiated) ?? notVpmuMsr(msr);
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
  const toggle = pmu.global_status ^ status;
  if ((status & toggle) !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, status & toggle);
  if ((pmu.global_status & toggle) !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS_SET, pmu.global_status & toggle);
  kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, pmu.fixed_ctr_ctrl_hw);
}

/** intel_mediated_pmu_put: GLOBAL_STATUS into KVM's copy and cleared; FIXED_CTR_CTRL zeroed if set. */
export function intel_mediated_pmu_put(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.global_status = kvm_rdmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS);
  if (pmu.global_status !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, pmu.global_status);
  if (pmu.fixed_ctr_ctrl_hw !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
}
