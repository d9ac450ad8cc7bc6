/**
 * Guest Architectural LBR as posted in v2: Yang Weijiang (with patches by Like Xu and Paolo Bonzini), "[PATCH v2
 * 00/15] Introduce Architectural LBR for vPMU" (2022-11-24), the series seed 004 reviews (mechanics in series.md §4).
 * The guest gets CPUID.(7,0):EDX[19] and leaf 0x1C with the host's deepest depth only; IA32_LBR_DEPTH reads the host
 * perf's depth and takes only it, with a real WRMSR; IA32_LBR_CTL lives in the VMCS (GUEST_IA32_LBR_CTL), which
 * VM-entry loads and VM-exit saves and clears for every VM; LBREn creates the guest LBR event as DEBUGCTL.LBR does for
 * legacy LBR, and the records pass through while it is ACTIVE; IA32_XSS takes bit 15, and the guest's XSAVES/XRSTORS
 * of component 15 run natively; KVM_GET/SET_MSRS reach the records by a raw RDMSR/WRMSR.
 *
 * Built on today's perf-based vPMU (EMULATED_OPS); every replaced function names the patch it ports ("patch N/15").
 * Not ported: #DB, INIT and SMM (patches 12, 13; the model has none of them, D27) and nested VMX.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import { type CpuidRegs, LBR_FMT_ARCH, type Profile } from '../../hw/profile.js';
import { PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';
import { DEBUGCTLMSR_FREEZE_LBRS_ON_PMI, DEBUGCTLMSR_LBR } from '../../hw/msr/debugctl.js';
import {
  ARCH_LBR_ANY,
  ARCH_LBR_CALL_STACK,
  ARCH_LBR_KERNEL,
  ARCH_LBR_LBREN,
  ARCH_LBR_USER,
  MSR_ARCH_LBR_CTL,
  MSR_ARCH_LBR_DEPTH,
  MSR_ARCH_LBR_FROM_0,
  MSR_ARCH_LBR_INFO_0,
  MSR_ARCH_LBR_TO_0,
} from '../../hw/msr/lbr_arch.js';
import { MSR_LBR_SELECT, MSR_LBR_TOS } from '../../hw/msr/lbr_legacy.js';
import { MSR_IA32_XSS, XFEATURE_LBR } from '../../hw/msr/system.js';
import type { HostKernel } from '../../host/perf.js';
import { CPUID_LEAF_ARCH_LBR } from '../common/cpuid.js';
import type { KvmPmuCap } from '../common/pmu.h.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import { INTEL_PMC_IDX_FIXED_VLBR, type KvmVcpuState } from '../emulated/state.js';
import type { VmxPerfCaps } from '../emulated/vmx.js';
import type { GuestCpuid, HostAccess } from '../types.js';

/** XFEATURE_MASK_LBR: XSS bit 15. */
export const XFEATURE_MASK_LBR = bit(XFEATURE_LBR);
/** KVM_SUPPORTED_XSS (patch 11/15): the only supervisor state KVM lets a guest enable. */
const KVM_SUPPORTED_XSS = XFEATURE_MASK_LBR;
/** ARCH_LBR_CTL_MASK (patch 06/15, moved to msr-index.h): the CPL, call-stack and branch-type bits. */
export const ARCH_LBR_CTL_MASK = ARCH_LBR_KERNEL | ARCH_LBR_USER | ARCH_LBR_CALL_STACK | ARCH_LBR_ANY;
/** KVM_ARCH_LBR_CTL_MASK (patch 06/15). */
const KVM_ARCH_LBR_CTL_MASK = ARCH_LBR_CTL_MASK | ARCH_LBR_LBREN;
const ARCH_LBR_CTL_CPL = ARCH_LBR_KERNEL | ARCH_LBR_USER;
/** The record MSRs patch 14/15 reaches raw: FROM/TO/INFO 0..31 ("MSR_ARCH_LBR_FROM_0 ... + 31"). */
const RAW_RECORDS = 32;

