/** Planted faults in emulated/x86.ts (arch/x86/kvm/x86.c's vcpu_enter_guest and vcpu_load for the perf-based vPMU). */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

/** vcpu_enter_guest handles KVM_REQ_PMI before KVM_REQ_PMU: an overflow found by the reprogram is injected an entry late. */
export const PMI_BEFORE_PMU_REQUEST: EmulatedOps = {
  ...EMULATED_OPS,
  vcpu_enter_guest(vcpu: KvmVcpuState, afterUnit: number): void {
    const ops = vcpu.ops;
    if (vcpu.requests.delete('PMI')) {
      const vector = ops.kvm_pmu_deliver_pmi(vcpu);
      if (vector !== null) {
        vcpu.cost.injectedPmis++;
        vcpu.injected.push({ afterUnit, vector });
      }
    }
    if (vcpu.requests.delete('PMU')) ops.kvm_pmu_handle_event(vcpu);
    vcpu.hasRun = true;
    vcpu.scheduled_out = false;
    ops.vmx_vcpu_enter(vcpu);
  },
};

/** kvm_arch_vcpu_load never asks for the lazy cleanup (need_cleanup not set): released events are never reaped. */
export const VCPU_LOAD_NO_CLEANUP: EmulatedOps = { ...EMULATED_OPS, kvm_arch_vcpu_load(): void {} };
