/**
 * The seam: one record per design through which every kernel function a patch series may replace is
 * reached, as the kernel reaches its vendor code through kvm_pmu_ops / kvm_x86_ops (static calls). The
 * functions of pmu.c, pmu_intel.c (the kvm_pmu_ops members among them), the PMU parts of vmx.c and
 * x86.c: a port calls its neighbours as `vcpu.ops.<kernel name>(vcpu, ...)`, never directly, so that a
 * series written as
 *
 *     export const MY_OPS: EmulatedOps = { ...EMULATED_OPS, pmc_write_counter: my_pmc_write_counter };
 *
 * is seen by every caller. Members carry the kernel functions' names; this file lists the ones both
 * designs have, and each design's record type (emulated/ops.ts, mediated/ops.ts) adds its own. Method
 * signatures, not function fields, so that a design's vCPU state stays assignable to VcpuBase.
 */

import type { Access } from '../../hw/access.js';
import type { EmulatedInsn, GuestCpuid, HostAccess } from '../types.js';
import { type PmcOf, type KvmPmuCap } from './pmu.h.js';
import type { KvmBase, VcpuBase } from './state.js';
import type { CpuidRegs, Profile } from '../../hw/profile.js';

/** What a design's record holds for both designs; P is the design's struct kvm_pmc. */
export interface KvmOps<V extends VcpuBase, P = PmcOf<V>> {
  // ---- pmu.c ----
  /** kvm_pmu_init (+ intel_pmu_init): the PMC array. */
  kvm_pmu_init(vcpu: V): void;
  /** kvm_pmu_refresh: a new vCPU model (KVM_SET_CPUID2, PERF_CAPABILITIES). */
  kvm_pmu_refresh(vcpu: V): void;
  /** kvm_pmu_reset (and kvm_pmu_destroy). */
  kvm_pmu_reset(vcpu: V): void;
  kvm_pmu_is_valid_msr(vcpu: V, msr: number): boolean;
  kvm_pmu_get_msr(vcpu: V, msr: number, hostInitiated: boolean): Access;
  kvm_pmu_set_msr(vcpu: V, msr: number, data: bigint, hostInitiated: boolean): Access;
  /** kvm_pmu_rdpmc: the intercepted RDPMC. */
  kvm_pmu_rdpmc(vcpu: V, ecx: number, cpl: number): Access;
  /** kvm_pmu_handle_event: KVM_REQ_PMU. */
  kvm_pmu_handle_event(vcpu: V): void;
  /** kvm_pmu_deliver_pmi: KVM_REQ_PMI; the vector LVTPC accepted, or null. */
  kvm_pmu_deliver_pmi(vcpu: V): number | null;
  /** kvm_pmu_trigger_event: KVM emulated (or skipped) an instruction the PMCs in `counting` count. */
  kvm_pmu_trigger_event(vcpu: V, counting: bigint, cpl: number): void;
  kvm_pmu_instruction_retired(vcpu: V, cpl: number): void;
  kvm_pmu_branch_retired(vcpu: V, cpl: number): void;
  kvm_pmu_incr_counter(vcpu: V, pmc: P): void;
  pmc_read_counter(vcpu: V, pmc: P): bigint;
  pmc_write_counter(vcpu: V, pmc: P, val: bigint): void;
  /** pmc_is_event_allowed: may the PMC count (the VM's event filter). */
  pmc_is_event_allowed(vcpu: V, pmc: P): boolean;
  /** reprogram_counter: false when it must be retried at the next KVM_REQ_PMU. */
  reprogram_counter(vcpu: V, pmc: P): boolean;

  // ---- vmx/pmu_intel.c (intel_pmu_ops: the kvm_pmu_ops of Intel) ----
  intel_pmu_refresh(vcpu: V): void;
  intel_pmu_reset(vcpu: V): void;
  intel_is_valid_msr(vcpu: V, msr: number): boolean;
  intel_pmu_get_msr(vcpu: V, msr: number, hostInitiated: boolean): Access;
  intel_pmu_set_msr(vcpu: V, msr: number, data: bigint, hostInitiated: boolean): Access;
  /** intel_rdpmc_ecx_to_pmc: the PMC and the mask of the read, or null for a bad ECX. */
  intel_rdpmc_ecx_to_pmc(vcpu: V, ecx: number): { pmc: P; mask: bigint } | null;
  intel_pmu_deliver_pmi(vcpu: V): void;
  /** reprogram_fixed_counters: a FIXED_CTR_CTRL write that changes it. */
  reprogram_fixed_counters(vcpu: V, data: bigint): void;
  /** write_global_ctrl (mediated only): GUEST_IA32_PERF_GLOBAL_CTRL in the VMCS. */
  intel_pmu_write_global_ctrl?(vcpu: V, data: bigint): void;

