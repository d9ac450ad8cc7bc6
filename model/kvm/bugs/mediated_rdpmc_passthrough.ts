/**
 * bugs.md #14, a rule of the mediated vPMU rather than a fixed bug: mediated load does not zero
 * the physical counters the guest was not given, so RDPMC may pass through only when the guest
 * has every counter of the host at full width (kvm_need_rdpmc_intercept). This design breaks the
 * rule the way a naive pass-through would: RDPMC is intercepted only for narrower counters, so a
 * guest with fewer counters than the host reads unexposed physical counters (host values) where
 * bare metal raises #GP.
 */

import { lowMask } from '../../hw/bits.js';
import { MEDIATED_OPS, type MediatedOps } from '../mediated/ops.js';
import type { MediatedVcpuState } from '../mediated/state.js';

/** kvm_need_rdpmc_intercept with the count check left out: only a narrower counter keeps RDPMC exiting. */
function kvm_need_rdpmc_intercept(vcpu: MediatedVcpuState): boolean {
  const pmu = vcpu.pmu;
  const host = vcpu.kvm_pmu_cap.host;
  return (
    pmu.counter_bitmask_gp !== lowMask(host.bitWidthGp) || pmu.counter_bitmask_fixed !== lowMask(host.bitWidthFixed)
  );
}

export const RDPMC_PASSTHROUGH_UNEXPOSED_OPS: MediatedOps = { ...MEDIATED_OPS, kvm_need_rdpmc_intercept };
