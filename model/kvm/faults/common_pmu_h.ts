/**
 * Planted faults in common/pmu.h.ts (arch/x86/kvm/pmu.h), the inline helpers: each planted through the
 * one kernel function of the seam that inlines it, as a patch to the header reaches that caller.
 */

import { bit, isSet } from '../../hw/bits.js';
import {
  PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
  PERF_COUNT_HW_INSTRUCTIONS,
  pmc_is_locally_enabled,
  validPmcs,
} from '../common/pmu.h.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { pmc_create_event, pmc_eventsel } from '../emulated/pmu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

/**
 * pmc_is_globally_enabled tests the GLOBAL_CTRL bit even without PERF_GLOBAL_CTRL (`!has_perf_global_ctrl ||`
 * deleted): a v1 guest, whose GLOBAL_CTRL is 0, never counts. Planted in reprogram_counter.
 */
export const GLOBALLY_ENABLED_ON_V1: EmulatedOps = {
  ...EMULATED_OPS,
  reprogram_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
    const ops = vcpu.ops;
    vcpu.cost.reprograms++;
    const emulateOverflow = ops.pmc_pause_counter(vcpu, pmc);
    if (
      !isSet(vcpu.pmu.global_ctrl, pmc.idx) ||
      !pmc_is_locally_enabled(vcpu, pmc) ||
      !ops.pmc_is_event_allowed(vcpu, pmc)
    )
      return true;
    if (emulateOverflow) ops.__kvm_perf_overflow(vcpu, pmc, false);
    const { eventsel, config } = pmc_eventsel(vcpu, pmc);
    if (pmc.current_config === config && ops.pmc_resume_counter(vcpu, pmc)) return true;
    ops.pmc_release_perf_event(vcpu, pmc);
    pmc.current_config = config;
    return pmc_create_event(vcpu, pmc, eventsel);
  },
};

/**
 * kvm_pmu_recalc_pmc_emulation without its `!pmc_is_locally_enabled` return: a disabled counter of instructions
 * counts the instructions KVM emulates. Planted in kvm_pmu_handle_event, which recalculates after reprogramming.
 */
export const RECALC_IGNORES_ENABLE: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_handle_event(vcpu: KvmVcpuState): void {
    const snapshot = vcpu.pmu.reprogram_pmi;
    EMULATED_OPS.kvm_pmu_handle_event(vcpu);
    const pmu = vcpu.pmu;
    for (const pmc of validPmcs(pmu)) {
      const b = bit(pmc.idx);
      if ((snapshot & b) === 0n) continue;
      const match = (g: bigint) => ((pmc.eventsel ^ g) & 0xf_0000_ffffn) === 0n;
      if (match(PERF_COUNT_HW_INSTRUCTIONS)) pmu.pmc_counting_instructions |= b;
      if (match(PERF_COUNT_HW_BRANCH_INSTRUCTIONS)) pmu.pmc_counting_branches |= b;
    }
  },
};
