/**
 * Bug #1 of bugs.md, before "KVM: x86/pmu: fix masking logic for MSR_CORE_PERF_GLOBAL_CTRL"
 * (971079464001, 6.7; regression from c59a1f106f5c): intel_guest_get_msrs() computed the guest's
 * GLOBAL_CTRL as `ctrl & (~host_mask | ~pebs_mask)`. Without host PEBS, ~pebs_mask is all ones,
 * so host-only (exclude_guest) counters stayed enabled while the guest ran.
 */

import { type GuestMsrs, HostKernel } from '../perf.js';

export const FIXED_BY = '971079464001';

export class PreGlobalCtrlMaskFixHost extends HostKernel {
  override perf_guest_get_msrs(cpu: number): GuestMsrs {
    const m = super.perf_guest_get_msrs(cpu);
    // Every active counter, host-only ones included: ctrl & (~host_mask | ~0).
    return { host: m.host, guest: m.host | m.guest };
  }
}
