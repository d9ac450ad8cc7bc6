/**
 * bugs.md #14, a rule of the mediated vPMU rather than a fixed bug: mediated load does not zero
 * the physical counters the guest was not given, so RDPMC may pass through only when the guest
 * has every counter of the host at full width (kvm_need_rdpmc_intercept). This design breaks the
 * rule the way a naive pass-through would: RDPMC is intercepted only for narrower counters, so a
 * guest with fewer counters than the host reads unexposed physical counters (host values) where
 * bare metal raises #GP.
 */

import { lowMask } from '../../hw/bits.js';
import type { HostKernel } from '../../host/perf.js';
import { MediatedVcpu } from '../mediated/vcpu.js';
import type { GuestCpuid } from '../types.js';

export class RdpmcPassthroughVcpu extends MediatedVcpu {
  protected override refresh(): void {
    super.refresh();
    const pmu = this.s.pmu;
    // The count check left out: only a narrower counter keeps RDPMC exiting.
    this.s.rdpmcExiting =
      pmu.counter_bitmask_gp !== lowMask(this.s.host.profile.gpWidth) ||
      pmu.counter_bitmask_fixed !== lowMask(this.s.host.profile.fixedWidth);
  }
}

export const rdpmcPassthroughUnexposed = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new RdpmcPassthroughVcpu(host, opts);
