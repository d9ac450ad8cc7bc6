/**
 * arch/x86/kvm/pmu.h: what pmu.c and the vendor's pmu_intel.c share: the inline helpers and the
 * capability struct. pmu.c reaches the vendor (kvm_pmu_call) only through the design's record of
 * kernel functions (ops.ts), so the two never import each other.
 */

import { bit, isSet } from '../../hw/bits.js';
import { KVM_FIXED_PMC_BASE_IDX, type PmcBase, type PmuBase, type VcpuBase } from './state.js';
import { ARCH_PERFMON_EVENTSEL_ENABLE, MSR_CORE_PERF_FIXED_CTR0 } from '../../hw/msr/counters.js';

export const KVM_MAX_NR_INTEL_GP_COUNTERS = 8;

/** KVM_MAX_NR_INTEL_FIXED_COUTNERS, upstream's spelling. */
export const KVM_MAX_NR_INTEL_FIXED_COUTNERS = 3;

export const KVM_MAX_NR_INTEL_FIXED_COUNTERS = KVM_MAX_NR_INTEL_FIXED_COUTNERS;

/** perf's generic encodings KVM matches emulated instructions and branches against. */
export const PERF_COUNT_HW_INSTRUCTIONS = 0x00c0n;

export const PERF_COUNT_HW_BRANCH_INSTRUCTIONS = 0x00c4n;

/** AMD64_RAW_EVENT_MASK_NB: event select (with AMD's bits 35:32, Intel's IN_TX/IN_TXCP) and umask. */
const AMD64_RAW_EVENT_MASK_NB = 0xf_0000_ffffn;

/** kvm_pmu_cap: what KVM can offer on this host (kvm_init_pmu_capability), with enable_pmu. */
export interface KvmPmuCap {
  /** enable_pmu after kvm_init_pmu_capability: false leaves every vCPU without a vPMU. */
  readonly enable_pmu: boolean;
  readonly version: number;
  readonly num_counters_gp: number;
  readonly num_counters_fixed: number;
  readonly bit_width_gp: number;
  readonly bit_width_fixed: number;
  readonly events_mask_len: number;
  /** perf's x86_pmu.events_maskl: the host's CPUID.0AH:EBX, a set bit marking an event unavailable. */
  readonly events_mask: number;
}

/** pmc_bitmask. */
export function pmc_bitmask(vcpu: VcpuBase, pmc: PmcBase): bigint {
  return pmc.type === 'gp' ? vcpu.pmu.counter_bitmask_gp : vcpu.pmu.counter_bitmask_fixed;
}

/** The valid PMCs, in kvm_for_each_pmc order (GP then fixed). */
export function validPmcs<P extends PmcBase>(pmu: PmuBase<P>): readonly P[] {
  // Kept on the PMU while its counter arrays, their lengths and the counts stand: KVM walks it on every request.
  const held = pmu as Held<P>;
  const c = held[VALID];
  if (
    c !== undefined &&
    c.gp === pmu.gp_counters &&
    c.fixed === pmu.fixed_counters &&
    c.gpLen === pmu.gp_counters.length &&
    c.fixedLen === pmu.fixed_counters.length &&
    c.nGp === pmu.nr_arch_gp_counters &&
    c.nFixed === pmu.nr_arch_fixed_counters
  )
    return c.list;
  const list = [
    ...pmu.gp_counters.slice(0, pmu.nr_arch_gp_counters),
    ...pmu.fixed_counters.slice(0, pmu.nr_arch_fixed_counters),
  ];
  held[VALID] = {
    gp: pmu.gp_counters,
    fixed: pmu.fixed_counters,
    gpLen: pmu.gp_counters.length,
    fixedLen: pmu.fixed_counters.length,
    nGp: pmu.nr_arch_gp_counters,
    nFixed: pmu.nr_arch_fixed_counters,
    list,
  };
  return list;
}

interface ValidPmcs<P> {
  readonly gp: readonly P[];
  readonly fixed: readonly P[];
  readonly gpLen: number;
  readonly fixedLen: number;
  readonly nGp: number;
  readonly nFixed: number;
  readonly list: readonly P[];
}
/**
 * validPmcs' list, kept on the PMU under a key of its own (no kernel state). Not a WeakMap: with its lookup, validPmcs
 * took 7 % of a loop of guest WRMSRs, and its entries (one per vCPU a program made) outlived minor GCs.
 */
