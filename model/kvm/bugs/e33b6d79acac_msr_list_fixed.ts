/**
 * Bug #47 of bugs.md, before "KVM: x86/pmu: Don't tell userspace to save MSRs for non-existent
 * fixed PMCs" (e33b6d79acac, 6.3): kvm_probe_msr_to_save() filtered the GP counters and selectors
 * by what KVM supports on the host but let every fixed counter of msrs_to_save_pmu through, so
 * KVM_GET_MSR_INDEX_LIST told the VMM to save and restore fixed counters no vCPU of the host can
 * have (FIXED_CTR3 on a host with three), and restoring a value there fails.
 */

import type { HostKernel } from '../../host/perf.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';
import { MSR_CORE_PERF_FIXED_CTR0 } from '../../hw/msr/counters.js';

export const FIXED_BY = 'e33b6d79acac';

export class PreMsrListFixedFixVcpu extends EmulatedVcpu {
  override msrIndexList(): readonly number[] {
    const listed = super.msrIndexList();
    const fixed = [
      MSR_CORE_PERF_FIXED_CTR0,
      MSR_CORE_PERF_FIXED_CTR0 + 1,
      MSR_CORE_PERF_FIXED_CTR0 + 2,
      MSR_CORE_PERF_FIXED_CTR0 + 3,
    ].filter((m) => !listed.includes(m) && this.cap.enable_pmu);
    return [...fixed, ...listed];
  }
}

export const preMsrListFixedFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreMsrListFixedFixVcpu(host, opts);
