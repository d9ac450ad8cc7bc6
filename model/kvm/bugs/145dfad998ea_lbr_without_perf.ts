/**
 * Bug #11 of bugs.md, before "KVM: VMX: Advertise PMU LBRs if and only if perf supports LBRs"
 * (145dfad998ea, 6.1): vmx_get_perf_capabilities took PERF_CAPABILITIES.LBR_FMT from the host
 * MSR without asking perf. Where perf had disabled the LBRs (its boot probe faulted, x86_pmu.lbr_nr
 * = 0) KVM still offered the format, while intel_pmu_refresh, which copies perf's records, gave
 * the vCPU none: the guest is told it has LBRs whose MSRs #GP and whose DEBUGCTL.LBR is dropped.
 * The host where this shows is the environment (HostKernel's lbrProbeFaulted), not part of the patch.
 */

import type { HostKernel } from '../../host/perf.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import { vmx_get_perf_capabilities, type VmxPerfCaps } from '../emulated/vmx.js';
import type { GuestCpuid } from '../types.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';

export const FIXED_BY = '145dfad998ea';

export class PreLbrIffPerfFixVcpu extends EmulatedVcpu {
  /** The pre-fix vmx_get_perf_capabilities: the host's LBR_FMT whatever x86_perf_get_lbr says. */
  protected override vmxGetPerfCapabilities(host: HostKernel): VmxPerfCaps {
    const fixed = vmx_get_perf_capabilities(host, this.cap.enable_pmu);
    if ((fixed.supportedPerfCap & PERF_CAP_FW_WRITES) === 0n || host.profile.archLbr !== undefined) return fixed;
    return { ...fixed, supportedPerfCap: fixed.supportedPerfCap | (host.profile.perfCapabilities & PERF_CAP_LBR_FMT) };
  }
}

export const preLbrIffPerfFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PreLbrIffPerfFixVcpu(host, opts);
