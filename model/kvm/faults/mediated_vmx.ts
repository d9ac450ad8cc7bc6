/** Planted faults in mediated/vmx.ts (the mediated design's VM-exit and MSR intercepts). */

import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';
import { MSR_IA32_PMC0 } from '../../hw/msr/counters.js';
import { MEDIATED_OPS, type MediatedOps } from '../mediated/ops.js';
import type { MediatedVcpuState } from '../mediated/state.js';

/** VM-exit never reads the guest's GLOBAL_CTRL back (that read-back deleted): a passed-through write is lost at the next entry. */
export const MED_GLOBAL_CTRL_NOT_READ_BACK: MediatedOps = {
  ...MEDIATED_OPS,
  vmx_vcpu_exit(vcpu: MediatedVcpuState): void {
    if (!vcpu.inGuest) return;
    const kept = vcpu.pmu.global_ctrl;
    const vmcs = vcpu.vmcsGuestPerfGlobalCtrl;
    MEDIATED_OPS.vmx_vcpu_exit(vcpu);
    if (vcpu.passthrough.has(MSR_CORE_PERF_GLOBAL_CTRL)) {
      vcpu.pmu.global_ctrl = kept;
      vcpu.vmcsGuestPerfGlobalCtrl = vmcs;
    }
  },
};

/** vmx_recalc_pmu_msr_intercepts passes IA32_PMCx through without FW_WRITES (`!fw_writes_is_enabled` became `false`). */
export const MED_PMCX_WITHOUT_FW: MediatedOps = {
  ...MEDIATED_OPS,
  vmx_recalc_pmu_msr_intercepts(vcpu: MediatedVcpuState): void {
    MEDIATED_OPS.vmx_recalc_pmu_msr_intercepts(vcpu);
    for (let i = 0; i < vcpu.pmu.nr_arch_gp_counters; i++) vcpu.passthrough.add(MSR_IA32_PMC0 + i);
  },
};
