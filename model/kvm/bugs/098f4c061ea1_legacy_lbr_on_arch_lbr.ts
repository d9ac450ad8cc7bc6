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
import { EmulatedVcpu } from '../emulated/vcpu.js';
import { NO_LBR_CAPS, vmx_get_perf_capabilities, type VmxPerfCaps } from '../emulated/vmx.js';
import type { GuestCpuid } from '../types.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';

export const FIXED_BY = '098f4c061ea1';

export class PreNoLegacyLbrOnArchLbrFixVcpu extends EmulatedVcpu {
  /** The pre-fix vmx_get_perf_capabilities: x86_perf_get_lbr is asked on Arch LBR hosts too. */
  protected override vmxGetPerfCapabilities(host: HostKernel): VmxPerfCaps {
    const fixed = vmx_get_perf_capabilities(host, this.cap.enable_pmu);
    if ((fixed.supportedPerfCap & PERF_CAP_FW_WRITES) === 0n || host.profile.archLbr === undefined) return fixed;
    const lbr = host.x86_perf_get_lbr();
    if (!lbr.hasCallstack) return { ...fixed, lbrCaps: NO_LBR_CAPS };
    const fmt = lbr.nr !== 0 ? host.profile.perfCapabilities & PERF_CAP_LBR_FMT : 0n;
    return { supportedPerfCap: fixed.supportedPerfCap | fmt, lbrCaps: lbr };
  }
}

export const preNoLegacyLbrOnArchLbrFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreNoLegacyLbrOnArchLbrFixVcpu(host, opts);
