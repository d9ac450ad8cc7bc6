/**
 * Planted faults in emulated/pmu_intel.ts (arch/x86/kvm/vmx/pmu_intel.c, the perf-based design's own
 * parts: guest LBRs and their freeze emulation).
 */

import { DEBUGCTLMSR_LBR } from '../../hw/msr/debugctl.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { intel_pmu_lbr_is_enabled } from '../emulated/pmu_intel.js';
import type { KvmVcpuState } from '../emulated/state.js';

/** intel_pmu_deliver_pmi emulates the legacy LBR freeze for v4+ too (`v > 1 && v < 4` became `v > 1`). */
export const LEGACY_FREEZE_ON_V4: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_deliver_pmi(vcpu: KvmVcpuState): void {
    if (intel_pmu_lbr_is_enabled(vcpu) && vcpu.pmu.version > 1) vcpu.ops.intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu);
  },
};

/** intel_pmu_legacy_freezing_lbrs_on_pmi freezes without FREEZE_LBRS_ON_PMI set (its test deleted). */
export const FREEZE_WITHOUT_FRZ: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu: KvmVcpuState): void {
    vcpu.guestDebugctl &= ~DEBUGCTLMSR_LBR;
  },
};

/** intel_pmu_deliver_pmi never emulates the freeze (its call deleted): DEBUGCTL.LBR stays set after a PMI. */
export const NO_LEGACY_FREEZE: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_deliver_pmi(): void {},
};