/** The vCPU with the series' state: the VMCS's GUEST_IA32_LBR_CTL, vcpu->arch.ia32_xss, pmu->kvm_arch_lbr_depth. */
export interface ArchLbrVcpu extends KvmVcpuState {
  /** GUEST_IA32_LBR_CTL (VMCS 0x2816): 0 at vCPU creation. */
  guest_lbr_ctl: bigint;
  /** vcpu->arch.ia32_xss. */
  ia32_xss: bigint;
  /** pmu->kvm_arch_lbr_depth (patch 05/15): 0 unless cpuid_enable_lbr accepted the guest's leaf 0x1C. */
  kvm_arch_lbr_depth: number;
}

const al = (vcpu: KvmVcpuState): ArchLbrVcpu => vcpu as ArchLbrVcpu;

/** kvm_cpu_cap_has(X86_FEATURE_ARCH_LBR): the host has Arch LBR (and, in the model, VMX's LBR_CTL controls). */
function kvm_cpu_cap_has_arch_lbr(vcpu: KvmVcpuState): boolean {
  return vcpu.host.profile.archLbr !== undefined;
}

/** guest_cpuid_has(vcpu, X86_FEATURE_ARCH_LBR). */
function guest_cpuid_has_arch_lbr(vcpu: KvmVcpuState): boolean {
  return vcpu.cpuid.archLbr === true;
}

/** The highest depth bit of the host's CPUID.1CH:EAX[7:0] (BIT(fls(eax & 0xff) - 1)), or 0. */
function hostDepthBit(host: Profile): number {
  const m = host.spec.leaf1c === undefined ? 0 : host.spec.leaf1c.eax & 0xff;
  return m === 0 ? 0 : 1 << (31 - Math.clz32(m));
}

// ---------------------------------------------------------------- pmu.c, vmx/pmu_intel.c

/** kvm_pmu_init: the series' vCPU fields start at 0 (GUEST_IA32_LBR_CTL is 0 in a new VMCS). */
function kvm_pmu_init(vcpu: KvmVcpuState): void {
  EMULATED_OPS.kvm_pmu_init(vcpu);
  Object.assign(vcpu, { guest_lbr_ctl: 0n, ia32_xss: 0n, kvm_arch_lbr_depth: 0 });
}

/**
 * cpuid_enable_lbr (patch 05/15): on an Arch LBR host, guest LBR only with guest CPUID ARCH_LBR and a leaf 0x1C whose
 * depth mask is exactly the host's deepest depth, which becomes kvm_arch_lbr_depth; LBR_FMT is not consulted.
 * Elsewhere, as upstream: no legacy LBR on an Arch LBR host (patch 04/15, merged as 098f4c061ea1).
 */
function cpuid_enable_lbr(vcpu: KvmVcpuState): boolean {
  const v = al(vcpu);
  if (!kvm_cpu_cap_has_arch_lbr(vcpu)) return true; // the legacy checks stay in intel_pmu_refresh
  v.kvm_arch_lbr_depth = 0;
  if (!guest_cpuid_has_arch_lbr(vcpu)) return false;
  const entry = vcpu.cpuid.leaf1c;
  if (entry === undefined) return false;
  const depthBit = hostDepthBit(vcpu.host.profile);
  if ((entry.eax & 0xff) !== depthBit) return false;
  v.kvm_arch_lbr_depth = (31 - Math.clz32(depthBit) + 1) * 8;
  return true;
}

/** intel_pmu_refresh with patch 05/15: guest LBR as cpuid_enable_lbr decides, the records perf's (x86_perf_get_lbr). */
function intel_pmu_refresh(vcpu: KvmVcpuState): void {
  EMULATED_OPS.intel_pmu_refresh(vcpu);
  if (!kvm_cpu_cap_has_arch_lbr(vcpu) || vcpu.pmu.version === 0) return;
  vcpu.lbr.nr = 0;
  vcpu.pmu.all_valid_pmc_idx &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
  if (!cpuid_enable_lbr(vcpu) || vcpu.lbrCaps.nr === 0) return;
  vcpu.lbr.nr = vcpu.lbrCaps.nr;
  vcpu.pmu.all_valid_pmc_idx |= bit(INTEL_PMC_IDX_FIXED_VLBR);
}

/**
 * intel_pmu_is_valid_lbr_msr with patches 04–06/15: nothing without records.nr; DEPTH and CTL iff the KVM cap and
 * guest ARCH_LBR; LBR_SELECT/TOS only for a legacy guest; FROM/TO/INFO within [base, base + nr).
 */
