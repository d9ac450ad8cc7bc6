/**
 * The parts of arch/x86/kvm/pmu.c (and the inline helpers of pmu.h) that both designs run the
 * same way: upstream has one pmu.c for the perf-based and the mediated vPMU, branching on
 * kvm_vcpu_has_mediated_pmu(). What takes such a branch is passed in by the design (a function
 * parameter named after the kernel function it stands for); the rest is here once.
 * kvm-vpmu.md §2.3–§2.12.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit, lowMask } from '../../hw/bits.js';
import type { Profile } from '../../hw/profile.js';
import type { HostAccess, KvmPmuEventFilter } from '../types.js';
import {
  is_fixed_event_allowed,
  is_gp_event_allowed,
  type KvmX86PmuEventFilter,
  kvm_vm_ioctl_set_pmu_event_filter,
} from './filter.js';
import {
  KVM_FIXED_PMC_BASE_IDX,
  type KvmBase,
  type PmcBase,
  type PmcType,
  type PmuBase,
  type VcpuBase,
} from './state.js';
import {
  type KvmPmuCap,
  KVM_MAX_NR_INTEL_GP_COUNTERS,
  KVM_MAX_NR_INTEL_FIXED_COUTNERS,
  fixed_ctrl_field,
  kvm_pmu_has_perf_global_ctrl,
  validPmcs,
  reprogram_counters,
} from './pmu.h.js';
import { ARCH_PERFMON_EVENTSEL_OS, ARCH_PERFMON_EVENTSEL_USR, X86_RAW_EVENT_MASK } from '../../hw/msr/counters.js';
import {
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_CTRL,
  MSR_CORE_PERF_GLOBAL_OVF_CTRL,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
  MSR_CORE_PERF_GLOBAL_INUSE,
} from '../../hw/msr/global.js';
import { APIC_LVT_MASKED } from '../../hw/msr/apic.js';
import { relied } from '../../hw/relied.js';

/** The reserved_bits kvm_pmu_refresh starts from (bit 21, AnyThread, among them). */
const KVM_PMU_RESERVED_BITS = 0xffff_ffff_0020_0000n;

/** kvm_init_pmu_capability: the host's PMU as perf reports it, version capped at 2. */
export function kvm_init_pmu_capability(host: Profile): KvmPmuCap {
  // Intel: no vPMU without an architectural host PMU with GP counters; the caps are then all zero.
  if (host.version === 0 || host.nGP === 0)
    return {
      enable_pmu: false,
      version: 0,
      num_counters_gp: 0,
      num_counters_fixed: 0,
      bit_width_gp: 0,
      bit_width_fixed: 0,
      events_mask_len: 0,
      events_mask: 0,
    };
  return {
    enable_pmu: true,
    version: Math.min(host.version, 2),
    num_counters_gp: Math.min(host.nGP, KVM_MAX_NR_INTEL_GP_COUNTERS),
    num_counters_fixed: Math.min(host.nFixedContig, KVM_MAX_NR_INTEL_FIXED_COUTNERS),
    bit_width_gp: host.gpWidth,
    bit_width_fixed: host.fixedWidth,
    events_mask_len: host.evLen,
    events_mask: host.eventsUnavailable,
  };
}

/** A struct kvm_pmu before kvm_pmu_init: the fields both designs share, no PMCs yet. */
export function newPmuBase<P extends PmcBase>(): PmuBase<P> {
  return {
    version: 0,
    nr_arch_gp_counters: 0,
    nr_arch_fixed_counters: 0,
    available_event_types: 0,
    counter_bitmask_gp: 0n,
    counter_bitmask_fixed: 0n,
    global_ctrl: 0n,
    global_status: 0n,
    fixed_ctr_ctrl: 0n,
    global_ctrl_rsvd: ~0n,
    global_status_rsvd: ~0n,
    fixed_ctr_ctrl_rsvd: ~0n,
    reserved_bits: KVM_PMU_RESERVED_BITS,
    raw_event_mask: X86_RAW_EVENT_MASK,
    gp_counters: [],
    fixed_counters: [],
    reprogram_pmi: 0n,
    all_valid_pmc_idx: 0n,
    pmc_counting_instructions: 0n,
    pmc_counting_branches: 0n,
  };
}

