/**
 * Bug #1 of bugs.md, before "KVM: x86/pmu: fix masking logic for MSR_CORE_PERF_GLOBAL_CTRL"
 * (971079464001, 6.7; regression from c59a1f106f5c): intel_guest_get_msrs() computed the guest's
 * GLOBAL_CTRL as `ctrl & (~host_mask | ~pebs_mask)`. Without host PEBS, ~pebs_mask is all ones,
 * so host-only (exclude_guest) counters stayed enabled while the guest ran.
 */

import { type GuestMsrs, HOST_PERF_OPS, type HostKernel, type HostPerfOps } from '../perf.js';

export const FIXED_BY = '971079464001';

/** The pre-fix intel_guest_get_msrs: every active counter for the guest, host-only ones included (ctrl & ~0). */
function intel_guest_get_msrs(host: HostKernel, cpu: number): GuestMsrs {
  const h = host.activeCounters(cpu, 'host');
  return { host: h, guest: h | host.activeCounters(cpu, 'guest') };
}

export const PRE_GLOBAL_CTRL_MASK_FIX_OPS: HostPerfOps = { ...HOST_PERF_OPS, intel_guest_get_msrs };