function intel_pmu_is_valid_lbr_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (vcpu.lbr.nr === 0) return false;
  if (msr === MSR_ARCH_LBR_DEPTH || msr === MSR_ARCH_LBR_CTL)
    return kvm_cpu_cap_has_arch_lbr(vcpu) && guest_cpuid_has_arch_lbr(vcpu);
  if ((msr === MSR_LBR_SELECT || msr === MSR_LBR_TOS) && guest_cpuid_has_arch_lbr(vcpu)) return false;
  return EMULATED_OPS.intel_pmu_is_valid_lbr_msr(vcpu, msr);
}

/** arch_lbr_ctl_is_valid (patch 06/15): the mask, and CPL, call-stack and filter bits only as guest CPUID.1CH:EBX says. */
function arch_lbr_ctl_is_valid(vcpu: KvmVcpuState, ctl: bigint): boolean {
  if (al(vcpu).kvm_arch_lbr_depth === 0) return false;
  if ((ctl & ~KVM_ARCH_LBR_CTL_MASK) !== 0n) return false;
  const entry = vcpu.cpuid.leaf1c;
  if (entry === undefined) return false;
  if ((entry.ebx & 1) === 0 && (ctl & ARCH_LBR_CTL_CPL) !== 0n) return false;
  if ((entry.ebx & 4) === 0 && (ctl & ARCH_LBR_CALL_STACK) !== 0n) return false;
  if ((entry.ebx & 2) === 0 && (ctl & ARCH_LBR_ANY) !== 0n) return false;
  return true;
}

/** An Arch LBR record MSR patch 14/15's raw cases cover. */
function isRawRecord(msr: number): boolean {
  return [MSR_ARCH_LBR_FROM_0, MSR_ARCH_LBR_TO_0, MSR_ARCH_LBR_INFO_0].some((b) => msr >= b && msr < b + RAW_RECORDS);
}

/**
 * intel_pmu_get_msr with patches 05/15 (DEPTH reads records.nr), 06/15 (LBR_CTL from the VMCS; 0 without the KVM cap)
 * and 14/15 (a record is a raw RDMSR of the pCPU, whoever holds the LBRs, before intel_pmu_handle_lbr_msrs_access).
 */
function intel_pmu_get_msr(vcpu: KvmVcpuState, msr: number, hostInitiated: boolean): Access {
  if (msr === MSR_ARCH_LBR_DEPTH) return ok(BigInt(vcpu.lbr.nr));
  if (msr === MSR_ARCH_LBR_CTL) return ok(kvm_cpu_cap_has_arch_lbr(vcpu) ? al(vcpu).guest_lbr_ctl : 0n);
  if (isRawRecord(msr)) return vcpu.host.pcpu(vcpu.cpu).hw.rdmsr(msr);
  return EMULATED_OPS.intel_pmu_get_msr(vcpu, msr, hostInitiated);
}

/**
 * intel_pmu_set_msr with patches 05/15, 06/15 and 14/15: DEPTH takes only kvm_arch_lbr_depth, then a real WRMSR
 * (which zeroes the pCPU's records, whoever holds them); LBR_CTL is validated, stored in the VMCS, and LBREn creates
 * the guest LBR event; a record is a raw WRMSR (wrmsrl: a fault is only warned about).
 */
function intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
  const v = al(vcpu);
  const hw = vcpu.host.pcpu(vcpu.cpu).hw;
  if (msr === MSR_ARCH_LBR_DEPTH) {
    if (v.kvm_arch_lbr_depth === 0 && !hostInitiated) return gp('IA32_LBR_DEPTH: no guest Arch LBR (patch 05/15)');
    // "only max depth is supported for both host and guest"
    if (data !== BigInt(v.kvm_arch_lbr_depth))
      return gp(`IA32_LBR_DEPTH: ${data} is not the host's depth ${v.kvm_arch_lbr_depth} (patch 05/15)`);
    vcpu.lbr.nr = Number(data);
    if (kvm_cpu_cap_has_arch_lbr(vcpu)) hw.wrmsr(MSR_ARCH_LBR_DEPTH, data); // no ownership check (R-AL2-05)
    return ok(data);
  }
  if (msr === MSR_ARCH_LBR_CTL) {
    if (hostInitiated && v.kvm_arch_lbr_depth === 0)
      return data === 0n ? ok(0n) : gp('IA32_LBR_CTL: only 0 without guest Arch LBR (patch 06/15)');
    if (!arch_lbr_ctl_is_valid(vcpu, data))
      return gp(`IA32_LBR_CTL: 0x${data.toString(16)} not valid for the guest's CPUID.1CH (arch_lbr_ctl_is_valid)`);
    v.guest_lbr_ctl = data; // vmcs_write64(GUEST_IA32_LBR_CTL)
    if (vcpu.lbr.nr !== 0 && vcpu.lbr.event === null && (data & ARCH_LBR_LBREN) !== 0n)
      vcpu.ops.intel_pmu_create_guest_lbr_event(vcpu);
    return ok(data);
  }
  if (isRawRecord(msr)) {
    hw.wrmsr(msr, data); // wrmsrl: an unchecked access, its #GP fixed up with a warning
    return ok(data);
  }
  return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
}

