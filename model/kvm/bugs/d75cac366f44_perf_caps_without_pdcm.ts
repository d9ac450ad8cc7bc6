/**
 * Bug #45 of bugs.md, before "KVM: x86: Reject userspace attempts to access PERF_CAPABILITIES
 * w/o PDCM" (d75cac366f44, ~6.12): the host-initiated paths of IA32_PERF_CAPABILITIES ignored
 * guest CPUID. KVM_GET_MSRS returned the stored value (by default what KVM supports) and
 * KVM_SET_MSRS accepted and stored any supported value for a vCPU without PDCM, where it now reads
 * 0 and accepts only 0 (KVM_MSR_RET_UNSUPPORTED), matching "set CPUID first, then MSRs".
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../hw/msr/capabilities.js';

export const FIXED_BY = 'd75cac366f44';

/** The pre-fix kvm_get_msr_common(PERF_CAPABILITIES): only the guest's read asks for PDCM. */
function kvm_get_msr_common(vcpu: KvmVcpuState, msr: number, host: boolean): Access | null {
  if (msr !== MSR_IA32_PERF_CAPABILITIES) return EMULATED_OPS.kvm_get_msr_common(vcpu, msr, host);
  if (!host && !vcpu.cpuid.pdcm) return gp('IA32_PERF_CAPABILITIES: guest CPUID has no PDCM');
  return ok(vcpu.perf_capabilities);
}

/** The pre-fix kvm_set_msr_common(PERF_CAPABILITIES): no PDCM check. */
function kvm_set_msr_common(vcpu: KvmVcpuState, msr: number, data: bigint, host: boolean): Access | null {
  if (msr !== MSR_IA32_PERF_CAPABILITIES) return EMULATED_OPS.kvm_set_msr_common(vcpu, msr, data, host);
  if (!host) return gp('IA32_PERF_CAPABILITIES is read-only to the guest');
  const why = vcpu.ops.vmx_check_perf_capabilities(vcpu, data);
  if (why !== null) return gp(why);
  if ((data & ~vcpu.supported_perf_cap) !== 0n) return gp('PERF_CAPABILITIES: bits KVM does not support');
  if (vcpu.perf_capabilities !== data) {
    vcpu.perf_capabilities = data;
    vcpu.ops.kvm_pmu_refresh(vcpu);
  }
  return ok(data);
}

export const PRE_PERF_CAPS_PDCM_FIX_OPS: EmulatedOps = { ...EMULATED_OPS, kvm_get_msr_common, kvm_set_msr_common };
