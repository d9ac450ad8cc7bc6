/**
 * Planted faults in common/filter.ts (the event filter of arch/x86/kvm/pmu.c), planted in the
 * perf-based design's pmc_is_event_allowed, the one caller of the filter's predicates.
 */

import { is_gp_event_allowed, KVM_PMU_EVENT_DENY } from '../common/filter.js';
import { KVM_FIXED_PMC_BASE_IDX } from '../common/state.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';

/** is_fixed_event_allowed without its ALLOW-and-not-in-bitmap return: an allow list lets every fixed counter count. */
export const FILTER_ALLOW_ALL_FIXED: EmulatedOps = {
  ...EMULATED_OPS,
  pmc_is_event_allowed(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
    const f = vcpu.kvm.pmu_event_filter;
    if (f === null) return true;
    if (pmc.type === 'gp') return is_gp_event_allowed(f, pmc.eventsel);
    const set = ((f.fixed_counter_bitmap >>> (pmc.idx - KVM_FIXED_PMC_BASE_IDX)) & 1) === 1;
    return !(f.action === KVM_PMU_EVENT_DENY && set);
  },
};

/** is_gp_event_allowed ignores the exclude entries of a masked filter (`&& !filter_contains_match(excludes)` deleted). */
export const FILTER_EXCLUDES_IGNORED: EmulatedOps = {
  ...EMULATED_OPS,
  pmc_is_event_allowed(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
    const f = vcpu.kvm.pmu_event_filter;
    if (f === null || pmc.type !== 'gp') return EMULATED_OPS.pmc_is_event_allowed(vcpu, pmc);
    return is_gp_event_allowed({ ...f, excludes: [] }, pmc.eventsel);
  },
};