/** intel_pmu_legacy_freezing_lbrs_on_pmi with patch 06/15: for an Arch LBR guest, LBREn in GUEST_IA32_LBR_CTL. */
function intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu: KvmVcpuState): void {
  if ((vcpu.guestDebugctl & DEBUGCTLMSR_FREEZE_LBRS_ON_PMI) === 0n) return;
  if (kvm_cpu_cap_has_arch_lbr(vcpu) && guest_cpuid_has_arch_lbr(vcpu)) al(vcpu).guest_lbr_ctl &= ~ARCH_LBR_LBREN;
  else vcpu.guestDebugctl &= ~DEBUGCTLMSR_LBR;
}

/** The guest's LBR enable: LBR_CTL.LBREn for an Arch LBR guest, DEBUGCTL.LBR otherwise (patch 06/15). */
function lbr_enable(vcpu: KvmVcpuState): boolean {
  return guest_cpuid_has_arch_lbr(vcpu)
    ? (al(vcpu).guest_lbr_ctl & ARCH_LBR_LBREN) !== 0n
    : (vcpu.guestDebugctl & DEBUGCTLMSR_LBR) !== 0n;
}

/** intel_pmu_cleanup with patch 06/15: the guest LBR event goes when the guest's LBR enable is clear. */
function intel_pmu_cleanup(vcpu: KvmVcpuState): void {
  if (!lbr_enable(vcpu)) vcpu.ops.intel_pmu_release_guest_lbr_event(vcpu);
}

// ---------------------------------------------------------------- vmx.c

/**
 * vmx_get_perf_capabilities with patch 10/15 (and 04/15): on an Arch LBR host with VMX's LBR_CTL controls (always, in
 * the model), the host's LBR_FMT (0x3f) and perf's Arch LBR records; elsewhere as upstream.
 */
function vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps {
  const c = EMULATED_OPS.vmx_get_perf_capabilities(host, enablePmu);
  if (!enablePmu || host.profile.archLbr === undefined) return c;
  const lbrCaps = host.x86_perf_get_lbr();
  if (lbrCaps.nr === 0) return c;
  return { supportedPerfCap: c.supportedPerfCap | (host.profile.perfCapabilities & PERF_CAP_LBR_FMT), lbrCaps };
}

/**
 * vmx_check_perf_capabilities: an Arch LBR format is the host's or nothing (patch 10/15 checks it against
 * kvm_caps.supported_perf_cap; the legacy family/model check does not apply to it). vmx_set_msr's first check,
 * "data && !pmu->version" (K7), stays first and sees the whole value, the format included.
 */
function vmx_check_perf_capabilities(vcpu: KvmVcpuState, data: bigint): string | null {
  const fmt = data & PERF_CAP_LBR_FMT;
  if (fmt !== BigInt(LBR_FMT_ARCH) || vcpu.pmu.version === 0)
    return EMULATED_OPS.vmx_check_perf_capabilities(vcpu, data);
  if (fmt !== (vcpu.supported_perf_cap & PERF_CAP_LBR_FMT))
    return `PERF_CAPABILITIES: LBR_FMT ${fmt} is not the host's`;
  return EMULATED_OPS.vmx_check_perf_capabilities(vcpu, data & ~PERF_CAP_LBR_FMT);
}

