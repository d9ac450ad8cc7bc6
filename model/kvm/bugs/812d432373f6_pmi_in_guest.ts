/**
 * Bug #9 of bugs.md, before "KVM: x86/pmu: Explicitly check NMI from guest to reduce false
 * positives" (812d432373f6, 6.9): kvm_arch_pmi_in_guest() was true whenever KVM was handling an
 * interrupt that exited the guest, IRQ or NMI alike. A host PMI (an NMI) arriving while KVM ran the
 * host's handler for an external-interrupt VM-exit was then reported to perf as the guest's, so
 * host samples taken in host IRQ code were attributed to the guest.
 */

import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = '812d432373f6';

/** The pre-fix kvm_arch_pmi_in_guest: vcpu->arch.handling_intr_from_guest alone, whatever the context perf asks from. */
function kvm_arch_pmi_in_guest(vcpu: KvmVcpuState, _inNmi: boolean): boolean {
  return vcpu.handling_intr_from_guest !== 'none';
}

export const PRE_PMI_IN_GUEST_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, kvm_arch_pmi_in_guest };
