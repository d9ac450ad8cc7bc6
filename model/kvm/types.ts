/**
 * The one interface every vPMU design implements (today's emulated vPMU, the mediated vPMU,
 * ported patch series), so the engine never knows which one it drives. A vCPU is driven the
 * way a VMM and its guest drive KVM: userspace ioctls, guest instructions, guest work, and the
 * host scheduler moving the vCPU thread between physical CPUs.
 */

import type { Access } from '../hw/access.js';
import type { VpmuCost } from './cost.js';
import type { XsaveResult } from '../hw/cpu.js';
import type { ArchLbrXsave } from '../hw/msr/lbr_arch.js';
import type { CpuidRegs } from '../hw/profile.js';
import type { WorkUnit } from '../hw/work.js';

/** The PMU-relevant part of the guest CPUID that userspace sets with KVM_SET_CPUID2. */
export interface GuestCpuid {
  readonly family: number;
  readonly model: number;
  /** CPUID.0AH, as userspace chose it (KVM does not clamp the version: kvm-vpmu.md §2.4). */
  readonly leaf0a: CpuidRegs;
  /** CPUID.01H:ECX.PDCM. */
  readonly pdcm: boolean;
  /** CPUID.07H:EBX HLE/RTM. */
  readonly tsx?: boolean;
  /** CPUID.(07H,0):EDX[19] ARCH_LBR (X86_FEATURE_ARCH_LBR). */
  readonly archLbr?: boolean;
  /** CPUID.1CH (Arch LBR depths and capabilities); read only with archLbr. */
  readonly leaf1c?: CpuidRegs;
}

/** A vCPU's CPUID before any KVM_SET_CPUID2 takes: no entries, so no PMU, no PDCM. */
export const NO_CPUID: GuestCpuid = Object.freeze({
  family: 0,
  model: 0,
  leaf0a: Object.freeze({ eax: 0, ebx: 0, ecx: 0, edx: 0 }),
  pdcm: false,
});

/**
 * The design's kernel crashed (a NULL dereference, a BUG_ON) while handling a guest instruction: the host
 * is gone. The world records it as the design's outcome, never as a failure of the engine.
 */
export class KernelOops extends Error {
  override readonly name = 'KernelOops';
}

/**
 * An instruction the guest makes KVM emulate by prefixing it with KVM's forced-emulation prefix (KVM_FEP,
 * `ud2; .byte 'k', 'v', 'm'`, with kvm.force_emulation_prefix set), as the selftests and kvm-unit-tests do: `mov`,
 * `xor`, `enter`, `leave` (no branches), `jne` and `loop` (branches).
 */
export type EmulatedInsn = 'mov' | 'xor' | 'enter' | 'leave' | 'jne' | 'loop';

export const EMULATED_INSNS: readonly EmulatedInsn[] = ['mov', 'xor', 'enter', 'leave', 'jne', 'loop'];

/** KVM_PMU_CAP_DISABLE (uapi): the one flag of KVM_CAP_PMU_CAPABILITY. */
export const KVM_PMU_CAP_DISABLE = 1n;

/** A VM ioctl the VMM issued before KVM_CREATE_VCPU failed: the vCPU was never created. */
export class KvmIoctlError extends Error {
  override readonly name = 'KvmIoctlError';
}

/** How the VMM creates the vCPU's VM: KVM_CREATE_VM, then (if given) KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, args[0]). */
export interface VmSetup {
  /** args[0] of KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY) before KVM_CREATE_VCPU: KVM_PMU_CAP_DISABLE (1) turns the vPMU off. */
  readonly pmuCap?: bigint;
}

/**
 * A host-initiated (KVM_GET_MSRS / KVM_SET_MSRS) access: the ioctl succeeds or fails (`reservedBits`: for a value
 * refused, the bits of it the rule reserves, as a guest's #GP names them).
 */
export type HostAccess =
  | { readonly ok: true; readonly value: bigint }
  | { readonly ok: false; readonly error: string; readonly reservedBits?: bigint; readonly errno?: Errno };

/** The errno an ioctl fails with, where the World judges it (KVM_SET_PMU_EVENT_FILTER). */
export type Errno = 'EINVAL' | 'E2BIG';

/** struct kvm_pmu_event_filter, as userspace passes it to KVM_SET_PMU_EVENT_FILTER. */
export interface KvmPmuEventFilter {
  /** KVM_PMU_EVENT_ALLOW (0) or KVM_PMU_EVENT_DENY (1). */
  readonly action: number;
  /** KVM_PMU_EVENT_FLAG_MASKED_EVENTS (1) or 0. */
  readonly flags: number;
  readonly fixed_counter_bitmap: number;
  /** Legacy entries: (umask << 8) | event select. Masked entries: KVM_PMU_ENCODE_MASKED_ENTRY. */
  readonly events: readonly bigint[];
}

/** What the guest saw during a run of work units, besides the units themselves. */
export interface GuestPmi {
  /** Index of the unit after which the PMI was injected. */
  readonly afterUnit: number;
  readonly vector: number;
}

/**
 * What a VMM can get from a design on a host: what KVM_GET_SUPPORTED_CPUID and the feature MSRs report. A guest
 * configured within it is a supported configuration; anything beyond (a higher PMU version, more counters, an LBR
 * format with another family/model) is a configuration KVM never offered.
 */