/** vmx_set_msr(MSR_IA32_DEBUGCTLMSR) with patch 06/15: for an Arch LBR guest, bit 0 is dropped (it reads 0). */
function vmx_set_debugctl(vcpu: KvmVcpuState, data: bigint, hostInitiated: boolean): Access {
  const r = EMULATED_OPS.vmx_set_debugctl(
    vcpu,
    guest_cpuid_has_arch_lbr(vcpu) ? data & ~DEBUGCTLMSR_LBR : data,
    hostInitiated,
  );
  return r;
}

/**
 * The MSRs vmx_passthrough_lbr_msrs flips (vmx_update_intercept_for_lbr_msrs with patch 07/15's
 * is_valid_passthrough_msr ranges): FROM/TO/INFO[0, nr), and LBR_SELECT/TOS only for a legacy guest (patch 04/15).
 */
function lbrPassthroughMsrs(vcpu: KvmVcpuState): number[] {
  if (vcpu.lbr.nr === 0) return [];
  const r = vcpu.lbrCaps;
  const out = guest_cpuid_has_arch_lbr(vcpu) ? [] : [MSR_LBR_SELECT, MSR_LBR_TOS];
  for (let i = 0; i < vcpu.lbr.nr; i++) {
    out.push(r.from + i, r.to + i);
    if (r.info !== 0) out.push(r.info + i);
  }
  return out;
}

/**
 * vmx_passthrough_lbr_msrs with patch 06/15: intercept unless the guest LBR event is ACTIVE (the "LBR enabled" it
 * reads from LBR_CTL.LBREn for an Arch LBR guest only decides a warning), then flip the bitmap.
 */
function vmx_passthrough_lbr_msrs(vcpu: KvmVcpuState): void {
  const ev = vcpu.lbr.event;
  const intercept = ev === null || ev.state !== 'ACTIVE';
  if (ev !== null && intercept) vcpu.pmu.pmc_in_use &= ~bit(INTEL_PMC_IDX_FIXED_VLBR);
  if (vcpu.lbr.msr_passthrough === !intercept) return;
  for (const m of lbrPassthroughMsrs(vcpu)) {
    if (intercept) vcpu.passthrough.delete(m);
    else vcpu.passthrough.add(m);
  }
  vcpu.lbr.msr_passthrough = !intercept;
}

/** VM-entry with patch 10/15's required VM_ENTRY_LOAD_IA32_LBR_CTL: the CPU loads GUEST_IA32_LBR_CTL, for every VM. */
function vmx_vcpu_enter(vcpu: KvmVcpuState): void {
  EMULATED_OPS.vmx_vcpu_enter(vcpu);
  if (kvm_cpu_cap_has_arch_lbr(vcpu)) vcpu.host.pcpu(vcpu.cpu).hw.wrmsr(MSR_ARCH_LBR_CTL, al(vcpu).guest_lbr_ctl);
}

/**
 * VM-exit with patch 10/15's required VM_EXIT_CLEAR_IA32_LBR_CTL: the CPU saves LBR_CTL into GUEST_IA32_LBR_CTL and
 * clears it, for every VM; the host's value is never restored (R-AL2-10).
 */
function vmx_vcpu_exit(vcpu: KvmVcpuState): void {
  if (vcpu.inGuest && kvm_cpu_cap_has_arch_lbr(vcpu)) {
    const hw = vcpu.host.pcpu(vcpu.cpu).hw;
    const ctl = hw.rdmsr(MSR_ARCH_LBR_CTL);
    if (ctl.ok) al(vcpu).guest_lbr_ctl = ctl.value;
    hw.wrmsr(MSR_ARCH_LBR_CTL, 0n);
  }
  EMULATED_OPS.vmx_vcpu_exit(vcpu);
}

// ---------------------------------------------------------------- x86.c, cpuid.c

/**
 * __do_cpuid_func with patch 15/15: leaf 0x1C with only the host's deepest depth bit in EAX[7:0] (the rest of the
 * host's leaf kept), all zero without the KVM cap; CPUID.(7,0):EDX[19] goes with it (kvm_set_cpu_caps).
 */
