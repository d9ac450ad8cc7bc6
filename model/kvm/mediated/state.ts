/**
 * KVM's per-vCPU state for the mediated vPMU (struct kvm_pmu, struct kvm_pmc with the mediated
 * fields, the VMCS and MSR-bitmap bits the world switch uses). kvm-vpmu.md §2.2, §2.19. Plain
 * data; pmu.ts, pmu_intel.ts and vmx.ts act on it.
 */

import type { KvmBase, PmcBase, PmuBase, VcpuBase } from '../common/state.js';
import type { MediatedOps } from './ops.js';
import type { MediatedPmuCap } from './pmu.js';

/** struct kvm_pmc, mediated: no perf event; `counter` is the guest value itself. */
export interface MediatedPmc extends PmcBase {
  /** The guest's counter, synced from hardware at put and loaded at load. */
  counter: bigint;
  /** What KVM loads into hardware: eventsel with ENABLE cleared when the filter denies it. */
  eventsel_hw: bigint;
}

/** struct kvm_pmu as the mediated vPMU uses it: PmuBase plus the _hw shadow of FIXED_CTR_CTRL. */
export interface MediatedPmu extends PmuBase<MediatedPmc> {
  /** What KVM loads into FIXED_CTR_CTRL: fields the filter denies are cleared. */
  fixed_ctr_ctrl_hw: bigint;
}

/** struct kvm as far as the mediated vPMU goes. */
export type MediatedKvm = KvmBase<MediatedVcpuState>;

/** The parts of struct kvm_vcpu (and struct vcpu_vmx) the mediated vPMU touches. */
export interface MediatedVcpuState extends VcpuBase<MediatedPmc> {
  readonly ops: MediatedOps;
  readonly kvm_pmu_cap: MediatedPmuCap;
  readonly kvm: MediatedKvm;
  readonly pmu: MediatedPmu;
  /** GUEST_IA32_PERF_GLOBAL_CTRL in the VMCS: loaded by VM-entry, saved by VM-exit. */
  vmcsGuestPerfGlobalCtrl: bigint;
  /** CPU_BASED_RDPMC_EXITING. */
  rdpmcExiting: boolean;
  /** The guest PMU state is in hardware (between kvm_mediated_pmu_load and kvm_mediated_pmu_put). */
  pmuLoaded: boolean;
  /** The host's CR4.PCE, which VM-exit restores. */
  hostCr4Pce: boolean;
}

export function newMediatedPmc(idx: number, type: PmcBase['type']): MediatedPmc {
  return { idx, type, counter: 0n, eventsel: 0n, eventsel_hw: 0n };
}
