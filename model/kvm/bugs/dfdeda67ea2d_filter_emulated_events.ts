/**
 * Bug #49 of bugs.md, before "KVM: x86/pmu: Prevent the PMU from counting disallowed events"
 * (dfdeda67ea2d, 6.4): kvm_pmu_trigger_event() counted instructions and branches KVM emulated or
 * skipped without asking the VM's event filter, so a counter whose event the VMM denied still
 * counted every intercepted guest instruction (while its perf event, rightly, was never created).
 */

import { bit } from '../../hw/bits.js';
import { cpl_is_matched } from '../common/pmu.js';
import { kvm_pmu_has_perf_global_ctrl, validPmcs } from '../common/pmu.h.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

export const FIXED_BY = 'dfdeda67ea2d';

/** The commit dfdeda67ea2d's own Fixes: tag names: where kvm_pmu_trigger_event started counting without the filter. */
export const FIXES = { commit: '9cd803d496e7', subject: 'KVM: x86: Update vPMCs when retiring instructions' } as const;

/** The pre-fix kvm_pmu_trigger_event: every PMC counting the event is bumped; the filter is not asked. */
function kvm_pmu_trigger_event(vcpu: KvmVcpuState, counting: bigint, cpl: number): void {
  const pmu = vcpu.pmu;
  let mask = counting;
  if (kvm_pmu_has_perf_global_ctrl(pmu)) mask &= pmu.global_ctrl;
  for (const pmc of validPmcs(pmu)) {
    if ((mask & bit(pmc.idx)) === 0n || !cpl_is_matched(vcpu, pmc, cpl)) continue;
    vcpu.ops.kvm_pmu_incr_counter(vcpu, pmc);
  }
}

export const PRE_FILTER_EMULATED_EVENTS_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, kvm_pmu_trigger_event };
