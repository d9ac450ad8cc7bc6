/**
 * The part of KVM's per-vCPU PMU state (struct kvm_pmu, struct kvm_pmc, struct kvm_vcpu) that
 * both designs keep: upstream has one struct for both, with fields only one mode uses. Each
 * design's state.ts extends these with its own fields; common/pmu.ts and common/pmu_intel.ts act
 * on what is here.
 */

import type { VpmuCost } from '../cost.js';
import type { HostKernel } from '../../host/perf.js';
import type { KvmX86PmuEventFilter } from './filter.js';
import type { GuestCpuid, GuestPmi } from '../types.js';
import type { KvmPmuCap } from './pmu.h.js';
import type { KvmOps } from './ops.js';

export const KVM_FIXED_PMC_BASE_IDX = 32;

export type PmcType = 'gp' | 'fixed';

export type KvmRequest = 'PMU' | 'PMI';

/** struct kvm_pmc, the fields both designs use. */
export interface PmcBase {
  readonly idx: number;
  readonly type: PmcType;
  counter: bigint;
  /** GP: what the guest wrote. Fixed: perf's generic encoding of the fixed event. */
  eventsel: bigint;
  /** What the mediated vPMU loads into hardware (the filter may clear ENABLE); set with eventsel. */
  eventsel_hw: bigint;
}

/** struct kvm_pmu, the fields both designs use. */
export interface PmuBase<P extends PmcBase = PmcBase> {
  version: number;
  nr_arch_gp_counters: number;
  nr_arch_fixed_counters: number;
  available_event_types: number;
  counter_bitmask_gp: bigint;
  counter_bitmask_fixed: bigint;
  global_ctrl: bigint;
  global_status: bigint;
  fixed_ctr_ctrl: bigint;
  global_ctrl_rsvd: bigint;
  global_status_rsvd: bigint;
  fixed_ctr_ctrl_rsvd: bigint;
  reserved_bits: bigint;
  raw_event_mask: bigint;
  readonly gp_counters: P[];
  readonly fixed_counters: P[];
  /** reprogram_pmi bitmap. */
  reprogram_pmi: bigint;
  all_valid_pmc_idx: bigint;
  pmc_counting_instructions: bigint;
  pmc_counting_branches: bigint;
}

/** The vCPU side of a VM-wide request: what kvm_vm_ioctl_set_pmu_event_filter touches per vCPU. */
export interface VcpuRequests {
  readonly pmu: { reprogram_pmi: bigint };
  readonly requests: Set<KvmRequest>;
}

/** struct kvm as far as both vPMUs go: the event filter, the vCPUs it reprograms, the per-VM PMU switch. */
export interface KvmBase<V extends VcpuRequests = VcpuRequests> {
  pmu_event_filter: KvmX86PmuEventFilter | null;
  readonly vcpus: V[];
  /** kvm->arch.enable_pmu: the module's enable_pmu at KVM_CREATE_VM, cleared by KVM_PMU_CAP_DISABLE. */
  enable_pmu: boolean;
  /** kvm->created_vcpus: KVM_CREATE_VCPU calls so far (a destroyed vCPU still counts). */
  created_vcpus: number;
  /** kvm->arch.created_mediated_pmu: perf_create_mediated_pmu succeeded for this VM (never, perf-based). */
  created_mediated_pmu: boolean;
}

/** The parts of struct kvm_vcpu both vPMUs touch. */
export interface VcpuBase<P extends PmcBase = PmcBase> {
  /** The design's record of kernel functions (kvm_pmu_ops, kvm_x86_ops and pmu.c's own): see ops.ts. */
  readonly ops: KvmOps<this>;
  /** kvm_pmu_cap: what KVM offers guests on this host (kvm_init_pmu_capability at module load). */
  readonly kvm_pmu_cap: KvmPmuCap;
  readonly host: HostKernel;
  readonly kvm: KvmBase;
  /** The vCPU thread: a host task whose events follow it between pCPUs. */
  readonly task: number;
  /** What KVM spent so far, step by step (issue #6's cost model; counting only). */
  readonly cost: VpmuCost;
  cpu: number;
  cpuid: GuestCpuid;
  /** vcpu->arch.perf_capabilities, kept even while guest CPUID lacks PDCM (vcpu_get_perf_capabilities hides it). */
  perf_capabilities: bigint;
  /** kvm_caps.supported_perf_cap (vmx_get_perf_capabilities). */
  readonly supported_perf_cap: bigint;
  hasRun: boolean;
  /** vcpu->scheduled_out: the thread was scheduled out since the vCPU last entered the guest. */
  scheduled_out: boolean;
  readonly requests: Set<KvmRequest>;
  readonly pmu: PmuBase<P>;
  /** GUEST_IA32_DEBUGCTL in the VMCS. */
  guestDebugctl: bigint;
  /** The guest's LVTPC in the in-kernel local APIC. */
  lvtpc: bigint;
  /** MSRs the guest may access without a VM-exit (the MSR bitmap's holes). */
  readonly passthrough: Set<number>;
  /** Guest CR4.PCE, which RDPMC checks. */
  cr4Pce: boolean;
  /** The pCPU is in guest mode (between VM-entry and VM-exit). */
  inGuest: boolean;
  /** vmx->host_debugctlmsr: the host's DEBUGCTL, snapshotted before VM-entry and restored at VM-exit. */
  host_debugctlmsr: bigint;
  /** PMIs injected and not yet reported to the world, oldest first. */
  readonly injected: GuestPmi[];
}
