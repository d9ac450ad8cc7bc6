/**
 * Bug #49 of bugs.md, before "KVM: x86/pmu: Prevent the PMU from counting disallowed events"
 * (dfdeda67ea2d, 6.4): kvm_pmu_trigger_event() counted instructions and branches KVM emulated or
 * skipped without asking the VM's event filter, so a counter whose event the VMM denied still
 * counted every intercepted guest instruction (while its perf event, rightly, was never created).
 */

import { bit } from '../../hw/bits.js';
import type { HostKernel } from '../../host/perf.js';
import {
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  fixed_ctrl_field,
  kvm_pmu_request_counter_reprogram,
  validPmcs,
} from '../emulated/pmu.js';
import { KVM_FIXED_PMC_BASE_IDX, type KvmPmc } from '../emulated/state.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = 'dfdeda67ea2d';

export class PreFilterEmulatedEventsFixVcpu extends EmulatedVcpu {
  /** kvm_pmu_instruction_retired → the pre-fix kvm_pmu_trigger_event: no filter check. */
  protected override instructionRetired(cpl: number): void {
    const pmu = this.s.pmu;
    let mask = pmu.pmcCountingInstructions;
    if (pmu.version > 1) mask &= pmu.globalCtrl;
    for (const pmc of validPmcs(pmu)) {
      if ((mask & bit(pmc.idx)) === 0n || !this.cplMatches(pmc, cpl)) continue;
      pmc.emulatedCounter += 1n;
      kvm_pmu_request_counter_reprogram(this.s, pmc);
    }
  }

  /** cpl_is_matched: OS for CPL 0, USR otherwise. */
  private cplMatches(pmc: KvmPmc, cpl: number): boolean {
    if (pmc.type === 'gp') return (pmc.eventsel & (cpl === 0 ? ARCH_PERFMON_EVENTSEL_OS : ARCH_PERFMON_EVENTSEL_USR)) !== 0n;
    const f = fixed_ctrl_field(this.s.pmu.fixedCtrCtrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
    return (f & (cpl === 0 ? 1 : 2)) !== 0;
  }
}

export const preFilterEmulatedEventsFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreFilterEmulatedEventsFixVcpu(host, opts);
