/**
 * Bug #11 of bugs.md, before "KVM: VMX: Advertise PMU LBRs if and only if perf supports LBRs"
 * (145dfad998ea, 6.1): vmx_get_perf_capabilities took PERF_CAPABILITIES.LBR_FMT from the host
 * MSR without asking perf. Where perf had disabled the LBRs (its boot probe faulted, x86_pmu.lbr_nr
 * = 0) KVM still offered the format, while intel_pmu_refresh, which copies perf's records, gave
 * the vCPU none: the guest is told it has LBRs whose MSRs #GP and whose DEBUGCTL.LBR is dropped.
 * The host where this shows is the environment (HostKernel's lbrProbeFaulted), not part of the patch.
 */

import type { HostKernel } from '../../host/perf.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { VmxPerfCaps } from '../emulated/vmx.js';
import { PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';

export const FIXED_BY = '145dfad998ea';

/** The pre-fix vmx_get_perf_capabilities: the host's LBR_FMT whatever x86_perf_get_lbr says (perf's records kept). */
function vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps {
  const caps = EMULATED_OPS.vmx_get_perf_capabilities(host, enablePmu);
  if (!enablePmu || host.profile.archLbr !== undefined) return caps;
  return { ...caps, supportedPerfCap: caps.supportedPerfCap | (host.profile.perfCapabilities & PERF_CAP_LBR_FMT) };
}

export const PRE_LBR_IFF_PERF_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, vmx_get_perf_capabilities };
