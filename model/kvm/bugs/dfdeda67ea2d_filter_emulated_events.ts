/**
 * Bug #49 of bugs.md, before "KVM: x86/pmu: Prevent the PMU from counting disallowed events"
 * (dfdeda67ea2d, 6.4): kvm_pmu_trigger_event() counted instructions and branches KVM emulated or
 * skipped without asking the VM's event filter, so a counter whose event the VMM denied still
 * counted every intercepted guest instruction (while its perf event, rightly, was never created).
 */

import type { HostKernel } from '../../host/perf.js';
import { kvm_pmu_trigger_event } from '../common/pmu.js';
import { kvm_pmu_incr_counter } from '../emulated/pmu.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = 'dfdeda67ea2d';

export class PreFilterEmulatedEventsFixVcpu extends EmulatedVcpu {
  /** kvm_pmu_instruction_retired → the pre-fix kvm_pmu_trigger_event: every PMC is allowed, the filter is not asked. */
  protected override instructionRetired(cpl: number): void {
    kvm_pmu_trigger_event(this.s, this.s.pmu.pmc_counting_instructions, cpl, () => true, kvm_pmu_incr_counter);
  }
}

export const preFilterEmulatedEventsFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreFilterEmulatedEventsFixVcpu(host, opts);
