/**
 * The VMX side of the mediated vPMU: a port of the PMU-relevant parts of arch/x86/kvm/vmx/vmx.c
 * with enable_mediated_pmu: advertised PERF_CAPABILITIES (no LBR, no PEBS), DEBUGCTL without
 * guest LBR, and the MSR-bitmap and RDPMC-exiting decisions (vmx_recalc_pmu_msr_intercepts,
 * vmx_recalc_instruction_intercepts). kvm-vpmu.md §2.13, §2.15, §2.19.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { fw_writes_is_enabled } from '../common/pmu_intel.js';
import type { MediatedVcpuState } from './state.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';
import { MSR_IA32_PERFCTR0, MSR_IA32_PMC0, MSR_CORE_PERF_FIXED_CTR0 } from '../../hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS,
} from '../../hw/msr/global.js';
import {
  MSR_IA32_DEBUGCTLMSR,
  DEBUGCTLMSR_RTM_DEBUG,
  DEBUGCTLMSR_BTF,
  DEBUGCTLMSR_LBR,
} from '../../hw/msr/debugctl.js';
import { bit } from '../../hw/bits.js';
import { ModelError } from '../../hw/errors.js';
import { relied } from '../../hw/relied.js';

/** vmx_get_perf_capabilities with the mediated vPMU: FW_WRITES only (LBR_FMT and PEBS need it off). */
export function vmx_get_perf_capabilities(enablePmu: boolean): bigint {
  return enablePmu ? PERF_CAP_FW_WRITES : 0n;
}

/** vmx_get_supported_debugctl: no LBR bits (LBR_FMT is never advertised here); RTM_DEBUG with RTM. */
export function vmx_get_supported_debugctl(vcpu: MediatedVcpuState, hostInitiated: boolean): bigint {
  let d = 0n;
  if (vcpu.host.profile.tsx && (hostInitiated || vcpu.cpuid.tsx === true)) d |= DEBUGCTLMSR_RTM_DEBUG;
  return d;
}

/** The bits vmx_is_valid_debugctl finds invalid: unsupported BTF/LBR are dropped, any other unsupported bit is. */
function invalid_debugctl_bits(vcpu: MediatedVcpuState, data: bigint, hostInitiated: boolean): bigint {
  const invalid = data & ~vcpu.ops.vmx_get_supported_debugctl(vcpu, hostInitiated);
  return invalid & ~(DEBUGCTLMSR_BTF | DEBUGCTLMSR_LBR); // kvm_pr_unimpl_wrmsr, then ignored
}

/** vmx_is_valid_debugctl. */
function vmx_is_valid_debugctl(vcpu: MediatedVcpuState, data: bigint, hostInitiated: boolean): boolean {
  return invalid_debugctl_bits(vcpu, data, hostInitiated) === 0n;
}

/** vmx_set_msr(MSR_IA32_DEBUGCTLMSR): into the VMCS; DEBUGCTL.LBR is not virtualized with the mediated vPMU. */
export function vmx_set_debugctl(vcpu: MediatedVcpuState, value: bigint, hostInitiated: boolean): Access {
  if (!vmx_is_valid_debugctl(vcpu, value, hostInitiated))
    return gp(
      'IA32_DEBUGCTL: bits KVM does not support (vmx_is_valid_debugctl)',
      invalid_debugctl_bits(vcpu, value, hostInitiated),
    );
  const data = value & vcpu.ops.vmx_get_supported_debugctl(vcpu, hostInitiated);
  vcpu.guestDebugctl = data;
  return ok(data);
}

/**
 * vmx_set_msr(MSR_IA32_PERF_CAPABILITIES) vendor checks: a non-zero value needs a vPMU (K7); LBR_FMT is never
 * supported.
 */
export function vmx_check_perf_capabilities(vcpu: MediatedVcpuState, data: bigint): string | null {
  if (data !== 0n && vcpu.pmu.version === 0) {
    relied('K7');
    return 'PERF_CAPABILITIES: a non-zero value needs a vPMU (K7)';
  }
  if ((data & PERF_CAP_LBR_FMT) !== 0n) return 'PERF_CAPABILITIES: LBR_FMT is not supported with the mediated vPMU';
  return null;
}

function setIntercept(vcpu: MediatedVcpuState, msr: number, intercept: boolean): void {
  if (intercept) vcpu.passthrough.delete(msr);
  else vcpu.passthrough.add(msr);
}

