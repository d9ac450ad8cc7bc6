/**
 * The VMX side of the vPMU: a port of the PMU-relevant parts of arch/x86/kvm/vmx/vmx.c.
 * Advertised PERF_CAPABILITIES, the DEBUGCTL write path, LBR MSR pass-through, and the MSR state
 * that VM-entry and VM-exit switch (kvm-vpmu.md §2.13–§2.15).
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import type { HostKernel, X86PmuLbr } from '../../host/perf.js';
import { cpuid_model_is_consistent, intel_pmu_lbr_is_enabled, lbrMsrs } from './pmu_intel.js';
import { INTEL_PMC_IDX_FIXED_VLBR, type KvmVcpuState } from './state.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';
import {
  MSR_IA32_DEBUGCTLMSR,
  DEBUGCTLMSR_FREEZE_LBRS_ON_PMI,
  DEBUGCTLMSR_LBR,
  DEBUGCTLMSR_RTM_DEBUG,
  DEBUGCTLMSR_BTF,
} from '../../hw/msr/debugctl.js';
import { PERF_CAP_FW_WRITES, PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';
import { relied } from '../../hw/relied.js';

/** kvm_caps.supported_perf_cap and vmx_lbr_caps, which vmx_get_perf_capabilities fills at module load. */
export interface VmxPerfCaps {
  readonly supportedPerfCap: bigint;
  readonly lbrCaps: X86PmuLbr;
}

export const NO_LBR_CAPS: X86PmuLbr = Object.freeze({ nr: 0, from: 0, to: 0, info: 0, hasCallstack: false });

/**
 * vmx_get_perf_capabilities: FW_WRITES, and the host's LBR format iff perf manages LBRs with
 * call-stack support (145dfad998ea) on a host without Arch LBR (098f4c061ea1). PEBS is not ported.
 */
export function vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps {
  if (!enablePmu) return { supportedPerfCap: 0n, lbrCaps: NO_LBR_CAPS };
  let cap = PERF_CAP_FW_WRITES;
  let lbrCaps = NO_LBR_CAPS;
  if (host.profile.archLbr === undefined) {
    lbrCaps = host.x86_perf_get_lbr();
    // KVM needs LBR call-stack support: context-switching LBRs without it costs too much.
    if (!lbrCaps.hasCallstack) lbrCaps = NO_LBR_CAPS;
    else if (lbrCaps.nr !== 0) cap |= host.profile.perfCapabilities & PERF_CAP_LBR_FMT;
  }
  return { supportedPerfCap: cap, lbrCaps };
}

/** vmx_get_supported_debugctl: LBR and FREEZE_LBRS_ON_PMI with guest LBR, RTM_DEBUG with RTM. */
export function vmx_get_supported_debugctl(vcpu: KvmVcpuState, hostInitiated: boolean): bigint {
  let d = 0n;
  const lbrAdvertised = (vcpu.supported_perf_cap & PERF_CAP_LBR_FMT) !== 0n; // kvm_caps.supported_perf_cap
  if (lbrAdvertised && (hostInitiated || intel_pmu_lbr_is_enabled(vcpu)))
    d |= DEBUGCTLMSR_LBR | DEBUGCTLMSR_FREEZE_LBRS_ON_PMI;
  if (vcpu.host.profile.tsx && (hostInitiated || vcpu.cpuid.tsx === true)) d |= DEBUGCTLMSR_RTM_DEBUG;
  return d;
}

/** The bits vmx_is_valid_debugctl finds invalid: unsupported BTF/LBR are dropped, any other unsupported bit is. */
function invalid_debugctl_bits(vcpu: KvmVcpuState, data: bigint, hostInitiated: boolean): bigint {
  const invalid = data & ~vcpu.ops.vmx_get_supported_debugctl(vcpu, hostInitiated);
  return invalid & ~(DEBUGCTLMSR_BTF | DEBUGCTLMSR_LBR); // kvm_pr_unimpl_wrmsr, then ignored
}

/** vmx_is_valid_debugctl. */
function vmx_is_valid_debugctl(vcpu: KvmVcpuState, data: bigint, hostInitiated: boolean): boolean {
  return invalid_debugctl_bits(vcpu, data, hostInitiated) === 0n;
}

/** vmx_set_msr(MSR_IA32_DEBUGCTLMSR): store in the VMCS; DEBUGCTL.LBR creates the guest LBR event. */
export function vmx_set_debugctl(vcpu: KvmVcpuState, value: bigint, hostInitiated: boolean): Access {
  if (!vmx_is_valid_debugctl(vcpu, value, hostInitiated))
    return gp(
      'IA32_DEBUGCTL: bits KVM does not support (vmx_is_valid_debugctl)',
      invalid_debugctl_bits(vcpu, value, hostInitiated),
    );
  const data = value & vcpu.ops.vmx_get_supported_debugctl(vcpu, hostInitiated);
  vcpu.guestDebugctl = data; // vmx_guest_debugctl_write
  if (intel_pmu_lbr_is_enabled(vcpu) && vcpu.lbr.event === null && (data & DEBUGCTLMSR_LBR) !== 0n)
    vcpu.ops.intel_pmu_create_guest_lbr_event(vcpu);
  return ok(data);
}