  // ---- vmx/vmx.c ----
  vmx_get_supported_debugctl(vcpu: V, hostInitiated: boolean): bigint;
  /** vmx_set_msr(MSR_IA32_DEBUGCTLMSR). */
  vmx_set_debugctl(vcpu: V, data: bigint, hostInitiated: boolean): Access;
  /** vmx_set_msr(MSR_IA32_PERF_CAPABILITIES)'s vendor checks: why the value is refused, or null. */
  vmx_check_perf_capabilities(vcpu: V, data: bigint): string | null;
  /** vmx_vcpu_run up to VM-entry: what the entry loads. */
  vmx_vcpu_enter(vcpu: V): void;
  /** vmx_vcpu_run after VM-exit: what the exit saves and loads. */
  vmx_vcpu_exit(vcpu: V): void;

  // ---- x86.c, cpuid.c ----
  /** __do_cpuid_func, leaves 0xA and 0x1C: what KVM_GET_SUPPORTED_CPUID reports (module-wide: kvm_pmu_cap, the host). */
  __do_cpuid_func(cap: KvmPmuCap, func: number, host?: Profile): CpuidRegs;
  /** kvm_get_msr_common / vmx_get_msr for the vPMU's MSRs; null: KVM_MSR_RET_UNSUPPORTED. */
  kvm_get_msr_common(vcpu: V, msr: number, hostInitiated: boolean): Access | null;
  kvm_set_msr_common(vcpu: V, msr: number, data: bigint, hostInitiated: boolean): Access | null;
  /** do_get_msr (KVM_GET_MSRS). */
  do_get_msr(vcpu: V, msr: number): HostAccess;
  /** do_set_msr (KVM_SET_MSRS). */
  do_set_msr(vcpu: V, msr: number, data: bigint): HostAccess;
  /** kvm_probe_msr_to_save: may KVM_GET_MSR_INDEX_LIST list this MSR of msrs_to_save_pmu. */
  kvm_probe_msr_to_save(vcpu: V, msr: number): boolean;
  /** KVM_GET_MSR_INDEX_LIST as far as the PMU goes (kvm_init_msr_lists). */
  kvm_get_msr_index_list(vcpu: V): number[];
  /** kvm_vm_ioctl_enable_cap(KVM_CAP_PMU_CAPABILITY) on the vCPU's VM; `enable_pmu` is the module's. */
  kvm_vm_ioctl_enable_cap(kvm: KvmBase, enable_pmu: boolean, args0: bigint): HostAccess;
  /** kvm_vm_ioctl_check_extension(KVM_CAP_PMU_CAPABILITY). */
  kvm_vm_ioctl_check_extension(enable_pmu: boolean): bigint;
  /** kvm_set_cpuid: KVM_SET_CPUID2. */
  kvm_set_cpuid(vcpu: V, cpuid: GuestCpuid): HostAccess;
  /** kvm_skip_emulated_instruction: a handled intercepted instruction retires. */
  kvm_skip_emulated_instruction(vcpu: V, cpl: number): void;
  /** x86_emulate_instruction: KVM's emulator ran `insn` (forced emulation) and it retired. */
  x86_emulate_instruction(vcpu: V, insn: EmulatedInsn, cpl: number): void;
  /** vcpu_enter_guest: requests, then VM-entry; `afterUnit` dates the PMIs it injects. */
  vcpu_enter_guest(vcpu: V, afterUnit: number): void;
  /** kvm_arch_sched_out (the preempt notifier, after perf's sched-out). */
  kvm_arch_sched_out(vcpu: V): void;
  /** kvm_arch_vcpu_put. */
  kvm_arch_vcpu_put(vcpu: V): void;
  /** kvm_arch_sched_in (the preempt notifier, after perf's sched-in). */
  kvm_arch_sched_in(vcpu: V): void;
  /** kvm_arch_vcpu_load. */
  kvm_arch_vcpu_load(vcpu: V): void;
}
