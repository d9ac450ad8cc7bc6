/**
 * Bug #34 of bugs.md, before "KVM: x86/pmu: Reset the PMU, i.e. stop counters, before refreshing"
 * (1647b52757d5, 6.8; Cc stable): kvm_pmu_refresh() realized the new vPMU model (KVM_SET_CPUID2,
 * or a new PERF_CAPABILITIES) without first stopping the counters and releasing their perf events
 * with kvm_pmu_reset(). Whatever the VMM had restored (counters, selectors, FIXED_CTR_CTRL,
 * GLOBAL_STATUS) and any live event (the guest LBR event a host DEBUGCTL write creates) survived
 * into the new model, so its guest starts on stale state instead of a reset PMU.
 */

import { lowMask } from '../../hw/bits.js';
import type { HostKernel } from '../../host/perf.js';
import { kvm_pmu_refresh_defaults, kvm_pmu_refresh_valid_pmcs } from '../common/pmu.js';
import { intel_pmu_refresh } from '../emulated/pmu_intel.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export const FIXED_BY = '1647b52757d5';

export class PreRefreshResetFixVcpu extends EmulatedVcpu {
  /** The pre-fix kvm_pmu_refresh: today's, minus the kvm_pmu_reset() at its top. */
  protected override refresh(): void {
    const vcpu = this.s;
    if (vcpu.hasRun) throw new Error('KVM_BUG_ON: kvm_pmu_refresh after the first KVM_RUN');
    const pmu = vcpu.pmu;
    kvm_pmu_refresh_defaults(pmu);
    if (!this.cap.enable_pmu) return;
    intel_pmu_refresh(vcpu, this.cap);
    if (pmu.nr_arch_gp_counters > 0 && pmu.version > 1) pmu.global_ctrl = lowMask(pmu.nr_arch_gp_counters);
    kvm_pmu_refresh_valid_pmcs(pmu);
  }
}

export const preRefreshResetFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreRefreshResetFixVcpu(host, opts);
