/**
 * KVM's per-vCPU state for the mediated vPMU (struct kvm_pmu, struct kvm_pmc with the mediated
 * fields, the VMCS and MSR-bitmap bits the world switch uses). kvm-vpmu.md §2.2, §2.19. Plain
 * data; pmu.ts, pmu_intel.ts and vmx.ts act on it.
 */

import type { HostKernel } from '../../host/perf.js';
import type { KvmX86PmuEventFilter } from '../emulated/filter.js';
import type { VpmuCost } from '../cost.js';
import type { GuestCpuid } from '../types.js';

export const KVM_FIXED_PMC_BASE_IDX = 32;

export type PmcType = 'gp' | 'fixed';

/** struct kvm_pmc, mediated: no perf event; `counter` is the guest value itself. */
export interface MediatedPmc {
  readonly idx: number;
  readonly type: PmcType;
  /** The guest's counter, synced from hardware at put and loaded at load. */
  counter: bigint;
  /** GP: what the guest wrote. Fixed: perf's generic encoding of the fixed event. */
  eventsel: bigint;
  /** What KVM loads into hardware: eventsel with ENABLE cleared when the filter denies it. */
  eventselHw: bigint;
}

/** struct kvm_pmu as the mediated vPMU uses it. */
export interface MediatedPmu {
  version: number;
  nrArchGpCounters: number;
  nrArchFixedCounters: number;
  availableEventTypes: number;
  counterBitmaskGp: bigint;
  counterBitmaskFixed: bigint;
  globalCtrl: bigint;
  globalStatus: bigint;
  fixedCtrCtrl: bigint;
  /** What KVM loads into FIXED_CTR_CTRL: fields the filter denies are cleared. */
  fixedCtrCtrlHw: bigint;
  globalCtrlRsvd: bigint;
  globalStatusRsvd: bigint;
  fixedCtrCtrlRsvd: bigint;
  reservedBits: bigint;
  rawEventMask: bigint;
  readonly gp: MediatedPmc[];
  readonly fixed: MediatedPmc[];
  reprogramPmi: bigint;
  allValidPmcIdx: bigint;
  pmcCountingInstructions: bigint;
  pmcCountingBranches: bigint;
}

export type KvmRequest = 'PMU' | 'PMI';

/** struct kvm as far as the mediated vPMU goes: the filter, the vCPUs, created_mediated_pmu. */
export interface MediatedKvm {
  pmuEventFilter: KvmX86PmuEventFilter | null;
  readonly vcpus: MediatedVcpuState[];
  /** kvm->arch.created_mediated_pmu: perf_create_mediated_pmu succeeded for this VM. */
  createdMediatedPmu: boolean;
}

/** The parts of struct kvm_vcpu (and struct vcpu_vmx) the mediated vPMU touches. */
export interface MediatedVcpuState {
  readonly host: HostKernel;
  readonly kvm: MediatedKvm;
  readonly task: number;
  cpu: number;
  cpuid: GuestCpuid;
  perfCapabilities: bigint;
  readonly supportedPerfCap: bigint;
  hasRun: boolean;
  readonly requests: Set<KvmRequest>;
  readonly pmu: MediatedPmu;
  /** GUEST_IA32_DEBUGCTL in the VMCS. */
  guestDebugctl: bigint;
  /** GUEST_IA32_PERF_GLOBAL_CTRL in the VMCS: loaded by VM-entry, saved by VM-exit. */
  vmcsGuestPerfGlobalCtrl: bigint;
  /** The guest's LVTPC in the in-kernel local APIC. */
  lvtpc: bigint;
  /** MSRs the guest accesses without a VM-exit (holes in the MSR bitmap). */
  readonly passthrough: Set<number>;
  /** CPU_BASED_RDPMC_EXITING. */
  rdpmcExiting: boolean;
  /** Guest CR4.PCE, which RDPMC checks (in hardware when RDPMC is not intercepted). */
  cr4Pce: boolean;
  /** The guest PMU state is in hardware (between kvm_mediated_pmu_load and kvm_mediated_pmu_put). */
  pmuLoaded: boolean;
  readonly cost: VpmuCost;
}

export function newMediatedPmc(idx: number, type: PmcType): MediatedPmc {
  return { idx, type, counter: 0n, eventsel: 0n, eventselHw: 0n };
}
