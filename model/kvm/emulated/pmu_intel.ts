/**
 * Intel specifics of the perf-backed vPMU: a port of arch/x86/kvm/vmx/pmu_intel.c (counters,
 * FIXED_CTR_CTRL, refresh, RDPMC decoding, guest LBR event and LBR MSR proxying, legacy
 * freeze-LBRs-on-PMI). kvm-vpmu.md §2.4, §2.6, §2.12, §2.13.
 */

import { type Access, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import { attr } from '../../host/types.js';
import {
  intel_is_valid_pmc_msr,
  intel_pmu_get_pmc_msr,
  intel_pmu_refresh as common_intel_pmu_refresh,
  intel_pmu_set_pmc_msr,
  notVpmuMsr,
  reprogram_fixed_counters as common_reprogram_fixed_counters,
  vcpu_get_perf_capabilities,
} from '../common/pmu_intel.js';
import { INTEL_PMC_IDX_FIXED_VLBR, type KvmPmc, type KvmVcpuState } from './state.js';
import { PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS } from '../../hw/msr/lbr_legacy.js';
import { DEBUGCTLMSR_LBR, DEBUGCTLMSR_FREEZE_LBRS_ON_PMI } from '../../hw/msr/debugctl.js';

/** INTEL_FIXED_VLBR_EVENT: the config of the guest LBR event. */
export const INTEL_FIXED_VLBR_EVENT = 0x1b00n;

/** cpuid_model_is_consistent (cpuid.h): the guest's x86_model is the host's, whatever the family; legacy LBRs need it. */
export function cpuid_model_is_consistent(vcpu: KvmVcpuState): boolean {
  return vcpu.cpuid.model === vcpu.host.profile.model;
}

/** intel_pmu_refresh: the shared CPUID.0AH part, then guest LBR iff the host's records are compatible. */
export function intel_pmu_refresh(vcpu: KvmVcpuState): void {
  const lbr = vcpu.lbr;
  lbr.nr = 0;
  common_intel_pmu_refresh(vcpu);
  if (vcpu.pmu.version === 0) return;
  // intel_pmu_lbr_is_compatible: the records are vmx_lbr_caps, i.e. what perf manages.
  if (
    cpuid_model_is_consistent(vcpu) &&
    (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_LBR_FMT) !== 0n &&
    vcpu.lbrCaps.nr !== 0
  ) {
    lbr.nr = vcpu.lbrCaps.nr;
    vcpu.pmu.all_valid_pmc_idx |= bit(INTEL_PMC_IDX_FIXED_VLBR);
  }
}

/** intel_pmu_reset: also drops the guest LBR event. */
export function intel_pmu_reset(vcpu: KvmVcpuState): void {
  vcpu.ops.intel_pmu_release_guest_lbr_event(vcpu);
}

/** intel_pmu_lbr_is_enabled. */
export function intel_pmu_lbr_is_enabled(vcpu: KvmVcpuState): boolean {
  return vcpu.lbr.nr !== 0;
}

/** intel_pmu_is_valid_lbr_msr: LBR_SELECT, LBR_TOS and the records' FROM/TO/INFO (an info base of 0: none). */
export function intel_pmu_is_valid_lbr_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (!intel_pmu_lbr_is_enabled(vcpu)) return false;
  const r = vcpu.lbrCaps;
  const nr = vcpu.lbr.nr;
  const inRange = (base: number) => base !== 0 && msr >= base && msr < base + nr;
  return msr === MSR_LBR_SELECT || msr === MSR_LBR_TOS || inRange(r.from) || inRange(r.to) || inRange(r.info);
}

/** The LBR MSRs passed through while the guest LBR event owns the LBRs. */
export function lbrMsrs(vcpu: KvmVcpuState): number[] {
  if (!intel_pmu_lbr_is_enabled(vcpu)) return [];
  const r = vcpu.lbrCaps;
  const out = [MSR_LBR_SELECT, MSR_LBR_TOS];
  for (let i = 0; i < vcpu.lbr.nr; i++) {
    out.push(r.from + i, r.to + i);
    if (r.info !== 0) out.push(r.info + i);
  }
  return out;
}

/** intel_is_valid_msr (the vendor part of kvm_pmu_is_valid_msr): counters and controls, then the LBR MSRs. */
export function intel_is_valid_msr(vcpu: KvmVcpuState, msr: number): boolean {
  return intel_is_valid_pmc_msr(vcpu, msr) || vcpu.ops.intel_pmu_is_valid_lbr_msr(vcpu, msr);
}

/** intel_pmu_get_msr: counters and controls, then the LBR MSRs. */
export function intel_pmu_get_msr(vcpu: KvmVcpuState, msr: number, _hostInitiated: boolean): Access {
  return (
    intel_pmu_get_pmc_msr(vcpu, msr) ?? vcpu.ops.intel_pmu_handle_lbr_msrs_access(vcpu, msr, null) ?? notVpmuMsr(msr)
  );
}

