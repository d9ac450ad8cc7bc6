/**
 * Planted faults in common/pmu_intel.ts (arch/x86/kvm/vmx/pmu_intel.c, the parts both designs share),
 * planted on the perf-based design by replacing the kernel function they sit in.
 */

import { type Access, ok } from '../../hw/access.js';
import { lowMask } from '../../hw/bits.js';
import {
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  INTEL_FIXED_0_ENABLE_PMI,
} from '../../hw/msr/counters.js';
import { fixed_ctrl_field, get_gp_pmc, kvm_pmu_request_counter_reprogram } from '../common/pmu.h.js';
import { fw_writes_is_enabled } from '../common/pmu_intel.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import type { KvmVcpuState } from '../emulated/state.js';

/** intel_pmu_refresh leaves each fixed counter's PMI bit reserved (`0xb << 4i` became `0x3 << 4i`). */
export const FIXED_RSVD_PMI_BIT: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_refresh(vcpu: KvmVcpuState): void {
    EMULATED_OPS.intel_pmu_refresh(vcpu);
    for (let i = 0; i < vcpu.pmu.nr_arch_fixed_counters; i++)
      vcpu.pmu.fixed_ctr_ctrl_rsvd |= INTEL_FIXED_0_ENABLE_PMI << BigInt(4 * i);
  },
};

/**
 * A VMM's write of a counter's legacy alias is sign-extended from bit 31 as a guest's is (`!host_initiated &&`
 * dropped): a restored 0xfffffff0 becomes -16 at the counter's full width.
 */
export const HOST_COUNTER_WRITE_SIGN_EXTENDED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const legacy = msr >= MSR_IA32_PERFCTR0 && msr < MSR_IA32_PERFCTR0 + vcpu.pmu.nr_arch_gp_counters;
    return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated && !legacy);
  },
};

/** intel_pmu_refresh takes the GP counter width one bit short (`min(width, cap) - 1`). */
export const GP_WIDTH_OFF_BY_ONE: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_refresh(vcpu: KvmVcpuState): void {
    EMULATED_OPS.intel_pmu_refresh(vcpu);
    if (vcpu.pmu.version === 0) return;
    const width = Math.min((vcpu.cpuid.leaf0a.eax >>> 16) & 0xff, vcpu.kvm_pmu_cap.bit_width_gp);
    vcpu.pmu.counter_bitmask_gp = lowMask(width - 1);
  },
};

/** A guest's legacy counter write is zero-extended from 32 bits (`(s64)(s32)data` became `(u32)data`). */
export const LEGACY_WRITE_ZERO_EXTENDED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const ctr = get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0);
    if (ctr === undefined || hostInitiated) return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
    vcpu.ops.pmc_write_counter(vcpu, ctr, data & 0xffff_ffffn);
    return ok(data);
  },
};

/** A full-width counter write above the counter's width is taken (masked) instead of #GP (the check deleted). */
export const FW_WRITE_WIDTH_UNCHECKED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const ctr = fw_writes_is_enabled(vcpu) ? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0) : undefined;
    if (ctr === undefined) return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
    vcpu.ops.pmc_write_counter(vcpu, ctr, data);
    return ok(data);
  },
};

/** A selector write requests its reprogram before storing the value (the two lines swapped). */
export const EVENTSEL_REPROGRAM_BEFORE_STORE: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
    if (sel === undefined || (data & vcpu.pmu.reserved_bits) !== 0n || data === sel.eventsel)
      return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
    kvm_pmu_request_counter_reprogram(vcpu, sel);
    sel.eventsel = data;
    sel.eventsel_hw = data;
    return ok(data);
  },
};

/** A selector write's reserved-bit check deleted: reserved bits are stored and read back. */
export const SELECTOR_RSVD_UNCHECKED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
    if (sel === undefined || (data & vcpu.pmu.reserved_bits) === 0n)
      return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if (data !== sel.eventsel) {
      sel.eventsel = data;
      sel.eventsel_hw = data;
      kvm_pmu_request_counter_reprogram(vcpu, sel);
    }
    return ok(data);
  },
};

/** FIXED_CTR_CTRL's reserved-bit check deleted. */
export const FIXED_CTRL_RSVD_UNCHECKED: EmulatedOps = {
  ...EMULATED_OPS,
  intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
    if (msr !== MSR_CORE_PERF_FIXED_CTR_CTRL || (data & vcpu.pmu.fixed_ctr_ctrl_rsvd) === 0n)
      return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
    if (vcpu.pmu.fixed_ctr_ctrl !== data) vcpu.ops.reprogram_fixed_counters(vcpu, data);
    return ok(data);
  },
};

/** reprogram_fixed_counters stops one counter short (`i < nr_arch_fixed_counters - 1`). */
export const FIXED_REPROGRAM_SKIPS_LAST: EmulatedOps = {
  ...EMULATED_OPS,
  reprogram_fixed_counters(vcpu: KvmVcpuState, data: bigint): void {
    const pmu = vcpu.pmu;
    const old = pmu.fixed_ctr_ctrl;
    pmu.fixed_ctr_ctrl = data;
    for (let i = 0; i < pmu.nr_arch_fixed_counters - 1; i++) {
      if (fixed_ctrl_field(data, i) === fixed_ctrl_field(old, i)) continue;
      const pmc = pmu.fixed_counters[i]!;
      pmu.pmc_in_use |= 1n << BigInt(pmc.idx);
      kvm_pmu_request_counter_reprogram(vcpu, pmc);
    }
  },
};

/** reprogram_fixed_counters takes its snapshot after the store: no field ever looks changed. */
export const FIXED_SNAPSHOT_AFTER_STORE: EmulatedOps = {
  ...EMULATED_OPS,
  reprogram_fixed_counters(vcpu: KvmVcpuState, data: bigint): void {
    const pmu = vcpu.pmu;
    pmu.fixed_ctr_ctrl = data;
    const old = pmu.fixed_ctr_ctrl;
    for (let i = 0; i < pmu.nr_arch_fixed_counters; i++) {
      if (fixed_ctrl_field(data, i) === fixed_ctrl_field(old, i)) continue;
      kvm_pmu_request_counter_reprogram(vcpu, pmu.fixed_counters[i]!);
    }
  },
};
