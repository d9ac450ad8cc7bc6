/**
 * EMULATED_OPS: today's upstream perf-based vPMU as one record of kernel functions (the seam of
 * common/ops.ts). A series or a historical bug is `{ ...EMULATED_OPS, <kernel name>: <its version> }`
 * and a vCPU built with it (`new EmulatedVcpu(host, opts, ops)`) reaches every replaced function from
 * every caller.
 */

import type { Profile } from '../../hw/profile.js';
import type { HostKernel } from '../../host/perf.js';
import type { Access } from '../../hw/access.js';
import type { KvmOps } from '../common/ops.js';
import { __do_cpuid_func } from '../common/cpuid.js';
import type { KvmPmuCap } from '../common/pmu.h.js';
import {
  kvm_init_pmu_capability,
  kvm_pmu_deliver_pmi,
  kvm_pmu_get_msr,
  kvm_pmu_branch_retired,
  kvm_pmu_instruction_retired,
  kvm_pmu_is_valid_msr,
  kvm_pmu_rdpmc,
  kvm_pmu_trigger_event,
} from '../common/pmu.js';
import { intel_rdpmc_ecx_to_pmc } from '../common/pmu_intel.js';
import {
  do_get_msr,
  do_set_msr,
  kvm_get_msr_common,
  kvm_get_msr_index_list,
  kvm_probe_msr_to_save,
  kvm_set_cpuid,
  kvm_vm_ioctl_check_extension,
  kvm_vm_ioctl_enable_cap,
  kvm_set_msr_common,
  kvm_skip_emulated_instruction,
  x86_emulate_instruction,
  nop,
} from '../common/vcpu.js';
import {
  __kvm_perf_overflow,
  kvm_perf_overflow,
  kvm_pmu_cleanup,
  kvm_pmu_handle_event,
  kvm_pmu_incr_counter,
  kvm_pmu_init,
  kvm_pmu_refresh,
  kvm_pmu_reset,
  kvm_pmu_set_msr,
  pmc_is_event_allowed,
  pmc_pause_counter,
  pmc_read_counter,
  pmc_release_perf_event,
  pmc_reprogram_counter,
  pmc_resume_counter,
  pmc_stop_counter,
  pmc_write_counter,
  reprogram_counter,
} from './pmu.js';
import {
  intel_is_valid_msr,
  intel_pmu_cleanup,
  intel_pmu_create_guest_lbr_event,
  intel_pmu_deliver_pmi,
  intel_pmu_get_msr,
  intel_pmu_handle_lbr_msrs_access,
  intel_pmu_is_valid_lbr_msr,
  intel_pmu_legacy_freezing_lbrs_on_pmi,
  intel_pmu_refresh,
  intel_pmu_release_guest_lbr_event,
  intel_pmu_reset,
  intel_pmu_set_msr,
  reprogram_fixed_counters,
} from './pmu_intel.js';
import type { KvmPmc, KvmVcpuState } from './state.js';
import {
  vmx_check_perf_capabilities,
  vmx_get_perf_capabilities,
  vmx_get_supported_debugctl,
  vmx_passthrough_lbr_msrs,
  vmx_set_debugctl,
  vmx_vcpu_enter,
  vmx_vcpu_exit,
  type VmxPerfCaps,
} from './vmx.js';
import { kvm_arch_pmi_in_guest, kvm_arch_vcpu_load, vcpu_enter_guest } from './x86.js';

