/**
 * The parts of arch/x86/kvm/vmx/pmu_intel.c both designs run the same way: MSR numbers, counter
 * lookup, the CPUID-derived refresh, RDPMC decoding and the counter/selector MSR accesses. The
 * guest-LBR paths (perf-based only) and the mediated load/put stay in each design's pmu_intel.ts.
 * kvm-vpmu.md §2.4, §2.6, §2.12.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { lowMask, signExtend } from '../../hw/bits.js';
import type { PmcBase, VcpuBase } from './state.js';
import { fixed_ctrl_field, kvm_pmu_request_counter_reprogram, get_gp_pmc, get_fixed_pmc } from './pmu.h.js';
import { PERF_CAP_FW_WRITES } from '../../hw/msr/capabilities.js';
import {
  MSR_IA32_PMC0,
  HSW_IN_TX,
  HSW_IN_TX_CHECKPOINTED,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_P6_EVNTSEL0,
  INTEL_FIXED_0_KERNEL,
  INTEL_FIXED_0_USER,
  INTEL_FIXED_0_ENABLE_PMI,
} from '../../hw/msr/counters.js';
import { GLOBAL_STATUS_BUFFER_OVF, GLOBAL_STATUS_COND_CHG } from '../../hw/msr/global.js';

/** vcpu_get_perf_capabilities: PERF_CAPABILITIES counts only while guest CPUID has PDCM. */
export function vcpu_get_perf_capabilities(vcpu: VcpuBase): bigint {
  return vcpu.cpuid.pdcm ? vcpu.perf_capabilities : 0n;
}

/** fw_writes_is_enabled. */
export function fw_writes_is_enabled(vcpu: VcpuBase): boolean {
  return (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_FW_WRITES) !== 0n;
}

/** get_fw_gp_pmc: the IA32_PMCx aliases need PERF_CAPABILITIES.FW_WRITES. */
function get_fw_gp_pmc<P extends PmcBase>(vcpu: VcpuBase<P>, msr: number): P | undefined {
  return fw_writes_is_enabled(vcpu) ? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0) : undefined;
}

/**
 * intel_pmu_refresh without its guest-LBR step (perf-based only; the mediated vPMU never advertises
 * LBR_FMT): the guest PMU from guest CPUID.0AH, clamped to KVM's caps.
 */
export function intel_pmu_refresh(vcpu: VcpuBase): void {
  const pmu = vcpu.pmu;
  const cap = vcpu.kvm_pmu_cap;
  const { eax, ebx, edx } = vcpu.cpuid.leaf0a;
  pmu.version = eax & 0xff; // not clamped to what KVM advertises (kvm-vpmu.md §2.4, K10)
  if (pmu.version === 0) return;
  pmu.nr_arch_gp_counters = Math.min((eax >>> 8) & 0xff, cap.num_counters_gp);
  const gpWidth = Math.min((eax >>> 16) & 0xff, cap.bit_width_gp);
  pmu.counter_bitmask_gp = lowMask(gpWidth);
  const maskLen = Math.min((eax >>> 24) & 0xff, cap.events_mask_len);
  pmu.available_event_types = ~ebx & ((1 << maskLen) - 1);
  if (vcpu.cpuid.tsx === true && vcpu.host.profile.tsx) {
    pmu.reserved_bits ^= HSW_IN_TX;
    pmu.raw_event_mask |= HSW_IN_TX | HSW_IN_TX_CHECKPOINTED;
  }
  if (pmu.version === 1) return;
  pmu.nr_arch_fixed_counters = Math.min(edx & 0x1f, cap.num_counters_fixed); // the v5 ECX bitmap is not consumed
  const fixedWidth = Math.min((edx >>> 5) & 0xff, cap.bit_width_fixed);
  pmu.counter_bitmask_fixed = lowMask(fixedWidth);
  for (let i = 0; i < pmu.nr_arch_fixed_counters; i++)
    pmu.fixed_ctr_ctrl_rsvd &= ~(
      (INTEL_FIXED_0_KERNEL | INTEL_FIXED_0_USER | INTEL_FIXED_0_ENABLE_PMI) <<
      BigInt(4 * i)
    );
  const counterRsvd = ~(lowMask(pmu.nr_arch_gp_counters) | (lowMask(pmu.nr_arch_fixed_counters) << 32n));
  pmu.global_ctrl_rsvd = counterRsvd;
  pmu.global_status_rsvd = pmu.global_ctrl_rsvd & ~(GLOBAL_STATUS_BUFFER_OVF | GLOBAL_STATUS_COND_CHG);
}

/**
 * intel_is_valid_msr for the counter and control MSRs (the LBR MSRs are the perf-based design's; PEBS MSRs are not
 * ported: K2).
 */
export function intel_is_valid_pmc_msr(vcpu: VcpuBase, msr: number): boolean {
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return vcpu.pmu.version > 1;
  return (
    get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) !== undefined ||
    get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0) !== undefined ||
    get_fixed_pmc(vcpu, msr) !== undefined ||
    get_fw_gp_pmc(vcpu, msr) !== undefined
  );
}

