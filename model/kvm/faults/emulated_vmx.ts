/**
 * Planted faults in emulated/vmx.ts (arch/x86/kvm/vmx/vmx.c, the perf-based design's VM-entry, VM-exit
 * and DEBUGCTL).
 */

import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI } from '../../hw/msr/debugctl.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

/** vmx_get_supported_debugctl offers LBR without FREEZE_LBRS_ON_PMI (`LBR | FREEZE_LBRS_ON_PMI` became `LBR`). */
export const DEBUGCTL_NO_FRZ: EmulatedOps = {
  ...EMULATED_OPS,
  vmx_get_supported_debugctl(vcpu: KvmVcpuState, hostInitiated: boolean): bigint {
    return EMULATED_OPS.vmx_get_supported_debugctl(vcpu, hostInitiated) & ~DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
  },
};

/** VM-exit no longer loads the host's GLOBAL_CTRL (that MSR-load entry dropped): guest counters run on in the host. */
export const EXIT_KEEPS_GUEST_GLOBAL_CTRL: EmulatedOps = {
  ...EMULATED_OPS,
  vmx_vcpu_exit(vcpu: KvmVcpuState): void {
    if (!vcpu.inGuest) return;
    const hw = vcpu.host.pcpu(vcpu.cpu).hw;
    const ctrl = hw.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL);
    EMULATED_OPS.vmx_vcpu_exit(vcpu);
    if (ctrl.ok) hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, ctrl.value);
  },
};
