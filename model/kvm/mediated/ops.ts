/**
 * MEDIATED_OPS: upstream's mediated vPMU as one record of kernel functions (the seam of
 * common/ops.ts). A series on it is `{ ...MEDIATED_OPS, <kernel name>: <its version> }`, run by
 * `new MediatedVcpu(host, opts, ops)`.
 */

import type { Profile } from '../../hw/profile.js';
import type { KvmOps } from '../common/ops.js';
import { __do_cpuid_func } from '../common/cpuid.js';
import {
  check_pmu_event_filter,
  kvm_pmu_deliver_pmi,
  kvm_pmu_get_msr,
  kvm_pmu_branch_retired,
  kvm_pmu_instruction_retired,
  kvm_pmu_is_valid_msr,
  kvm_pmu_rdpmc,
  kvm_pmu_set_msr,
  kvm_pmu_trigger_event,
} from '../common/pmu.js';
import { intel_pmu_refresh, intel_rdpmc_ecx_to_pmc } from '../common/pmu_intel.js';
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
  kvm_init_pmu_capability,
  kvm_mediated_pmu_load,
  kvm_mediated_pmu_put,
  kvm_need_perf_global_ctrl_intercept,
  kvm_need_rdpmc_intercept,
  kvm_pmu_handle_event,
  kvm_pmu_incr_counter,
  kvm_pmu_init,
  kvm_pmu_refresh,
  kvm_pmu_reset,
  type MediatedPmuCap,
  pmc_read_counter,
  pmc_write_counter,
  reprogram_counter,
} from './pmu.js';
import {
  intel_is_valid_msr,
  intel_mediated_pmu_load,
  intel_mediated_pmu_put,
  intel_pmu_get_msr,
  intel_pmu_is_mediated_pmu_supported,
  intel_pmu_set_msr,
  intel_pmu_write_global_ctrl,
  reprogram_fixed_counters,
} from './pmu_intel.js';
import type { MediatedPmc, MediatedVcpuState } from './state.js';
import {
  vmx_check_perf_capabilities,
  vmx_get_perf_capabilities,
  vmx_get_supported_debugctl,
  vmx_recalc_instruction_intercepts,
  vmx_recalc_pmu_msr_intercepts,
  vmx_set_debugctl,
  vmx_vcpu_enter,
  vmx_vcpu_exit,
} from './vmx.js';
import { vcpu_enter_guest } from './x86.js';

/** The mediated vPMU's record: what both designs have, plus the world switch and the intercept decisions. */
export interface MediatedOps extends KvmOps<MediatedVcpuState, MediatedPmc> {
  // ---- pmu.c ----
  /** kvm_init_pmu_capability (module load), with the vendor's mediated support from this record. */
  kvm_init_pmu_capability(host: Profile, ops: MediatedOps): MediatedPmuCap;
  kvm_need_perf_global_ctrl_intercept(vcpu: MediatedVcpuState): boolean;
  kvm_need_rdpmc_intercept(vcpu: MediatedVcpuState): boolean;
  kvm_mediated_pmu_load(vcpu: MediatedVcpuState): void;
  kvm_mediated_pmu_put(vcpu: MediatedVcpuState): void;

  // ---- vmx/pmu_intel.c ----
  /** is_mediated_pmu_supported: why this host cannot run the mediated vPMU, or null. */
  intel_pmu_is_mediated_pmu_supported(host: Profile): string | null;
  intel_mediated_pmu_load(vcpu: MediatedVcpuState): void;
  intel_mediated_pmu_put(vcpu: MediatedVcpuState): void;

  // ---- vmx/vmx.c ----
  /** vmx_get_perf_capabilities (module load): kvm_caps.supported_perf_cap. */
  vmx_get_perf_capabilities(enablePmu: boolean): bigint;
  vmx_recalc_pmu_msr_intercepts(vcpu: MediatedVcpuState): void;
  vmx_recalc_instruction_intercepts(vcpu: MediatedVcpuState): void;
}

/** Upstream's mediated vPMU: no guest LBR, so reset, PMI delivery and the scheduler hooks have nothing to do. */
export const MEDIATED_OPS: MediatedOps = {
  // pmu.c
  kvm_init_pmu_capability,
  kvm_pmu_init,
  kvm_pmu_refresh,
  kvm_pmu_reset,
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
  pmc_is_event_allowed: check_pmu_event_filter,
  reprogram_counter,
  kvm_need_perf_global_ctrl_intercept,
  kvm_need_rdpmc_intercept,
  kvm_mediated_pmu_load,
  kvm_mediated_pmu_put,
  // vmx/pmu_intel.c
  intel_pmu_refresh,
  intel_pmu_reset: nop,
  intel_is_valid_msr,
  intel_pmu_get_msr,
  intel_pmu_set_msr,
  intel_rdpmc_ecx_to_pmc,
  intel_pmu_deliver_pmi: nop,
  reprogram_fixed_counters,
  intel_pmu_write_global_ctrl,
  intel_pmu_is_mediated_pmu_supported,
  intel_mediated_pmu_load,
  intel_mediated_pmu_put,
  // vmx/vmx.c
  vmx_get_perf_capabilities,
  vmx_get_supported_debugctl,
  vmx_set_debugctl,
  vmx_check_perf_capabilities,
  vmx_recalc_pmu_msr_intercepts,
  vmx_recalc_instruction_intercepts,
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
  kvm_arch_sched_out: nop,
  kvm_arch_vcpu_put: nop,
  kvm_arch_sched_in: nop,
  kvm_arch_vcpu_load: nop,
};
