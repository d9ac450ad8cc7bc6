/**
 * The perf-based vPMU's own parts of arch/x86/kvm/x86.c: vcpu_enter_guest's request handling,
 * kvm_arch_pmi_in_guest (what perf's guest-state callback asks) and kvm_arch_vcpu_load's lazy cleanup.
 * The rest of the x86.c glue is common/vcpu.ts.
 */

import type { KvmVcpuState } from './state.js';
import { relied } from '../../hw/relied.js';

/** vcpu_enter_guest: requests first (KVM_REQ_PMU, then KVM_REQ_PMI: K5), then VM-entry. */
export function vcpu_enter_guest(vcpu: KvmVcpuState, afterUnit: number): void {
  const ops = vcpu.ops;
  if (vcpu.requests.has('PMU') && vcpu.requests.has('PMI')) relied('K5');
  if (vcpu.requests.delete('PMU')) ops.kvm_pmu_handle_event(vcpu);
  if (vcpu.requests.delete('PMI')) {
    const vector = ops.kvm_pmu_deliver_pmi(vcpu);
    if (vector !== null) {
      relied('K6'); // injected at this entry: the boundary after the overflowing unit
      vcpu.cost.injectedPmis++;
      vcpu.injected.push({ afterUnit, vector });
    }
  }
  vcpu.hasRun = true;
  vcpu.scheduled_out = false;
  ops.vmx_vcpu_enter(vcpu);
}

/**
 * kvm_arch_pmi_in_guest (812d432373f6): the PMI hit the guest iff KVM is handling an interrupt
 * that exited it and that interrupt is an NMI exactly when perf is in NMI context.
 */
export function kvm_arch_pmi_in_guest(vcpu: KvmVcpuState, inNmi: boolean): boolean {
  const h = vcpu.handling_intr_from_guest;
  return h !== 'none' && inNmi === (h === 'nmi');
}

/** kvm_arch_vcpu_load: a rescheduled vCPU with perf events asks for lazy cleanup. */
export function kvm_arch_vcpu_load(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  if (vcpu.scheduled_out && pmu.version !== 0 && pmu.event_count !== 0) {
    pmu.need_cleanup = true;
    vcpu.requests.add('PMU');
  }
}
