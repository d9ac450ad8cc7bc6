/**
 * Planted faults in mediated/pmu_intel.ts (arch/x86/kvm/vmx/pmu_intel.c, the mediated load and put),
 * planted on the mediated design.
 */

import {
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../hw/msr/global.js';
import { MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../hw/msr/counters.js';
import { MEDIATED_OPS, type MediatedOps } from '../mediated/ops.js';
import { kvm_rdmsr, kvm_wrmsr } from '../mediated/pmu.js';
import type { MediatedVcpuState } from '../mediated/state.js';

/** intel_mediated_pmu_put ORs hardware GLOBAL_STATUS into KVM's copy (`=` became `|=`): an ack in the guest is undone. */
export const MED_PUT_STATUS_OR: MediatedOps = {
  ...MEDIATED_OPS,
  intel_mediated_pmu_put(vcpu: MediatedVcpuState): void {
    const pmu = vcpu.pmu;
    pmu.global_status |= kvm_rdmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS);
    const hw = kvm_rdmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS);
    if (hw !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, hw);
    if (pmu.fixed_ctr_ctrl_hw !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, 0n);
  },
};

/** intel_mediated_pmu_load sets only GP status bits through STATUS_SET (`& 0xffffffff`): fixed counters' are lost. */
export const MED_STATUS_SET_GP_ONLY: MediatedOps = {
  ...MEDIATED_OPS,
  intel_mediated_pmu_load(vcpu: MediatedVcpuState): void {
    const pmu = vcpu.pmu;
    const status = kvm_rdmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS);
    const toggle = pmu.global_status ^ status;
    if ((status & toggle) !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, status & toggle);
    const set = pmu.global_status & toggle & 0xffff_ffffn;
    if (set !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_STATUS_SET, set);
    kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, pmu.fixed_ctr_ctrl_hw);
  },
};

/** intel_mediated_pmu_load loads the guest's FIXED_CTR_CTRL, not the filtered shadow (`fixed_ctr_ctrl_hw` became `fixed_ctr_ctrl`). */
export const MED_LOAD_FIXED_CTRL_UNFILTERED: MediatedOps = {
  ...MEDIATED_OPS,
  intel_mediated_pmu_load(vcpu: MediatedVcpuState): void {
    MEDIATED_OPS.intel_mediated_pmu_load(vcpu);
    kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR_CTRL, vcpu.pmu.fixed_ctr_ctrl);
  },
};