/**
 * vmx_recalc_pmu_msr_intercepts: counters of exposed PMCs pass through (IA32_PMCx only with
 * FW_WRITES), every other counter MSR KVM could expose is intercepted; GLOBAL_CTRL, STATUS and
 * OVF_CTRL pass through iff kvm_need_perf_global_ctrl_intercept says so. Event selectors and
 * FIXED_CTR_CTRL always exit, so the event filter can be applied.
 */
export function vmx_recalc_pmu_msr_intercepts(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  const cap = vcpu.kvm_pmu_cap;
  let i = 0;
  for (; i < pmu.nr_arch_gp_counters; i++) {
    setIntercept(vcpu, MSR_IA32_PERFCTR0 + i, false);
    setIntercept(vcpu, MSR_IA32_PMC0 + i, !fw_writes_is_enabled(vcpu));
  }
  for (; i < cap.num_counters_gp; i++) {
    setIntercept(vcpu, MSR_IA32_PERFCTR0 + i, true);
    setIntercept(vcpu, MSR_IA32_PMC0 + i, true);
  }
  let j = 0;
  for (; j < pmu.nr_arch_fixed_counters; j++) setIntercept(vcpu, MSR_CORE_PERF_FIXED_CTR0 + j, false);
  for (; j < cap.num_counters_fixed; j++) setIntercept(vcpu, MSR_CORE_PERF_FIXED_CTR0 + j, true);
  const intercept = vcpu.ops.kvm_need_perf_global_ctrl_intercept(vcpu);
  setIntercept(vcpu, MSR_CORE_PERF_GLOBAL_STATUS, intercept);
  setIntercept(vcpu, MSR_CORE_PERF_GLOBAL_CTRL, intercept);
  setIntercept(vcpu, MSR_CORE_PERF_GLOBAL_OVF_CTRL, intercept);
}

/** vmx_recalc_instruction_intercepts: CPU_BASED_RDPMC_EXITING per kvm_need_rdpmc_intercept. */
export function vmx_recalc_instruction_intercepts(vcpu: MediatedVcpuState): void {
  vcpu.rdpmcExiting = vcpu.ops.kvm_need_rdpmc_intercept(vcpu);
}

/** VM-entry: GLOBAL_CTRL and DEBUGCTL from the VMCS guest area, the guest's CR4.PCE. */
export function vmx_vcpu_enter(vcpu: MediatedVcpuState): void {
  const hw = vcpu.host.pcpu(vcpu.cpu).hw;
  must(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, vcpu.vmcsGuestPerfGlobalCtrl), 'VM-entry GUEST_IA32_PERF_GLOBAL_CTRL');
  must(hw.wrmsr(MSR_IA32_DEBUGCTLMSR, vcpu.guestDebugctl), 'VM-entry GUEST_IA32_DEBUGCTL');
  vcpu.hostCr4Pce = hw.cr4Pce;
  hw.cr4Pce = vcpu.cr4Pce;
  hw.mode = 'guest';
  vcpu.cost.entries++;
  vcpu.inGuest = true;
}

/**
 * VM-exit: GLOBAL_CTRL saved to the VMCS and cleared (host value 0), DEBUGCTL switched; then
 * vcpu_enter_guest's tail puts the guest PMU (kvm_mediated_pmu_put).
 */
export function vmx_vcpu_exit(vcpu: MediatedVcpuState): void {
  if (!vcpu.inGuest) return;
  const hw = vcpu.host.pcpu(vcpu.cpu).hw;
  vcpu.vmcsGuestPerfGlobalCtrl = must(hw.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL), 'VM-exit save PERF_GLOBAL_CTRL');
  must(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n), 'VM-exit load PERF_GLOBAL_CTRL');
  // vmx_vcpu_run: the guest's GLOBAL_CTRL is only read back when the guest could write it.
  if (vcpu.passthrough.has(MSR_CORE_PERF_GLOBAL_CTRL)) vcpu.pmu.global_ctrl = vcpu.vmcsGuestPerfGlobalCtrl;
  const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
  if (dbg.ok) vcpu.guestDebugctl = dbg.value & ~bit(63);
  must(hw.wrmsr(MSR_IA32_DEBUGCTLMSR, vcpu.host_debugctlmsr), 'VM-exit host DEBUGCTL');
  hw.cr4Pce = vcpu.hostCr4Pce;
  hw.mode = 'host';
  vcpu.inGuest = false;
  vcpu.ops.kvm_mediated_pmu_put(vcpu);
}

function must(a: Access, what: string): bigint {
  if (!a.ok) throw new ModelError(`KVM: ${what} faulted: ${a.gp}`);
  return a.value;
}