/** vmx_set_msr(MSR_IA32_PERF_CAPABILITIES) vendor checks before kvm_set_msr_common. */
export function vmx_check_perf_capabilities(vcpu: KvmVcpuState, data: bigint): string | null {
  if (data !== 0n && vcpu.pmu.version === 0) {
    relied('K7');
    return 'PERF_CAPABILITIES: a non-zero value needs a vPMU (K7)';
  }
  const fmt = data & PERF_CAP_LBR_FMT;
  if (fmt !== 0n) {
    if (fmt !== (vcpu.supported_perf_cap & PERF_CAP_LBR_FMT))
      return `PERF_CAPABILITIES: LBR_FMT ${fmt} is not the host's`;
    // The guest's x86_model against the host's, whatever the family.
    if (!cpuid_model_is_consistent(vcpu))
      return "PERF_CAPABILITIES: LBR_FMT needs the guest model to be the host's (cpuid_model_is_consistent)";
  }
  return null;
}

/** vmx_passthrough_lbr_msrs: before each VM-entry, pass the LBR MSRs through iff the guest LBR event is ACTIVE. */
export function vmx_passthrough_lbr_msrs(vcpu: KvmVcpuState): void {
  const ev = vcpu.lbr.event;
  // No event: pr_warn if DEBUGCTL.LBR or the in-use bit is set ("fail to passthrough LBR").
  const intercept = ev === null || ev.state !== 'ACTIVE';
  if (ev !== null && intercept) vcpu.pmu.pmc_in_use &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
  vmx_update_intercept_for_lbr_msrs(vcpu, intercept);
}

/** vmx_update_intercept_for_lbr_msrs: flip the MSR bitmap, unless it is already so. */
function vmx_update_intercept_for_lbr_msrs(vcpu: KvmVcpuState, set: boolean): void {
  if (vcpu.lbr.msr_passthrough === !set) return;
  for (const m of lbrMsrs(vcpu)) {
    if (set) vcpu.passthrough.delete(m);
    else vcpu.passthrough.add(m);
  }
  vcpu.lbr.msr_passthrough = !set;
}

/**
 * vmx_vcpu_run up to VM-entry: the LBR MSR bitmap, then the entry's MSR switch (atomic_switch_perf_msrs:
 * perf's GLOBAL_CTRL pair, loaded only when the two differ) and the VMCS DEBUGCTL, with the host's
 * DEBUGCTL snapshotted for the exit.
 */
export function vmx_vcpu_enter(vcpu: KvmVcpuState): void {
  if (intel_pmu_lbr_is_enabled(vcpu)) vcpu.ops.vmx_passthrough_lbr_msrs(vcpu);
  const hw = vcpu.host.pcpu(vcpu.cpu).hw;
  const msrs = (vcpu.msr_autoload = vcpu.host.perf_guest_get_msrs(vcpu.cpu));
  vcpu.cost.entries++;
  // add_atomic_switch_msr only when the two values differ; else the entry loads nothing.
  if (msrs.guest !== msrs.host) vcpu.cost.entryExitMsrAccesses++;
  const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
  vcpu.host_debugctlmsr = dbg.ok ? dbg.value : 0n;
  hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, msrs.guest);
  hw.wrmsr(MSR_IA32_DEBUGCTLMSR, vcpu.guestDebugctl);
  hw.mode = 'guest';
  vcpu.inGuest = true;
}

/** vmx_vcpu_run after VM-exit: save the guest DEBUGCTL, load the host's GLOBAL_CTRL and DEBUGCTL. */
export function vmx_vcpu_exit(vcpu: KvmVcpuState): void {
  if (!vcpu.inGuest) return;
  const hw = vcpu.host.pcpu(vcpu.cpu).hw;
  const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
  if (dbg.ok) vcpu.guestDebugctl = dbg.value & ~bit(63); // "save debug controls"
  hw.wrmsr(MSR_IA32_DEBUGCTLMSR, vcpu.host_debugctlmsr);
  hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, vcpu.msr_autoload.host);
  // The exit's MSR-load list (GLOBAL_CTRL) and update_debugctlmsr when the host's DEBUGCTL is not 0.
  if (vcpu.msr_autoload.guest !== vcpu.msr_autoload.host) vcpu.cost.entryExitMsrAccesses++;
  if (vcpu.host_debugctlmsr !== 0n) vcpu.cost.entryExitMsrAccesses++;
  hw.mode = 'host';
  vcpu.inGuest = false;
}
