/**
 * Bug #45 of bugs.md, before "KVM: x86: Reject userspace attempts to access PERF_CAPABILITIES
 * w/o PDCM" (d75cac366f44, ~6.12): the host-initiated paths of IA32_PERF_CAPABILITIES ignored
 * guest CPUID. KVM_GET_MSRS returned the stored value (by default what KVM supports) and
 * KVM_SET_MSRS accepted and stored any supported value for a vCPU without PDCM, where it now reads
 * 0 and accepts only 0 (KVM_MSR_RET_UNSUPPORTED), matching "set CPUID first, then MSRs".
 */

import type { HostKernel } from '../../host/perf.js';
import { vmx_check_perf_capabilities } from '../emulated/vmx.js';
import { EmulatedVcpu } from '../emulated/vcpu.js';
import type { GuestCpuid, HostAccess } from '../types.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../hw/msr/capabilities.js';

export const FIXED_BY = 'd75cac366f44';

export class PrePerfCapsPdcmFixVcpu extends EmulatedVcpu {
  override hostGetMsr(msr: number): HostAccess {
    if (msr === MSR_IA32_PERF_CAPABILITIES && !this.s.cpuid.pdcm) return { ok: true, value: this.s.perf_capabilities };
    return super.hostGetMsr(msr);
  }

  override hostSetMsr(msr: number, value: bigint): HostAccess {
    if (msr !== MSR_IA32_PERF_CAPABILITIES || this.s.cpuid.pdcm) return super.hostSetMsr(msr, value);
    // kvm_set_msr_common without the PDCM check: immutable after KVM_RUN, vendor checks, then refresh.
    const s = this.s;
    if (s.hasRun && value !== s.perf_capabilities)
      return { ok: false, error: 'PERF_CAPABILITIES cannot change after KVM_RUN (-EINVAL)' };
    const why = vmx_check_perf_capabilities(s, value);
    if (why !== null) return { ok: false, error: why };
    if ((value & ~s.supported_perf_cap) !== 0n)
      return { ok: false, error: 'PERF_CAPABILITIES: bits KVM does not support' };
    if (s.perf_capabilities !== value) {
      s.perf_capabilities = value;
      this.refresh();
    }
    return { ok: true, value };
  }
}

export const prePerfCapsPdcmFix = (host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid }) =>
  new PrePerfCapsPdcmFixVcpu(host, opts);