/** The MSR a vendor access named is none of the vPMU's. */
export function notVpmuMsr(msr: number): Access {
  return gp(`MSR 0x${msr.toString(16)}: not a vPMU MSR`);
}

/** intel_pmu_get_msr for the counter and control MSRs; null for any other MSR (the design goes on). */
export function intel_pmu_get_pmc_msr(vcpu: VcpuBase, msr: number): Access | null {
  const pmu = vcpu.pmu;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return ok(pmu.fixed_ctr_ctrl);
  const ctr = get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) ?? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0);
  if (ctr !== undefined) return ok(vcpu.ops.pmc_read_counter(vcpu, ctr) & pmu.counter_bitmask_gp);
  const fixed = get_fixed_pmc(vcpu, msr);
  if (fixed !== undefined) return ok(vcpu.ops.pmc_read_counter(vcpu, fixed) & pmu.counter_bitmask_fixed);
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) return ok(sel.eventsel); // the guest's value, even when the filter denies it
  return null;
}

/**
 * reprogram_fixed_counters: store, and reprogram each counter whose 4-bit field changed
 * (`touched` is the design's bookkeeping for such a counter: pmc_in_use in the perf-based vPMU).
 */
export function reprogram_fixed_counters<V extends VcpuBase<P>, P extends PmcBase>(
  vcpu: V,
  data: bigint,
  touched?: (vcpu: V, pmc: P) => void,
): void {
  const pmu = vcpu.pmu;
  const old = pmu.fixed_ctr_ctrl; // a u64 snapshot (05519c86d699)
  pmu.fixed_ctr_ctrl = data;
  for (let i = 0; i < pmu.nr_arch_fixed_counters; i++) {
    if (fixed_ctrl_field(data, i) === fixed_ctrl_field(old, i)) continue;
    const pmc = pmu.fixed_counters[i]!;
    touched?.(vcpu, pmc);
    kvm_pmu_request_counter_reprogram(vcpu, pmc);
  }
}

/**
 * intel_pmu_set_msr for the counter and control MSRs; null for any other MSR (the design goes on). The
 * design's pmc_write_counter and reprogram_fixed_counters do the writes; a changed selector is stored
 * in eventsel and eventsel_hw (the mediated vPMU's filter shadow).
 */
export function intel_pmu_set_pmc_msr(
  vcpu: VcpuBase,
  msr: number,
  value: bigint,
  hostInitiated: boolean,
): Access | null {
  const pmu = vcpu.pmu;
  let data = value;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) {
    if ((data & pmu.fixed_ctr_ctrl_rsvd) !== 0n)
      return gp('IA32_FIXED_CTR_CTRL: reserved bits (fixed_ctr_ctrl_rsvd)', data & pmu.fixed_ctr_ctrl_rsvd);
    if (pmu.fixed_ctr_ctrl !== data) vcpu.ops.reprogram_fixed_counters(vcpu, data);
    return ok(data);
  }
  const ctr = get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) ?? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0);
  if (ctr !== undefined) {
    const fullWidth = msr >= MSR_IA32_PMC0;
    if (fullWidth && (data & ~pmu.counter_bitmask_gp) !== 0n)
      return gp('IA32_PMCx: bits above the counter width', data & ~pmu.counter_bitmask_gp);
    if (!hostInitiated && !fullWidth) data = signExtend(data & 0xffff_ffffn, 31); // (s64)(s32)data
    vcpu.ops.pmc_write_counter(vcpu, ctr, data);
    return ok(data);
  }
  const fixed = get_fixed_pmc(vcpu, msr);
  if (fixed !== undefined) {
    vcpu.ops.pmc_write_counter(vcpu, fixed, data);
    return ok(data);
  }
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) {
    let reserved = pmu.reserved_bits;
    if (sel.idx === 2 && (pmu.raw_event_mask & HSW_IN_TX_CHECKPOINTED) !== 0n) reserved ^= HSW_IN_TX_CHECKPOINTED;
    if ((data & reserved) !== 0n)
      return gp(`IA32_PERFEVTSEL${sel.idx}: reserved bits (reserved_bits)`, data & reserved);
    if (data !== sel.eventsel) {
      sel.eventsel = data;
      sel.eventsel_hw = data;
      kvm_pmu_request_counter_reprogram(vcpu, sel);
    }
    return ok(data);
  }
  return null;
}

/** intel_rdpmc_ecx_to_pmc: ECX[31:16] is a type, 0 (GP) or 0x4000 (fixed); anything else is invalid. */
export function intel_rdpmc_ecx_to_pmc<P extends PmcBase>(
  vcpu: VcpuBase<P>,
  ecx: number,
): { pmc: P; mask: bigint } | null {
  const pmu = vcpu.pmu;
  const type = ecx >>> 16;
  const idx = ecx & 0xffff;
  if (type === 0x0000)
    return idx < pmu.nr_arch_gp_counters ? { pmc: pmu.gp_counters[idx]!, mask: pmu.counter_bitmask_gp } : null;
  if (type === 0x4000)
    return idx < pmu.nr_arch_fixed_counters ? { pmc: pmu.fixed_counters[idx]!, mask: pmu.counter_bitmask_fixed } : null;
  return null;
}
