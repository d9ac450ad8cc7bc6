/**
 * KVM's per-vCPU PMU state (struct kvm_pmu, struct kvm_pmc, struct lbr_desc), as kvm-vpmu.md §2.2
 * lists it. Plain data; the functions of pmu.ts / pmu_intel.ts / vmx.ts act on it.
 */

import type { GuestMsrs, X86PmuLbr } from '../../host/perf.js';
import type { PerfEvent } from '../../host/types.js';
import type { KvmBase, PmcBase, PmcType, PmuBase, VcpuBase } from '../common/state.js';
import type { EmulatedOps } from './ops.js';

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

/** vcpu->arch.handling_intr_from_guest: which interrupt that exited the guest KVM is handling. */
export type KvmIntrType = 'none' | 'irq' | 'nmi';

/** The parts of struct kvm_vcpu the perf-based vPMU touches. */
export interface KvmVcpuState extends VcpuBase<KvmPmc> {
  readonly ops: EmulatedOps;
  readonly kvm: KvmState;
  /** vmx_lbr_caps: the LBR records perf manages, as vmx_get_perf_capabilities kept them (nr 0: none). */
  readonly lbrCaps: X86PmuLbr;
  readonly pmu: KvmPmu;
  readonly lbr: LbrDesc;
  /** vcpu->arch.handling_intr_from_guest: set while KVM handles an IRQ or NMI that exited the guest. */
  handling_intr_from_guest: KvmIntrType;
  /** vmx->msr_autoload for GLOBAL_CTRL: what this VM-entry loaded (guest) and the VM-exit loads (host). */
  msr_autoload: GuestMsrs;
}

export function newPmc(idx: number, type: PmcType): KvmPmc {
  return {
    idx,
    type,
    counter: 0n,
    emulated_counter: 0n,
    eventsel: 0n,
    eventsel_hw: 0n,
    current_config: 0n,
    perf_event: null,
    is_paused: false,
    intr: false,
  };
}