export interface SupportedPmu {
  /** CPUID.0AH as KVM_GET_SUPPORTED_CPUID reports it (cpuid.c __do_cpuid_func). */
  readonly leaf0a: CpuidRegs;
  /** PERF_CAPABILITIES as KVM_GET_MSRS on /dev/kvm reports it (kvm_caps.supported_perf_cap). */
  readonly perfCapabilities: bigint;
  /**
   * The family/model generated guests given an LBR format have: the host's own. vmx_set_msr refuses another model
   * (cpuid_model_is_consistent compares x86_model only); the family is kept too, though KVM does not compare it.
   */
  readonly lbrModel: { readonly family: number; readonly model: number };
  /** CPUID.1CH with CPUID.(07H,0):EDX[19] as KVM_GET_SUPPORTED_CPUID reports them, where the design offers Arch LBR. */
  readonly archLbr?: CpuidRegs;
}

export interface VpmuVcpu {
  /** Which design this is, e.g. "emulated". */
  readonly design: string;
  /** The pCPU the vCPU thread runs on now. */
  readonly cpu: number;
  /** What the design spent so far, per expensive step (the cost model of `npm run compare`). */
  readonly cost: VpmuCost;

  /**
   * Guest RDMSR / WRMSR / RDPMC at CPL `cpl` (RDPMC only), as the guest observes them. `kicked`: a signal to the vCPU
   * thread lands while KVM handles the instruction's exit, so KVM_RUN returns to userspace (KVM_EXIT_INTR) before the
   * next VM-entry and the requests the handler made stay pending until `resume`.
   */
  guestRdmsr(msr: number, kicked?: boolean): Access;
  guestWrmsr(msr: number, value: bigint, kicked?: boolean): Access;
  guestRdpmc(ecx: number, cpl: number, kicked?: boolean): Access;
  /**
   * A forced-emulation instruction at CPL `cpl`: the prefix's UD2 exits (handle_ud), KVM skips the prefix and its
   * emulator runs the instruction (x86_emulate_instruction). PMIs it raises come out of drainPmis.
   */
  guestEmulate(insn: EmulatedInsn, cpl: number, kicked?: boolean): void;
  /** The KVM_RUN after a kicked instruction: the VM-entry that handles the pending requests, then an exit. */
  resume(): void;
  /**
   * Whether KVM_RUN returned at the last kicked instruction's own exit (it was intercepted), its requests pending, until
   * `resume`; a passed-through instruction exits only for the signal, with nothing pending.
   */
  readonly returnedAtExit: boolean;
  /** Runs guest work; returns the PMIs the guest received. */
  guestRun(units: readonly WorkUnit[]): readonly GuestPmi[];
  /** Guest XSAVES / XRSTORS of the Arch LBR state component (15), with IA32_XSS.LBR set first. */
  guestXsaves(): XsaveResult;
  guestXrstors(area: ArchLbrXsave): Access;
  /**
   * PMIs injected around the last guest instruction (RDMSR/WRMSR/RDPMC), oldest first:
   * afterUnit -1 before it, 0 after it.
   */
  drainPmis(): GuestPmi[];

  /**
   * KVM_GET_MSRS of the feature MSR PERF_CAPABILITIES on /dev/kvm: what KVM can give a guest
   * (kvm_caps.supported_perf_cap).
   */
  supportedPerfCapabilities(): bigint;
  /** KVM_GET_SUPPORTED_CPUID and the feature MSRs of this design on this host: what a VMM can give a guest. */
  supportedPmu(): SupportedPmu;
  /** KVM_SET_CPUID2: only before the first KVM_RUN. */
  setCpuid(cpuid: GuestCpuid): HostAccess;
  /** Host-initiated MSR accesses (KVM_GET_MSRS / KVM_SET_MSRS). */
  hostGetMsr(msr: number): HostAccess;
  hostSetMsr(msr: number, value: bigint): HostAccess;
  /** KVM_ENABLE_CAP(KVM_CAP_PMU_CAPABILITY, args0) on this vCPU's VM, which has a vCPU by now. */
  enablePmuCapability(args0: bigint): HostAccess;
  /** KVM_CHECK_EXTENSION(KVM_CAP_PMU_CAPABILITY) on this vCPU's VM: the flags it takes. */
  pmuCapabilityFlags(): bigint;
  /** KVM_SET_PMU_EVENT_FILTER on this vCPU's VM (null removes the filter). */
  setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess;
  /** KVM_GET_MSR_INDEX_LIST as far as the PMU goes (msrs_to_save_pmu, filtered). */
  msrIndexList(): readonly number[];

  /** The host scheduler moves the vCPU thread to `cpu` (vcpu_put, then vcpu_load there). */
  migrate(cpu: number): void;
  /**
   * Another host task preempts the vCPU thread on its pCPU: kvm_sched_out (vcpu_put), `work`
   * runs as that task, then kvm_sched_in (vcpu_load) on the same pCPU.
   */
  preempt(work: () => void): void;
  /**
   * An external interrupt exits the guest and the host's handler runs `units` in host mode on the
   * vCPU's pCPU (optional: a design without it lets the world run the handler as host work).
   */
  externalInterrupt?(units: readonly WorkUnit[]): void;
  /** The VMM destroys the vCPU (kvm_arch_vcpu_destroy): its perf events go, its thread leaves the pCPU. */
  destroy(): void;
}
