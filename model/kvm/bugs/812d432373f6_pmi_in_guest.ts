/**
 * Bug #9 of bugs.md, before "KVM: x86/pmu: Explicitly check NMI from guest to reduce false
 * positives" (812d432373f6, 6.9): kvm_arch_pmi_in_guest() was true whenever KVM was handling an
 * interrupt that exited the guest, IRQ or NMI alike. A host PMI (an NMI) arriving while KVM ran the
 * host's handler for an external-interrupt VM-exit was then reported to perf as the guest's, so
 * host samples taken in host IRQ code were attributed to the guest.
 */

import type { HostKernel } from '../../host/perf.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = '812d432373f6';

export class PrePmiInGuestFixVcpu extends EmulatedVcpu {
  /** vcpu->arch.handling_intr_from_guest alone, whatever the context perf asks from. */
  protected override kvm_arch_pmi_in_guest(_inNmi: boolean): boolean {
    return true; // guestState() asks only while KVM handles an interrupt from the guest
  }
}

export const prePmiInGuestFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PrePmiInGuestFixVcpu(host, opts);
