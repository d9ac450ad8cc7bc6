/**
 * KVM's per-vCPU PMU state (struct kvm_pmu, struct kvm_pmc, struct lbr_desc), as kvm-vpmu.md §2.2
 * lists it. Plain data; the functions of pmu.ts / pmu_intel.ts / vmx.ts act on it.
 */

import type { X86PmuLbr } from '../../host/perf.js';
import type { PerfEvent } from '../../host/types.js';
import type { KvmBase, PmcBase, PmcType, PmuBase, VcpuBase } from '../common/state.js';

/** INTEL_PMC_IDX_FIXED_VLBR: the pseudo counter index of the guest LBR event. */
export const INTEL_PMC_IDX_FIXED_VLBR = 58;

/** struct kvm_pmc, perf-based: the fields of PmcBase and the perf event behind the counter. */
export interface KvmPmc extends PmcBase {
  /** Base value: the guest reads (counter + emulated_counter + perf count) & bitmask. */
  counter: bigint;
  /** KVM-emulated events not yet folded into `counter`. */
  emulated_counter: bigint;
  /** The config of the current perf event (GP: eventsel, fixed: its 4-bit field); 0 when none. */
  current_config: bigint;
  perf_event: PerfEvent | null;
  is_paused: boolean;
  /** The INT bit (or PEBS) of the config the event was created with. */
  intr: boolean;
}

/** struct lbr_desc. */
export interface LbrDesc {
  /** records.nr: 0 when guest LBR is not enabled for this vCPU. */
  nr: number;
  event: PerfEvent | null;
  msr_passthrough: boolean;
}

/** struct kvm_pmu, perf-based: PmuBase plus the perf-event bookkeeping. */
export interface KvmPmu extends PmuBase<KvmPmc> {
  pmc_in_use: bigint;
  event_count: number;
  need_cleanup: boolean;
}

/** The parts of struct kvm the vPMU touches: the event filter and the vCPUs it reprograms. */
export type KvmState = KvmBase<KvmVcpuState>;

/** The parts of struct kvm_vcpu the perf-based vPMU touches. */
export interface KvmVcpuState extends VcpuBase<KvmPmc> {
  readonly kvm: KvmState;
  /** vmx_lbr_caps: the LBR records perf manages, as vmx_get_perf_capabilities kept them (nr 0: none). */
  readonly lbrCaps: X86PmuLbr;
  /** Was the vCPU scheduled out since it last ran (vcpu->preempted / scheduled out). */
  scheduled_out: boolean;
  readonly pmu: KvmPmu;
  readonly lbr: LbrDesc;
  /** Vendor hooks that upstream no longer has; absent in the faithful port (see KvmPmuHistoricOps). */
  ops?: KvmPmuHistoricOps;
}

/**
 * Static calls of kvm_pmu_ops that older kernels had and today's upstream folded away
 * (.pmc_is_enabled until 5.19's global_ctrl fix, .hw_event_available until 6.9). A ported bug
 * plugs its pre-fix version in here; the faithful port leaves them out, which is today's behaviour.
 */
export interface KvmPmuHistoricOps {
  /** intel_pmc_is_enabled: may the PMC count at all, as the vendor saw it. */
  readonly pmc_is_enabled?: (vcpu: KvmVcpuState, pmc: KvmPmc) => boolean;
  /** intel_hw_event_available: is the PMC's event one guest CPUID lets it count. */
  readonly hw_event_available?: (vcpu: KvmVcpuState, pmc: KvmPmc) => boolean;
  /** reprogram_gp_counter / reprogram_fixed_counter as kernels before 5.5 had them (no event reuse). */
  readonly reprogram_counter?: (vcpu: KvmVcpuState, pmc: KvmPmc) => boolean;
}

export function newPmc(idx: number, type: PmcType): KvmPmc {
  return {
    idx,
    type,
    counter: 0n,
    emulated_counter: 0n,
    eventsel: 0n,
    current_config: 0n,
    perf_event: null,
    is_paused: false,
    intr: false,
  };
}
