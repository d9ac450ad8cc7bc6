/**
 * Bug #10 of bugs.md, before "KVM: x86/pmu: Disallow legacy LBRs if architectural LBRs are
 * available" (098f4c061ea1, as the stable backports' "Stable-dep-of" tags name it; stable e.g.
 * 35bf9fdc3cab; 6.4 per bugs.md): vmx_get_perf_capabilities offered the host's LBR_FMT whenever
 * perf reported LBRs, Arch LBR hosts included. There the format is 0x3f and perf's records are the
 * Arch LBR MSRs, so userspace could give the guest "LBR_FMT 0x3f" without CPUID Arch LBR (KVM has
 * none) — an enumeration no CPU has — and KVM then passed through or proxied legacy LBR_SELECT and
 * LBR_TOS, which do not exist on the part (host "unchecked MSR access" splats).
 */

import type { HostKernel } from '../../host/perf.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { NO_LBR_CAPS, type VmxPerfCaps } from '../emulated/vmx.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';

export const FIXED_BY = '098f4c061ea1';

/** The pre-fix vmx_get_perf_capabilities: x86_perf_get_lbr is asked on Arch LBR hosts too. */
function vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps {
  if (!enablePmu) return { supportedPerfCap: 0n, lbrCaps: NO_LBR_CAPS };
  let cap = PERF_CAP_FW_WRITES;
  let lbrCaps = host.x86_perf_get_lbr();
  // KVM needs LBR call-stack support: context-switching LBRs without it costs too much.
  if (!lbrCaps.hasCallstack) lbrCaps = NO_LBR_CAPS;
  else if (lbrCaps.nr !== 0) cap |= host.profile.perfCapabilities & PERF_CAP_LBR_FMT;
  return { supportedPerfCap: cap, lbrCaps };
}

export const PRE_NO_LEGACY_LBR_ON_ARCH_LBR_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, vmx_get_perf_capabilities };