function __do_cpuid_func(cap: KvmPmuCap, func: number, host?: Profile): CpuidRegs {
  if (func !== CPUID_LEAF_ARCH_LBR) return EMULATED_OPS.__do_cpuid_func(cap, func, host);
  const l = host?.spec.leaf1c;
  if (host === undefined || l === undefined || host.archLbr === undefined || (l.eax & 0xff) === 0)
    return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  return { ...l, eax: ((l.eax & ~0xff) | hostDepthBit(host)) >>> 0 };
}

/**
 * kvm_set_cpuid with patch 15/15's kvm_check_cpuid: with the KVM cap, a leaf 0x1C whose depth mask is not the host's
 * deepest depth bit is refused (-EINVAL), whether or not CPUID.(7,0):EDX[19] is set.
 */
function kvm_set_cpuid(vcpu: KvmVcpuState, cpuid: GuestCpuid): HostAccess {
  const l = cpuid.leaf1c;
  if (kvm_cpu_cap_has_arch_lbr(vcpu) && l !== undefined && hostDepthBit(vcpu.host.profile) !== 0)
    if ((l.eax & 0xff) !== hostDepthBit(vcpu.host.profile))
      return {
        ok: false,
        error: `KVM_SET_CPUID2: leaf 0x1C depth mask 0x${(l.eax & 0xff).toString(16)} is not the host's (kvm_check_cpuid, -EINVAL)`,
      };
  return EMULATED_OPS.kvm_set_cpuid(vcpu, cpuid);
}

/**
 * kvm_get_msr_common(MSR_IA32_XSS) (patch 11/15 makes XFEATURE_MASK_LBR supported): the guest's XSS. The guest's
 * CPUID XSAVES, which KVM checks first, is not modelled: every guest has it.
 */
function kvm_get_msr_common(vcpu: KvmVcpuState, msr: number, hostInitiated: boolean): Access | null {
  if (msr === MSR_IA32_XSS) return ok(al(vcpu).ia32_xss);
  return EMULATED_OPS.kvm_get_msr_common(vcpu, msr, hostInitiated);
}

/**
 * kvm_set_msr_common(MSR_IA32_XSS) with patches 03/15 and 11/15: any value within kvm_caps.supported_xss
 * (XFEATURE_MASK_LBR on this host, whatever the guest's CPUID says of Arch LBR), then a CPUID refresh that changes
 * nothing the PMU reads.
 */
function kvm_set_msr_common(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access | null {
  if (msr !== MSR_IA32_XSS) return EMULATED_OPS.kvm_set_msr_common(vcpu, msr, data, hostInitiated);
  const supported = kvm_cpu_cap_has_arch_lbr(vcpu) ? KVM_SUPPORTED_XSS : 0n;
  if ((data & ~supported) !== 0n) return gp(`IA32_XSS: 0x${data.toString(16)} beyond kvm_caps.supported_xss`);
  al(vcpu).ia32_xss = data;
  return ok(data);
}

/**
 * kvm_get_msr_index_list with patches 02/15 (XSS, as KVM supports an XSS feature) and 08/15 (LBR_CTL and DEPTH with
 * the KVM cap; the records "omitted here intentionally due to lengthy list").
 */
function kvm_get_msr_index_list(vcpu: KvmVcpuState): number[] {
  const l = EMULATED_OPS.kvm_get_msr_index_list(vcpu);
  if (!kvm_cpu_cap_has_arch_lbr(vcpu)) return l;
  const extra = [MSR_IA32_XSS, ...(vcpu.kvm_pmu_cap.enable_pmu ? [MSR_ARCH_LBR_CTL, MSR_ARCH_LBR_DEPTH] : [])];
  return [...extra, ...l];
}

/** The series as a design: today's record with the functions patches 02–11, 14 and 15 change. */
export const ARCH_LBR_OPS: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_pmu_init,
  intel_pmu_refresh,
  intel_pmu_is_valid_lbr_msr,
  intel_pmu_get_msr,
  intel_pmu_set_msr,
  intel_pmu_legacy_freezing_lbrs_on_pmi,
  intel_pmu_cleanup,
  vmx_get_perf_capabilities,
  vmx_check_perf_capabilities,
  vmx_set_debugctl,
  vmx_passthrough_lbr_msrs,
  vmx_vcpu_enter,
  vmx_vcpu_exit,
  __do_cpuid_func,
  kvm_set_cpuid,
  kvm_get_msr_common,
  kvm_set_msr_common,
  kvm_get_msr_index_list,
};