function markInUse(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  vcpu.pmu.pmc_in_use |= bit(pmc.idx);
}

/** reprogram_fixed_counters, perf-based: each changed counter is marked in pmc_in_use. */
export function reprogram_fixed_counters(vcpu: KvmVcpuState, data: bigint): void {
  common_reprogram_fixed_counters(vcpu, data, markInUse);
}

/** intel_pmu_set_msr: counters and controls, then the LBR MSRs. */
export function intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, value: bigint, hostInitiated: boolean): Access {
  return (
    intel_pmu_set_pmc_msr(vcpu, msr, value, hostInitiated) ??
    vcpu.ops.intel_pmu_handle_lbr_msrs_access(vcpu, msr, value) ??
    notVpmuMsr(msr)
  );
}

/** intel_pmu_create_guest_lbr_event: a pinned exclude_host call-stack event owning the LBRs. */
export function intel_pmu_create_guest_lbr_event(vcpu: KvmVcpuState): boolean {
  const pmu = vcpu.pmu;
  if (vcpu.lbr.event !== null) {
    pmu.pmc_in_use |= bit(INTEL_PMC_IDX_FIXED_VLBR);
    return true;
  }
  vcpu.cost.perfCreates++;
  const ev = vcpu.host.perf_event_create_kernel_counter(
    attr({
      config: INTEL_FIXED_VLBR_EVENT,
      pinned: true,
      exclude_host: true,
      vlbr: true,
      branchSample: { user: true, kernel: false, callStack: true },
    }),
    { task: vcpu.task },
  );
  if ('error' in ev) return false;
  vcpu.lbr.event = ev;
  pmu.event_count++;
  pmu.pmc_in_use |= bit(INTEL_PMC_IDX_FIXED_VLBR);
  return true;
}

/** intel_pmu_release_guest_lbr_event. */
export function intel_pmu_release_guest_lbr_event(vcpu: KvmVcpuState): void {
  const ev = vcpu.lbr.event;
  if (ev === null) return;
  vcpu.cost.perfReleases++;
  vcpu.host.perf_event_release_kernel(ev);
  vcpu.lbr.event = null;
  vcpu.pmu.event_count--;
}

/**
 * intel_pmu_handle_lbr_msrs_access: an intercepted LBR MSR access. While the guest LBR event is
 * ACTIVE the access goes to the hardware (which holds the guest's LBRs); otherwise reads give 0
 * and writes are dropped. `write` null means a read. Returns null for a non-LBR MSR.
 */
export function intel_pmu_handle_lbr_msrs_access(vcpu: KvmVcpuState, msr: number, write: bigint | null): Access | null {
  if (!vcpu.ops.intel_pmu_is_valid_lbr_msr(vcpu, msr)) return null;
  const dummy = () => ok(write ?? 0n);
  if (vcpu.lbr.event === null && !vcpu.ops.intel_pmu_create_guest_lbr_event(vcpu))
    return write === null ? ok(0n) : dummy();
  const ev = vcpu.lbr.event!;
  // KVM disables IRQs here so perf cannot take the LBRs between the state check and the access.
  if (ev.state === 'ACTIVE') {
    const hw = vcpu.host.pcpu(vcpu.cpu).hw;
    vcpu.pmu.pmc_in_use |= bit(INTEL_PMC_IDX_FIXED_VLBR);
    // ca674df13b19: a proxied write the hardware refuses is a #GP for the guest, not a host fault.
    return write === null ? hw.rdmsr(msr) : hw.wrmsr(msr, write);
  }
  vcpu.pmu.pmc_in_use &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
  return write === null ? ok(0n) : dummy();
}

/** intel_pmu_cleanup: the guest LBR event goes when the guest has DEBUGCTL.LBR clear. */
export function intel_pmu_cleanup(vcpu: KvmVcpuState): void {
  if ((vcpu.guestDebugctl & DEBUGCTLMSR_LBR) === 0n) vcpu.ops.intel_pmu_release_guest_lbr_event(vcpu);
}

/** intel_pmu_legacy_freezing_lbrs_on_pmi: emulated Freeze_LBRs_On_PMI clears DEBUGCTL.LBR. */
export function intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu: KvmVcpuState): void {
  if ((vcpu.guestDebugctl & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) !== 0n) vcpu.guestDebugctl &= ~DEBUGCTLMSR_LBR;
}

/** intel_pmu_deliver_pmi: freeze emulation only for versions 2 and 3, only with guest LBR. */
export function intel_pmu_deliver_pmi(vcpu: KvmVcpuState): void {
  if (!intel_pmu_lbr_is_enabled(vcpu)) return;
  const v = vcpu.pmu.version;
  if (v > 1 && v < 4) vcpu.ops.intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu);
}
