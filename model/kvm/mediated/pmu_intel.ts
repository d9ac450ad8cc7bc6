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
  reprogram_fixed_counters,
  intel_pmu_refresh,
  intel_rdpmc_ecx_to_pmc,
} from '../common/pmu_intel.js';
import { kvm_rdmsr, kvm_wrmsr, pmc_read_counter, pmc_write_counter } from './pmu.js';
import type { MediatedPmc, MediatedVcpuState } from './state.js';
import { type KvmPmuOps } from '../common/pmu.h.js';
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
  return intel_pmu_get_pmc_msr(vcpu, msr, pmc_read_counter) ?? notVpmuMsr(msr);
}

/**
 * reprogram_fixed_counters, mediated: the _hw shadow takes the new value too (the filter refreshes it at KVM_REQ_PMU).
 */
function intel_reprogram_fixed_counters(vcpu: MediatedVcpuState, data: bigint): void {
  vcpu.pmu.fixed_ctr_ctrl_hw = data;
  reprogram_fixed_counters(vcpu, data);
}

/** intel_pmu_set_msr: counters and controls only; a selector write sets eventsel_hw too. */
export function intel_pmu_set_msr(vcpu: MediatedVcpuState, msr: number, value: bigint, hostInitiated: boolean): Access {
  const r = intel_pmu_set_pmc_msr(vcpu, msr, value, hostInitiated, {
    pmc_write_counter,
    reprogram_fixed_counters: intel_reprogram_fixed_counters,
    set_eventsel: (pmc: MediatedPmc, data: bigint) => {
      pmc.eventsel = data;
      pmc.eventsel_hw = data;
    },
  });
  return r ?? notVpmuMsr(msr);
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

/** intel_pmu_ops of the mediated vPMU: no guest LBR, so reset, cleanup and PMI delivery have nothing to do. */
export const intel_pmu_ops: KvmPmuOps<MediatedVcpuState> = {
  rdpmc_ecx_to_pmc: intel_rdpmc_ecx_to_pmc,
  is_valid_msr: intel_is_valid_msr,
  get_msr: intel_pmu_get_msr,
  set_msr: intel_pmu_set_msr,
  refresh: intel_pmu_refresh,
  reset: () => {},
  deliver_pmi: () => {},
  cleanup: () => {},
  write_global_ctrl: intel_pmu_write_global_ctrl,
  is_mediated_pmu_supported: intel_pmu_is_mediated_pmu_supported,
  mediated_load: intel_mediated_pmu_load,
  mediated_put: intel_mediated_pmu_put,
};
