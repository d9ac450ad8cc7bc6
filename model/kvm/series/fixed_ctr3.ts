/**
 * FIXED_CTR3 (SLOTS) as both topdown series expose it, by the same changes (seed 002 patch 02/13, Like Xu's RFC patches
 * 5/8 and 8/8): KVM's fixed-counter maximum goes from 3 to 4, the fourth counts perf's slots pseudo-encoding, and
 * PERF_METRICS joins the MSRs a VMM saves where KVM offers it. Each series' file takes these into its record.
 */

import type { Profile } from '../../hw/profile.js';
import { MSR_IA32_PERF_CAPABILITIES, PERF_CAP_PERF_METRICS } from '../../hw/msr/capabilities.js';
import { MSR_PERF_METRICS } from '../../hw/msr/topdown.js';
import { KVM_FIXED_PMC_BASE_IDX } from '../common/state.js';
import type { KvmPmuCap } from '../common/pmu.h.js';
import { EMULATED_OPS } from '../emulated/ops.js';
import { type KvmVcpuState, newPmc } from '../emulated/state.js';

/** KVM_MAX_NR_INTEL_FIXED_COUTNERS with FIXED_CTR3. */
export const TOPDOWN_MAX_NR_FIXED = 4;
/** PSEUDO_ARCH_TOPDOWN_SLOTS: fixed_pmc_events[3], perf's slots pseudo-encoding (event 0x00, umask 0x04). */
export const PSEUDO_ARCH_TOPDOWN_SLOTS = 0x0400n;
/** INTEL_PMC_IDX_FIXED_SLOTS: FC3 in KVM's PMC index space. */
export const INTEL_PMC_IDX_FIXED_SLOTS = KVM_FIXED_PMC_BASE_IDX + 3;

/** kvm_init_pmu_capability with FIXED_CTR3: up to four fixed counters. */
export function kvm_init_pmu_capability(host: Profile): KvmPmuCap {
  const cap = EMULATED_OPS.kvm_init_pmu_capability(host);
  if (!cap.enable_pmu) return cap;
  return { ...cap, num_counters_fixed: Math.min(host.nFixedContig, TOPDOWN_MAX_NR_FIXED) };
}

/** kvm_pmu_init + intel_pmu_init with FIXED_CTR3 counting the slots event; `fields` are the series' kvm_pmc fields. */
export function kvm_pmu_init_with_slots(vcpu: KvmVcpuState, fields: object): void {
  EMULATED_OPS.kvm_pmu_init(vcpu);
  const fc3 = newPmc(INTEL_PMC_IDX_FIXED_SLOTS, 'fixed');
  fc3.eventsel = PSEUDO_ARCH_TOPDOWN_SLOTS;
  vcpu.pmu.fixed_counters.push(fc3);
  // Object.assign per PMC: each gets its own copy of the fields (an array field must not be shared).
  for (const pmc of [...vcpu.pmu.gp_counters, ...vcpu.pmu.fixed_counters]) Object.assign(pmc, structuredClone(fields));
}

/** kvm_get_msr_index_list with PERF_METRICS in msrs_to_save where KVM offers it. */
export function kvm_get_msr_index_list(vcpu: KvmVcpuState): number[] {
  const l = EMULATED_OPS.kvm_get_msr_index_list(vcpu);
  if (!vcpu.kvm_pmu_cap.enable_pmu || (vcpu.supported_perf_cap & PERF_CAP_PERF_METRICS) === 0n) return l;
  l.splice(l.indexOf(MSR_IA32_PERF_CAPABILITIES), 0, MSR_PERF_METRICS);
  return l;
}
