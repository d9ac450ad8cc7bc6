/**
 * Bug #34 of bugs.md, before "KVM: x86/pmu: Reset the PMU, i.e. stop counters, before refreshing"
 * (1647b52757d5, 6.8; Cc stable): kvm_pmu_refresh() realized the new vPMU model (KVM_SET_CPUID2,
 * or a new PERF_CAPABILITIES) without first stopping the counters and releasing their perf events
 * with kvm_pmu_reset(). Whatever the VMM had restored (counters, selectors, FIXED_CTR_CTRL,
 * GLOBAL_STATUS) and any live event (the guest LBR event a host DEBUGCTL write creates) survived
 * into the new model, so its guest starts on stale state instead of a reset PMU.
 */

import { lowMask } from '../../hw/bits.js';
import { kvm_pmu_refresh_defaults, kvm_pmu_refresh_valid_pmcs } from '../common/pmu.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = '1647b52757d5';

/** The pre-fix kvm_pmu_refresh: today's, minus the kvm_pmu_reset() at its top. */
function kvm_pmu_refresh(vcpu: KvmVcpuState): void {
  if (vcpu.hasRun) throw new Error('KVM_BUG_ON: kvm_pmu_refresh after the first KVM_RUN');
  const pmu = vcpu.pmu;
  kvm_pmu_refresh_defaults(pmu);
  if (!vcpu.kvm.enable_pmu) return;
  vcpu.ops.intel_pmu_refresh(vcpu);
  if (pmu.nr_arch_gp_counters > 0 && pmu.version > 1) pmu.global_ctrl = lowMask(pmu.nr_arch_gp_counters);
  kvm_pmu_refresh_valid_pmcs(pmu);
}

export const PRE_REFRESH_RESET_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, kvm_pmu_refresh };
