/**
 * Bug #47 of bugs.md, before "KVM: x86/pmu: Don't tell userspace to save MSRs for non-existent
 * fixed PMCs" (e33b6d79acac, 6.3): kvm_probe_msr_to_save() filtered the GP counters and selectors
 * by what KVM supports on the host but let every fixed counter of msrs_to_save_pmu through, so
 * KVM_GET_MSR_INDEX_LIST told the VMM to save and restore fixed counters no vCPU of the host can
 * have (FIXED_CTR3 on a host with three), and restoring a value there fails.
 */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';
import { MSR_CORE_PERF_FIXED_CTR0 } from '../../hw/msr/counters.js';

export const FIXED_BY = 'e33b6d79acac';

/** The pre-fix kvm_probe_msr_to_save: no case for the fixed counters, so all four are kept. */
function kvm_probe_msr_to_save(vcpu: KvmVcpuState, msr: number): boolean {
  if (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr <= MSR_CORE_PERF_FIXED_CTR0 + 3) return true;
  return EMULATED_OPS.kvm_probe_msr_to_save(vcpu, msr);
}

export const PRE_MSR_LIST_FIXED_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, kvm_probe_msr_to_save };
