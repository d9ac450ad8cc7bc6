/**
 * Bug #36 of bugs.md, before "KVM: x86/pmu: Ignore pmu->global_ctrl check if vPMU doesn't support
 * global_ctrl" (5.19; upstream id not pinned, the 5.10 stable backport is 32c070a46533): the
 * vendor's pmc_is_enabled static call (intel_pmc_is_enabled) tested the PMC's bit in global_ctrl
 * whatever the PMU version. A version-1 guest has no IA32_PERF_GLOBAL_CTRL, so global_ctrl stays 0
 * and reprogram_counter / kvm_pmu_trigger_event, which both ask pmc_is_event_allowed here, never
 * let its counters count.
 */

import { isSet } from '../../hw/bits.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = '32c070a46533';

/** The pre-fix intel_pmc_is_enabled: the global_ctrl bit, with no version check. */
function intel_pmc_is_enabled(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  return isSet(vcpu.pmu.global_ctrl, pmc.idx);
}

/** pmc_is_event_allowed with the pmc_is_enabled static call still in front of it. */
function pmc_is_event_allowed(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  return intel_pmc_is_enabled(vcpu, pmc) && EMULATED_OPS.pmc_is_event_allowed(vcpu, pmc);
}

export const PRE_V1_GLOBAL_CTRL_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, pmc_is_event_allowed };
