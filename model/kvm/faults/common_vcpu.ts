/**
 * Planted faults in common/vcpu.ts (the vPMU's parts of arch/x86/kvm/x86.c and cpuid.c), planted on the
 * perf-based design by replacing the kernel function they sit in.
 */

import { type Access, ok } from '../../hw/access.js';
import { X2APIC_LVTPC } from '../../hw/msr/apic.js';
import { MSR_CORE_PERF_FIXED_CTR_CTRL } from '../../hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../hw/msr/capabilities.js';
import type { GuestCpuid, HostAccess } from '../types.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

/** kvm_set_msr_common keeps only LVTPC's low 11 bits (`data & 0x7ff`): the mask bit never sticks. */
export const LVTPC_MASK_NOT_WRITABLE: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_set_msr_common(vcpu: KvmVcpuState, msr: number, data: bigint, host: boolean): Access | null {
    if (msr !== X2APIC_LVTPC || data >> 32n !== 0n) return EMULATED_OPS.kvm_set_msr_common(vcpu, msr, data, host);
    vcpu.lvtpc = data & 0x7ffn;
    return ok(vcpu.lvtpc);
  },
};

/** kvm_set_msr_common drops a guest write of PERF_CAPABILITIES silently (the read-only #GP became a return of 0). */
export const PERF_CAPS_GUEST_WRITE_DROPPED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_set_msr_common(vcpu: KvmVcpuState, msr: number, data: bigint, host: boolean): Access | null {
    if (msr === MSR_IA32_PERF_CAPABILITIES && !host) return ok(data);
    return EMULATED_OPS.kvm_set_msr_common(vcpu, msr, data, host);
  },
};

/**
 * kvm_set_cpuid clears the guest's DEBUGCTL with the vPMU's state (as if the refresh reset the vCPU): what a VMM
 * restored before KVM_SET_CPUID2 is lost.
 */
export const SET_CPUID_CLEARS_DEBUGCTL: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_set_cpuid(vcpu: KvmVcpuState, cpuid: GuestCpuid): HostAccess {
    const r = EMULATED_OPS.kvm_set_cpuid(vcpu, cpuid);
    if (r.ok && !vcpu.hasRun) vcpu.guestDebugctl = 0n;
    return r;
  },
};

/** kvm_probe_msr_to_save lists FIXED_CTR_CTRL and the global MSRs from version 3 (`>= 2` became `>= 3`). */
export const MSR_LIST_GLOBALS_V3: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_probe_msr_to_save(vcpu: KvmVcpuState, msr: number): boolean {
    if (msr >= MSR_CORE_PERF_FIXED_CTR_CTRL && msr <= MSR_CORE_PERF_GLOBAL_CTRL) return vcpu.kvm_pmu_cap.version >= 3;
    return EMULATED_OPS.kvm_probe_msr_to_save(vcpu, msr);
  },
};

/** kvm_set_cpuid accepts a different CPUID after KVM_RUN (the -EINVAL deleted) and leaves the vPMU as it was. */
export const SET_CPUID_AFTER_RUN_ACCEPTED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_set_cpuid(vcpu: KvmVcpuState, cpuid: GuestCpuid): HostAccess {
    if (vcpu.hasRun) return { ok: true, value: 0n };
    return EMULATED_OPS.kvm_set_cpuid(vcpu, cpuid);
  },
};

/**
 * kvm_set_cpuid after KVM_RUN compares the entries' count only (kvm_cpuid_check_equal's compare of each entry deleted):
 * any payload with the same leaves is accepted again, and the vPMU keeps the old model.
 */
export const SET_CPUID_ENTRIES_UNCHECKED: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_set_cpuid(vcpu: KvmVcpuState, cpuid: GuestCpuid): HostAccess {
    if (vcpu.hasRun && (vcpu.cpuid.leaf1c === undefined) === (cpuid.leaf1c === undefined))
      return { ok: true, value: 0n };
    return EMULATED_OPS.kvm_set_cpuid(vcpu, cpuid);
  },
};
