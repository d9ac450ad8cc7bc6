/**
 * The mediated vPMU's own part of arch/x86/kvm/x86.c: vcpu_enter_guest with the guest PMU loaded
 * around the run (kvm_mediated_pmu_load before VM-entry; the put follows VM-exit in vmx.ts, K14).
 */

import type { MediatedVcpuState } from './state.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../hw/msr/debugctl.js';
import { relied } from '../../hw/relied.js';

/**
 * vcpu_enter_guest: requests (KVM_REQ_PMU, then KVM_REQ_PMI: K5), IRQs off, DEBUGCTL snapshot,
 * kvm_mediated_pmu_load (K14), VM-entry.
 */
export function vcpu_enter_guest(vcpu: MediatedVcpuState, afterUnit: number): void {
  const ops = vcpu.ops;
  if (vcpu.requests.has('PMU') && vcpu.requests.has('PMI')) relied('K5');
  if (vcpu.requests.delete('PMU')) ops.kvm_pmu_handle_event(vcpu);
  if (vcpu.requests.delete('PMI')) {
    const vector = ops.kvm_pmu_deliver_pmi(vcpu);
    if (vector !== null) {
      relied('K6'); // injected at this entry: the boundary after the overflowing unit
      vcpu.injected.push({ afterUnit, vector });
      vcpu.cost.injectedPmis++;
    }
  }
  vcpu.hasRun = true;
  vcpu.scheduled_out = false;
  const dbg = vcpu.host.pcpu(vcpu.cpu).hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
  vcpu.host_debugctlmsr = dbg.ok ? dbg.value : 0n;
  ops.kvm_mediated_pmu_load(vcpu);
  ops.vmx_vcpu_enter(vcpu);
}