const VALID = Symbol('validPmcs');
type Held<P extends PmcBase> = PmuBase<P> & { [VALID]?: ValidPmcs<P> };

/** kvm_pmu_has_perf_global_ctrl. */
export function kvm_pmu_has_perf_global_ctrl(pmu: PmuBase): boolean {
  return pmu.version > 1;
}

/** pmc_is_globally_enabled. */
export function pmc_is_globally_enabled(vcpu: VcpuBase, pmc: PmcBase): boolean {
  const pmu = vcpu.pmu;
  return !kvm_pmu_has_perf_global_ctrl(pmu) || isSet(pmu.global_ctrl, pmc.idx);
}

/** fixed_ctrl_field. */
export function fixed_ctrl_field(ctrl: bigint, i: number): number {
  return Number((ctrl >> BigInt(4 * i)) & 0xfn);
}

/** pmc_is_locally_enabled: EN for GP counters, OS|USR for fixed ones. */
export function pmc_is_locally_enabled(vcpu: VcpuBase, pmc: PmcBase): boolean {
  if (pmc.type === 'gp') return (pmc.eventsel & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n;
  return (fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX) & 3) !== 0;
}

/** kvm_pmu_request_counter_reprogram: recalc emulation at once, so the skipped WRMSR itself counts. */
export function kvm_pmu_request_counter_reprogram(vcpu: VcpuBase, pmc: PmcBase): void {
  kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
  vcpu.pmu.reprogram_pmi |= bit(pmc.idx);
  vcpu.requests.add('PMU');
}

/** reprogram_counters: every counter whose bit changed in `diff`. */
export function reprogram_counters(vcpu: VcpuBase, diff: bigint): void {
  if (diff === 0n) return;
  vcpu.pmu.reprogram_pmi |= diff;
  vcpu.requests.add('PMU');
}

/** pmc_is_event_match: edge, pin, inv and cmask are ignored; IN_TX/IN_TXCP must match (be clear). */
function pmc_is_event_match(pmc: PmcBase, generic: bigint): boolean {
  return ((pmc.eventsel ^ generic) & AMD64_RAW_EVENT_MASK_NB) === 0n;
}

/**
 * kvm_pmu_recalc_pmc_emulation: which PMCs count emulated instructions and branches (no filter check: it is read at
 * emulation time).
 */
export function kvm_pmu_recalc_pmc_emulation(vcpu: VcpuBase, pmc: PmcBase): void {
  const b = bit(pmc.idx);
  const pmu = vcpu.pmu;
  pmu.pmc_counting_instructions &= ~b;
  pmu.pmc_counting_branches &= ~b;
  if (!pmc_is_locally_enabled(vcpu, pmc)) return;
  if (pmc_is_event_match(pmc, PERF_COUNT_HW_INSTRUCTIONS)) pmu.pmc_counting_instructions |= b;
  if (pmc_is_event_match(pmc, PERF_COUNT_HW_BRANCH_INSTRUCTIONS)) pmu.pmc_counting_branches |= b;
}

/** get_gp_pmc: the GP PMC an MSR of the family at `base` addresses. */
export function get_gp_pmc<P extends PmcBase>(vcpu: VcpuBase<P>, msr: number, base: number): P | undefined {
  const i = msr - base;
  return i >= 0 && i < vcpu.pmu.nr_arch_gp_counters ? vcpu.pmu.gp_counters[i] : undefined;
}

/** get_fixed_pmc. */
export function get_fixed_pmc<P extends PmcBase>(vcpu: VcpuBase<P>, msr: number): P | undefined {
  const i = msr - MSR_CORE_PERF_FIXED_CTR0;
  return i >= 0 && i < vcpu.pmu.nr_arch_fixed_counters ? vcpu.pmu.fixed_counters[i] : undefined;
}

/** The PMC type of a vCPU state. */
export type PmcOf<V extends VcpuBase> = V['pmu']['gp_counters'][number];
