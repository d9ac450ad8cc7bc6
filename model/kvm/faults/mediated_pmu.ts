/**
 * Planted faults in mediated/pmu.ts (arch/x86/kvm/pmu.c, the mediated vPMU's parts), planted on the
 * mediated design by replacing the kernel function they sit in.
 */

import { bit, lowMask } from '../../hw/bits.js';
import { fixed_ctrl_field, pmc_bitmask } from '../common/pmu.h.js';
import { MEDIATED_OPS, type MediatedOps } from '../mediated/ops.js';
import type { MediatedPmc, MediatedVcpuState } from '../mediated/state.js';
import { ARCH_PERFMON_EVENTSEL_INT } from '../../hw/msr/counters.js';
import { KVM_FIXED_PMC_BASE_IDX } from '../common/state.js';

/** kvm_pmu_incr_counter, mediated: a wrap by an emulated event requests the PMI but sets no GLOBAL_STATUS bit. */
export const MED_EMUL_OVERFLOW_NO_STATUS: MediatedOps = {
  ...MEDIATED_OPS,
  kvm_pmu_incr_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
    pmc.counter = (pmc.counter + 1n) & pmc_bitmask(vcpu, pmc);
    if (pmc.counter !== 0n) return;
    const pmi =
      pmc.type === 'gp'
        ? (pmc.eventsel & ARCH_PERFMON_EVENTSEL_INT) !== 0n
        : (fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX) & 8) !== 0;
    if (pmi) vcpu.requests.add('PMI');
  },
};

/** kvm_pmu_incr_counter, mediated: a wrap by an emulated event requests a PMI whatever the counter's INT bit. */
export const MED_EMUL_PMI_IGNORES_INT: MediatedOps = {
  ...MEDIATED_OPS,
  kvm_pmu_incr_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
    pmc.counter = (pmc.counter + 1n) & pmc_bitmask(vcpu, pmc);
    if (pmc.counter !== 0n) return;
    vcpu.pmu.global_status |= bit(pmc.idx);
    vcpu.requests.add('PMI');
  },
};

/** kvm_pmu_refresh, mediated: the RESET GLOBAL_CTRL is not pushed to the VMCS (intel_pmu_write_global_ctrl deleted). */
export const MED_REFRESH_NO_VMCS_CTRL: MediatedOps = {
  ...MEDIATED_OPS,
  kvm_pmu_refresh(vcpu: MediatedVcpuState): void {
    const before = vcpu.vmcsGuestPerfGlobalCtrl;
    MEDIATED_OPS.kvm_pmu_refresh(vcpu);
    vcpu.vmcsGuestPerfGlobalCtrl = before;
  },
};

/** kvm_need_perf_global_ctrl_intercept passes the global MSRs through for any v2+ guest (`need_any_pmc_intercept ||` dropped). */
export const MED_GLOBAL_PASSTHROUGH_PARTIAL: MediatedOps = {
  ...MEDIATED_OPS,
  kvm_need_perf_global_ctrl_intercept(vcpu: MediatedVcpuState): boolean {
    return vcpu.pmu.version <= 1;
  },
};

/**
 * reprogram_counter, mediated: kvm_mediated_pmu_refresh_event_filter's GP branch deleted, so a selector keeps the
 * ENABLE its write put in eventsel_hw and a denied GP event counts; fixed counters are still filtered.
 */
export const MED_FILTER_SKIPS_GP: MediatedOps = {
  ...MEDIATED_OPS,
  reprogram_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): boolean {
    if (pmc.type !== 'gp') return MEDIATED_OPS.reprogram_counter(vcpu, pmc);
    vcpu.cost.reprograms++;
    return true;
  },
};

/** kvm_pmu_reset, mediated: GLOBAL_STATUS survives the reset (`pmu->global_status = 0` deleted). */
export const MED_RESET_KEEPS_STATUS: MediatedOps = {
  ...MEDIATED_OPS,
  kvm_pmu_reset(vcpu: MediatedVcpuState): void {
    const status = vcpu.pmu.global_status;
    MEDIATED_OPS.kvm_pmu_reset(vcpu);
    vcpu.pmu.global_status = status;
  },
};

/** kvm_need_rdpmc_intercept compares only the GP width: RDPMC passes through with narrower fixed counters. */
export const MED_RDPMC_IGNORES_FIXED_WIDTH: MediatedOps = {
  ...MEDIATED_OPS,
  kvm_need_rdpmc_intercept(vcpu: MediatedVcpuState): boolean {
    const pmu = vcpu.pmu;
    const cap = vcpu.kvm_pmu_cap;
    return (
      pmu.nr_arch_gp_counters !== cap.host.numCountersGp ||
      pmu.nr_arch_fixed_counters !== cap.host.numCountersFixed ||
      pmu.counter_bitmask_gp !== lowMask(cap.host.bitWidthGp)
    );
  },
};