/** The perf-based vPMU's record: what both designs have, plus the perf event lifecycle and guest LBR. */
export interface EmulatedOps extends KvmOps<KvmVcpuState, KvmPmc> {
  // ---- pmu.c ----
  /** kvm_init_pmu_capability (module load): what KVM offers guests on this host. */
  kvm_init_pmu_capability(host: Profile): KvmPmuCap;
  kvm_pmu_cleanup(vcpu: KvmVcpuState): void;
  pmc_reprogram_counter(
    vcpu: KvmVcpuState,
    pmc: KvmPmc,
    config: bigint,
    excludeUser: boolean,
    excludeKernel: boolean,
    intr: boolean,
  ): boolean;
  /** pmc_pause_counter: true iff emulated events wrapped the counter. */
  pmc_pause_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean;
  pmc_resume_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean;
  pmc_stop_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void;
  pmc_release_perf_event(vcpu: KvmVcpuState, pmc: KvmPmc): void;
  /** kvm_perf_overflow: perf's overflow handler of KVM's events. */
  kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc): void;
  __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, inPmi: boolean): void;

  // ---- vmx/pmu_intel.c ----
  intel_pmu_cleanup(vcpu: KvmVcpuState): void;
  intel_pmu_is_valid_lbr_msr(vcpu: KvmVcpuState, msr: number): boolean;
  /** intel_pmu_handle_lbr_msrs_access: `write` null is a read; null for a non-LBR MSR. */
  intel_pmu_handle_lbr_msrs_access(vcpu: KvmVcpuState, msr: number, write: bigint | null): Access | null;
  intel_pmu_create_guest_lbr_event(vcpu: KvmVcpuState): boolean;
  intel_pmu_release_guest_lbr_event(vcpu: KvmVcpuState): void;
  intel_pmu_legacy_freezing_lbrs_on_pmi(vcpu: KvmVcpuState): void;

  // ---- vmx/vmx.c ----
  /** vmx_get_perf_capabilities (module load): kvm_caps.supported_perf_cap and vmx_lbr_caps. */
  vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps;
  vmx_passthrough_lbr_msrs(vcpu: KvmVcpuState): void;

  // ---- x86.c ----
  /** kvm_arch_pmi_in_guest: is a PMI perf handles in this context the guest's. */
  kvm_arch_pmi_in_guest(vcpu: KvmVcpuState, inNmi: boolean): boolean;
}

/** Today's upstream perf-based vPMU. */
export const EMULATED_OPS: EmulatedOps = {
  // pmu.c
  kvm_init_pmu_capability,
  kvm_pmu_init,
  kvm_pmu_refresh,
  kvm_pmu_reset,
  kvm_pmu_cleanup,
  kvm_pmu_is_valid_msr,
  kvm_pmu_get_msr,
  kvm_pmu_set_msr,
  kvm_pmu_rdpmc,
  kvm_pmu_handle_event,
  kvm_pmu_deliver_pmi,
  kvm_pmu_trigger_event,
  kvm_pmu_branch_retired,
  kvm_pmu_instruction_retired,
  kvm_pmu_incr_counter,
  pmc_read_counter,
  pmc_write_counter,
  pmc_is_event_allowed,
  reprogram_counter,
  pmc_reprogram_counter,
  pmc_pause_counter,
  pmc_resume_counter,
  pmc_stop_counter,
  pmc_release_perf_event,
  kvm_perf_overflow,
  __kvm_perf_overflow,
  // vmx/pmu_intel.c
  intel_pmu_refresh,
  intel_pmu_reset,
  intel_pmu_cleanup,
  intel_is_valid_msr,
  intel_pmu_get_msr,
  intel_pmu_set_msr,
  intel_rdpmc_ecx_to_pmc,
  intel_pmu_deliver_pmi,
  reprogram_fixed_counters,
  intel_pmu_is_valid_lbr_msr,
  intel_pmu_handle_lbr_msrs_access,
  intel_pmu_create_guest_lbr_event,
  intel_pmu_release_guest_lbr_event,
  intel_pmu_legacy_freezing_lbrs_on_pmi,
  // vmx/vmx.c
  vmx_get_perf_capabilities,
  vmx_get_supported_debugctl,
  vmx_set_debugctl,
  vmx_check_perf_capabilities,
  vmx_passthrough_lbr_msrs,
  vmx_vcpu_enter,
  vmx_vcpu_exit,
  // x86.c, cpuid.c
  __do_cpuid_func,
  kvm_get_msr_common,
  kvm_set_msr_common,
  do_get_msr,
  do_set_msr,
  kvm_probe_msr_to_save,
  kvm_get_msr_index_list,
  kvm_set_cpuid,
  kvm_vm_ioctl_check_extension,
  kvm_vm_ioctl_enable_cap,
  kvm_skip_emulated_instruction,
  x86_emulate_instruction,
  vcpu_enter_guest,
  kvm_arch_pmi_in_guest,
  kvm_arch_sched_out: nop,
  kvm_arch_vcpu_put: nop,
  kvm_arch_sched_in: nop,
  kvm_arch_vcpu_load,
};