/** kvm_pmu_init + intel_pmu_init: the PMC array and the fixed counters' generic encodings. */
export function kvm_pmu_init<P extends PmcBase>(pmu: PmuBase<P>, newPmc: (idx: number, type: PmcType) => P): void {
  for (let i = 0; i < KVM_MAX_NR_INTEL_GP_COUNTERS; i++) pmu.gp_counters.push(newPmc(i, 'gp'));
  // intel_get_fixed_pmc_eventsel: instructions, cycles, ref cycles (perf's REF_CPU_CYCLES pseudo-encoding).
  const fixedEvents = [0x00c0n, 0x003cn, 0x0300n];
  for (let i = 0; i < KVM_MAX_NR_INTEL_FIXED_COUTNERS; i++) {
    const pmc = newPmc(KVM_FIXED_PMC_BASE_IDX + i, 'fixed');
    pmc.eventsel = fixedEvents[i]!;
    pmu.fixed_counters.push(pmc);
  }
}

/** The top of kvm_pmu_refresh after kvm_pmu_reset: the model is zeroed before the vendor derives it. */
export function kvm_pmu_refresh_defaults(pmu: PmuBase): void {
  pmu.version = 0;
  pmu.nr_arch_gp_counters = 0;
  pmu.nr_arch_fixed_counters = 0;
  pmu.counter_bitmask_gp = 0n;
  pmu.counter_bitmask_fixed = 0n;
  pmu.reserved_bits = KVM_PMU_RESERVED_BITS;
  pmu.raw_event_mask = X86_RAW_EVENT_MASK;
  pmu.global_ctrl_rsvd = ~0n;
  pmu.global_status_rsvd = ~0n;
  pmu.fixed_ctr_ctrl_rsvd = ~0n;
  pmu.all_valid_pmc_idx = 0n;
}

/** The tail of kvm_pmu_refresh: every GP and fixed counter the guest has is valid. */
export function kvm_pmu_refresh_valid_pmcs(pmu: PmuBase): void {
  pmu.all_valid_pmc_idx |= lowMask(pmu.nr_arch_gp_counters) | (lowMask(pmu.nr_arch_fixed_counters) << 32n);
}

/** check_pmu_event_filter (the filter half of today's pmc_is_event_allowed): the VM's filter, if any. */
export function check_pmu_event_filter(vcpu: VcpuBase, pmc: PmcBase): boolean {
  const f = vcpu.kvm.pmu_event_filter;
  if (f === null) return true;
  if (pmc.type === 'gp') return is_gp_event_allowed(f, pmc.eventsel);
  return is_fixed_event_allowed(f, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
}

/** kvm_vm_ioctl_set_pmu_event_filter: install, then reprogram every PMC of every vCPU. */
export function kvm_vm_set_pmu_event_filter(kvm: KvmBase, filter: KvmPmuEventFilter | null): HostAccess {
  let next: KvmX86PmuEventFilter | null = null;
  if (filter !== null) {
    const r = kvm_vm_ioctl_set_pmu_event_filter(filter);
    if ('error' in r) return { ok: false, error: r.error, errno: r.errno };
    next = r;
  }
  kvm.pmu_event_filter = next; // rcu_replace_pointer + synchronize_srcu_expedited
  for (const v of kvm.vcpus) {
    v.pmu.reprogram_pmi = lowMask(64); // atomic64_set(&pmu->__reprogram_pmi, -1ull)
    v.requests.add('PMU');
  }
  return { ok: true, value: 0n };
}

/** cpl_is_matched: OS for CPL 0, USR otherwise; fixed counters read their nibble. */
export function cpl_is_matched(vcpu: VcpuBase, pmc: PmcBase, cpl: number): boolean {
  let os: boolean;
  let usr: boolean;
  if (pmc.type === 'gp') {
    os = (pmc.eventsel & ARCH_PERFMON_EVENTSEL_OS) !== 0n;
    usr = (pmc.eventsel & ARCH_PERFMON_EVENTSEL_USR) !== 0n;
  } else {
    const f = fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
    os = (f & 1) !== 0;
    usr = (f & 2) !== 0;
  }
  return cpl === 0 ? os : usr;
}

/**
 * kvm_pmu_trigger_event: KVM emulated (or skipped) an instruction of this kind; the design's
 * pmc_is_event_allowed decides and its kvm_pmu_incr_counter counts (mediated: the stored counter itself).
 */
export function kvm_pmu_trigger_event(vcpu: VcpuBase, counting: bigint, cpl: number): void {
  const pmu = vcpu.pmu;
  let mask = counting;
  if (kvm_pmu_has_perf_global_ctrl(pmu)) mask &= pmu.global_ctrl;
  if (mask === 0n) return;
  for (const pmc of validPmcs(pmu)) {
    if ((mask & bit(pmc.idx)) === 0n) continue;
    if (!vcpu.ops.pmc_is_event_allowed(vcpu, pmc) || !cpl_is_matched(vcpu, pmc, cpl)) continue;
    vcpu.ops.kvm_pmu_incr_counter(vcpu, pmc);
  }
}

/** kvm_pmu_instruction_retired. */
export function kvm_pmu_instruction_retired(vcpu: VcpuBase, cpl: number): void {
  vcpu.ops.kvm_pmu_trigger_event(vcpu, vcpu.pmu.pmc_counting_instructions, cpl);
}

/** kvm_pmu_branch_retired: an emulated branch, for the PMCs counting branch instructions retired. */
export function kvm_pmu_branch_retired(vcpu: VcpuBase, cpl: number): void {
  vcpu.ops.kvm_pmu_trigger_event(vcpu, vcpu.pmu.pmc_counting_branches, cpl);
}

/**
 * kvm_pmu_rdpmc: #GP without a vPMU, for bad ECX, and at CPL > 0 without CR4.PCE; the design's pmc_read_counter reads.
 */
export function kvm_pmu_rdpmc(vcpu: VcpuBase, ecx: number, cpl: number): Access {
  const pmu = vcpu.pmu;
  if (pmu.version === 0) return gp('RDPMC: no vPMU (pmu->version == 0)');
  const r = vcpu.ops.intel_rdpmc_ecx_to_pmc(vcpu, ecx);
  if (r === null) return gp(`RDPMC 0x${ecx.toString(16)}: no such counter (intel_rdpmc_ecx_to_pmc)`);
  if (!vcpu.cr4Pce && cpl !== 0) return gp(`RDPMC at CPL ${cpl} with CR4.PCE = 0`);
  return ok(vcpu.ops.pmc_read_counter(vcpu, r.pmc) & r.mask);
}

/** kvm_pmu_deliver_pmi: KVM_REQ_PMI before VM-entry; the vendor first (freeze emulation), then LVTPC. */
export function kvm_pmu_deliver_pmi(vcpu: VcpuBase): number | null {
  vcpu.ops.intel_pmu_deliver_pmi(vcpu);
  return kvm_apic_local_deliver_lvtpc(vcpu);
}

/** NMI_VECTOR: what a PMI delivered in NMI mode is reported as. */
export const NMI_VECTOR = 2;

/**
 * kvm_apic_local_deliver(APIC_LVTPC): dropped while masked. __apic_accept_irq accepts every
 * delivery mode but ExtINT, and an accepted PMI masks LVTPC (a16eb25b09c0, Intel-compatible guests).
 * Fixed/lowest-priority deliver the vector, NMI mode an NMI; SMI, RemoteRead, INIT and SIPI are
 * accepted but not modelled (K8).
 */
export function kvm_apic_local_deliver_lvtpc(vcpu: VcpuBase): number | null {
  const reg = vcpu.lvtpc;
  if ((reg & APIC_LVT_MASKED) !== 0n) return null;
  const mode = Number((reg >> 8n) & 7n);
  if (mode !== 0 && mode !== 1 && mode !== 4) relied('K8');
  if (mode === 7) return null; // APIC_DM_EXTINT: not accepted, LVTPC stays unmasked
  vcpu.lvtpc = reg | APIC_LVT_MASKED;
  if (mode === 0 || mode === 1) return Number(reg & 0xffn);
  return mode === 4 ? NMI_VECTOR : null;
}

/** kvm_pmu_is_valid_msr: the common global MSRs from v2 (no STATUS_SET/INUSE: K10), then the vendor's. */
export function kvm_pmu_is_valid_msr(vcpu: VcpuBase, msr: number): boolean {
  if ((msr === MSR_CORE_PERF_GLOBAL_STATUS_SET || msr === MSR_CORE_PERF_GLOBAL_INUSE) && vcpu.pmu.version >= 4)
    relied('K10'); // a v4+ CPUID, yet KVM has neither MSR
  if (msr === MSR_CORE_PERF_GLOBAL_STATUS || msr === MSR_CORE_PERF_GLOBAL_CTRL || msr === MSR_CORE_PERF_GLOBAL_OVF_CTRL)
    return kvm_pmu_has_perf_global_ctrl(vcpu.pmu);
  return vcpu.ops.intel_is_valid_msr(vcpu, msr);
}

/** kvm_pmu_get_msr: the global MSRs from KVM's copy, the rest from the vendor. */
export function kvm_pmu_get_msr(vcpu: VcpuBase, msr: number, hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  switch (msr) {
    case MSR_CORE_PERF_GLOBAL_STATUS:
      return ok(pmu.global_status);
    case MSR_CORE_PERF_GLOBAL_CTRL:
      return ok(pmu.global_ctrl);
    case MSR_CORE_PERF_GLOBAL_OVF_CTRL:
      return ok(0n);
    default:
      return vcpu.ops.intel_pmu_get_msr(vcpu, msr, hostInitiated);
  }
}

/**
 * kvm_pmu_set_msr: returns #GP (guest) / failure (host) as upstream does. The vendor's
 * write_global_ctrl (intel_pmu_write_global_ctrl) is the mediated branch (the VMCS copy); the perf-based vPMU has none.
 */
export function kvm_pmu_set_msr(vcpu: VcpuBase, msr: number, data: bigint, hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  switch (msr) {
    case MSR_CORE_PERF_GLOBAL_STATUS:
      if (!hostInitiated) return gp('IA32_PERF_GLOBAL_STATUS is read-only');
      if ((data & pmu.global_status_rsvd) !== 0n)
        return gp('IA32_PERF_GLOBAL_STATUS: reserved bits', data & pmu.global_status_rsvd);
      pmu.global_status = data; // mediated: loaded into hardware through STATUS_SET at the next load
      return ok(data);
    case MSR_CORE_PERF_GLOBAL_CTRL: {
      if ((data & pmu.global_ctrl_rsvd) !== 0n)
        return gp('IA32_PERF_GLOBAL_CTRL: reserved bits (global_ctrl_rsvd)', data & pmu.global_ctrl_rsvd);
      if (pmu.global_ctrl !== data) {
        const diff = pmu.global_ctrl ^ data;
        pmu.global_ctrl = data;
        reprogram_counters(vcpu, diff);
      }
      vcpu.ops.intel_pmu_write_global_ctrl?.(vcpu, data);
      return ok(data);
    }
    case MSR_CORE_PERF_GLOBAL_OVF_CTRL:
      if ((data & pmu.global_status_rsvd) !== 0n)
        return gp('IA32_PERF_GLOBAL_OVF_CTRL: reserved bits (global_status_rsvd)', data & pmu.global_status_rsvd);
      if (!hostInitiated) pmu.global_status &= ~data;
      return ok(data);
    default:
      return vcpu.ops.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
  }
}

/** The raw image of a host-initiated access result. */
export function toHost(a: Access): HostAccess {
  if (a.ok) return { ok: true, value: a.value };
  return a.reservedBits === undefined
    ? { ok: false, error: a.gp }
    : { ok: false, error: a.gp, reservedBits: a.reservedBits };
}
