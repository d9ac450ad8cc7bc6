/**
 * A vCPU of upstream's mediated (pass-through) vPMU: the x86.c glue around pmu.c, pmu_intel.c and
 * vmx.c — vCPU creation with perf_create_mediated_pmu, MSR dispatch, the VM-entry/exit loop with
 * kvm_mediated_pmu_load/put around it (vcpu_enter_guest), the mediated PMI, userspace
 * save/restore, and the thread moving between pCPUs. kvm-vpmu.md §2.19.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { ModelError } from '../../hw/errors.js';
import type { PmiDelivery, XsaveResult } from '../../hw/cpu.js';
import type { ArchLbrXsave } from '../../hw/msr/lbr_arch.js';
import { type WorkUnit, RETIRED_AT_CPL } from '../../hw/work.js';
import {
  PERF_GUEST_MEDIATED_PMI_VECTOR,
  perf_create_mediated_pmu,
  perf_release_mediated_pmu,
} from '../../host/mediated.js';
import type { HostKernel } from '../../host/perf.js';
import { newVpmuCost, type VpmuCost } from '../cost.js';
import {
  applyVmSetup,
  kvm_arch_init_vm,
  kvm_sched_in,
  kvm_sched_out,
  NO_GUEST_ARCH_LBR,
  runExitHandler,
  vcpu_run_resume,
  msrIndexListOf,
} from '../common/vcpu.js';
import {
  type EmulatedInsn,
  type GuestCpuid,
  type GuestPmi,
  type HostAccess,
  type KvmPmuEventFilter,
  type SupportedPmu,
  type VmSetup,
  type VpmuVcpu,
} from '../types.js';
import { supportedPmuOf } from '../common/cpuid.js';
import { kvm_handle_guest_mediated_pmi, newMediatedPmu } from './pmu.js';
import { kvm_vm_set_pmu_event_filter } from '../common/pmu.js';
import type { MediatedKvm, MediatedVcpuState } from './state.js';
import { MEDIATED_OPS, type MediatedOps } from './ops.js';
import { relied } from '../../hw/relied.js';

/** The host lacks what the mediated vPMU needs (enable_mediated_pmu is forced off): the design does not exist there. */
export class MediatedUnavailable extends Error {
  override readonly name = 'MediatedUnavailable';
}

/** KVM_CREATE_VCPU failed: perf_create_mediated_pmu returned -EBUSY (host events count the guest). */
export class MediatedPmuBusy extends Error {
  override readonly name = 'MediatedPmuBusy';
}

/** KVM_CREATE_VM: no filter, no vCPUs, no mediated PMU yet (it is created with the first vCPU). */
export function newMediatedKvm(enable_pmu: boolean): MediatedKvm {
  return kvm_arch_init_vm(enable_pmu);
}

export class MediatedVcpu implements VpmuVcpu {
  readonly design = 'mediated';
  readonly s: MediatedVcpuState;

  /**
   * KVM_CREATE_VCPU in `vm` (a fresh VM of its own by default), running the kernel functions of `ops`.
   * Throws MediatedUnavailable where the host cannot have a mediated vPMU, MediatedPmuBusy where perf
   * refuses one (kvm_arch_vcpu_precreate).
   */
  constructor(
    host: HostKernel,
    opts: { cpu: number; cpuid: GuestCpuid; vm?: MediatedKvm } & VmSetup,
    ops: MediatedOps = MEDIATED_OPS,
  ) {
    const cap = ops.kvm_init_pmu_capability(host.profile, ops);
    if (!cap.enableMediatedPmu) throw new MediatedUnavailable(cap.unavailable ?? 'enable_mediated_pmu is off');
    const kvm = opts.vm ?? newMediatedKvm(cap.enable_pmu);
    applyVmSetup(ops, kvm, cap.enable_pmu, opts);
    // kvm_arch_vcpu_precreate: the VM's mediated PMU is created with its first vCPU, unless its vPMU is off.
    if (kvm.enable_pmu && !kvm.created_mediated_pmu) {
      const r = perf_create_mediated_pmu(host);
      if ('error' in r) throw new MediatedPmuBusy(`KVM_CREATE_VCPU: perf_create_mediated_pmu: ${r.error}`);
      kvm.created_mediated_pmu = true;
    }
    kvm.created_vcpus++;
    const supportedPerfCap = ops.vmx_get_perf_capabilities(cap.enable_pmu);
    const task = host.createTask(`vcpu${kvm.vcpus.length}`);
    this.s = {
      ops,
      kvm_pmu_cap: cap,
      host,
      kvm,
      task,
      cpu: opts.cpu,
      cpuid: opts.cpuid,
      perf_capabilities: supportedPerfCap, // KVM_X86_QUIRK_STUFF_FEATURE_MSRS (K9)
      supported_perf_cap: supportedPerfCap,
      hasRun: false,
      scheduled_out: false,
      requests: new Set(),
      pmu: newMediatedPmu(),
      guestDebugctl: 0n,
      vmcsGuestPerfGlobalCtrl: 0n,
      lvtpc: 0x1_0000n,
      passthrough: new Set(),
      rdpmcExiting: true,
      cr4Pce: false,
      pmuLoaded: false,
      cost: newVpmuCost(),
      inGuest: false,
      host_debugctlmsr: 0n,
      hostCr4Pce: false,
      injected: [],
    };
    kvm.vcpus.push(this.s);
    ops.kvm_pmu_init(this.s);
    host.context_switch(opts.cpu, task);
    this.setCpuid(opts.cpuid);
  }

  get cpu(): number {
    return this.s.cpu;
  }

  /** kvm_caps.supported_perf_cap, as KVM_GET_MSRS on /dev/kvm reports it. */
  supportedPerfCapabilities(): bigint {
    return this.s.supported_perf_cap;
  }

  /** KVM_GET_SUPPORTED_CPUID leaf 0xA and the feature MSR PERF_CAPABILITIES of this design on this host. */
  supportedPmu(): SupportedPmu {
    return supportedPmuOf(this.s);
  }

  /** What KVM spent so far (issue #6's cost model). */
  get cost(): VpmuCost {
    return this.s.cost;
  }

  private get hw() {
    return this.s.host.pcpu(this.s.cpu).hw;
  }

  // ---- userspace ----

  /** KVM_SET_CPUID2 → kvm_pmu_refresh, which recomputes the MSR and RDPMC intercepts (K12). */
  setCpuid(cpuid: GuestCpuid): HostAccess {
    return this.s.ops.kvm_set_cpuid(this.s, cpuid);
  }

  setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    return kvm_vm_set_pmu_event_filter(this.s.kvm, filter);
  }

  msrIndexList(): readonly number[] {
    return msrIndexListOf(this.s);
  }

  enablePmuCapability(args0: bigint): HostAccess {
    return this.s.ops.kvm_vm_ioctl_enable_cap(this.s.kvm, this.s.kvm_pmu_cap.enable_pmu, args0);
  }

  pmuCapabilityFlags(): bigint {
    return this.s.ops.kvm_vm_ioctl_check_extension(this.s.kvm_pmu_cap.enable_pmu);
  }

  hostGetMsr(msr: number): HostAccess {
    return this.s.ops.do_get_msr(this.s, msr);
  }

  hostSetMsr(msr: number, value: bigint): HostAccess {
    return this.s.ops.do_set_msr(this.s, msr, value);
  }

  // ---- the guest ----

  guestRdmsr(msr: number, kicked = false): Access {
    return this.guestInstruction(
      (exit) =>
        exit
          ? (this.s.ops.kvm_get_msr_common(this.s, msr, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`))
          : this.hw.rdmsr(msr),
      !this.s.passthrough.has(msr),
      'msr',
      0,
      kicked,
    );
  }

  guestWrmsr(msr: number, value: bigint, kicked = false): Access {
    return this.guestInstruction(
      (exit) =>
        exit
          ? (this.s.ops.kvm_set_msr_common(this.s, msr, value, false) ??
            gp(`MSR 0x${msr.toString(16)}: unknown to KVM`))
          : this.hw.wrmsr(msr, value),
      !this.s.passthrough.has(msr),
      'msr',
      0,
      kicked,
    );
  }

  guestRdpmc(ecx: number, cpl: number, kicked = false): Access {
    // Not intercepted: the hardware checks CR4.PCE (loaded from the guest) and the index itself.
    return this.guestInstruction(
      (exit) => (exit ? this.s.ops.kvm_pmu_rdpmc(this.s, ecx, cpl) : this.hw.rdpmc(ecx, cpl)),
      this.s.rdpmcExiting,
      'rdpmc',
      cpl,
      kicked,
    );
  }

  /**
   * A forced-emulation instruction: the prefix's #UD exits and puts the PMU; the emulator retires the instruction on
   * the counters KVM now holds (kvm_pmu_incr_counter bumps pmc->counter), loaded again at the next entry (K16).
   */
  guestEmulate(insn: EmulatedInsn, cpl: number, kicked = false): void {
    relied('K16');
    this.guestInstruction(
      () => {
        this.s.ops.x86_emulate_instruction(this.s, insn, cpl);
        return ok(0n);
      },
      true,
      'emulation',
      cpl,
      kicked,
    );
  }

  returnedAtExit = false;

  resume(): void {
    this.returnedAtExit = false;
    vcpu_run_resume(this.s);
  }

  /**
   * One guest instruction: in guest mode on the loaded PMU if not intercepted, else a VM-exit
   * (the PMU is put), the handler as host work, and a skip that counts the instruction in software
   * (an emulated one is retired by the emulator instead).
   */
  private guestInstruction(
    op: (exited: boolean) => Access,
    intercepted: boolean,
    kind: 'msr' | 'rdpmc' | 'emulation',
    cpl = 0,
    kicked = false,
  ): Access {
    const s = this.s;
    s.ops.vcpu_enter_guest(s, -1);
    if (!intercepted) {
      const r = op(false);
      const d = r.ok ? this.hw.step(RETIRED_AT_CPL[cpl]!) : null;
      if (d !== null) this.mediatedPmiExit(d, 0);
      s.ops.vmx_vcpu_exit(s);
      return r;
    }
    if (kind === 'msr') s.cost.msrExits++;
    else if (kind === 'rdpmc') s.cost.rdpmcExits++;
    else s.cost.emulationExits++;
    s.ops.vmx_vcpu_exit(s);
    runExitHandler(s);
    const r = op(true);
    if (r.ok && kind !== 'emulation') s.ops.kvm_skip_emulated_instruction(s, cpl);
    // vcpu_run: a pending signal returns to userspace before the next vcpu_enter_guest handles the requests.
    if (kicked) this.returnedAtExit = true;
    else this.resume();
    return r;
  }

  guestRun(units: readonly WorkUnit[]): readonly GuestPmi[] {
    const s = this.s;
    const from = s.injected.length;
    s.ops.vcpu_enter_guest(s, -1);
    units.forEach((u, i) => {
      const d = this.hw.step(u);
      if (d !== null) this.mediatedPmiExit(d, i);
    });
    s.ops.vmx_vcpu_exit(s);
    return s.injected.splice(from);
  }

  drainPmis(): GuestPmi[] {
    return this.s.injected.splice(0);
  }

  /** XSAVES of Arch LBR state: the guest cannot set IA32_XSS.LBR, KVM has no guest Arch LBR (no LBR at all here). */
  guestXsaves(): XsaveResult {
    return { ok: false, gp: NO_GUEST_ARCH_LBR };
  }

  guestXrstors(_area: ArchLbrXsave): Access {
    return gp(NO_GUEST_ARCH_LBR);
  }

  /** An external interrupt exits the guest; the PMU is put before the host's handler runs `units` (K14). */
  externalInterrupt(units: readonly WorkUnit[]): void {
    const s = this.s;
    s.ops.vcpu_enter_guest(s, -1);
    s.ops.vmx_vcpu_exit(s);
    s.host.runHost(s.cpu, units);
  }

  /**
   * A guest counter overflowed in guest mode: the PMI arrives on PERF_GUEST_MEDIATED_PMI_VECTOR,
   * an external-interrupt VM-exit; after put, kvm_handle_guest_mediated_pmi asks for KVM_REQ_PMI,
   * which the next entry injects through the guest's LVTPC (K6).
   */
  private mediatedPmiExit(d: PmiDelivery, afterUnit: number): void {
    // Host events are off the PMU in guest context, so any PMI here is the guest's.
    if (d.nmi || d.vector !== PERF_GUEST_MEDIATED_PMI_VECTOR)
      throw new ModelError(
        `mediated: a PMI in guest mode went to vector ${d.vector}${d.nmi ? ' (NMI)' : ''}, not the mediated vector`,
      );
    const s = this.s;
    s.cost.pmiExits++;
    s.ops.vmx_vcpu_exit(s);
    kvm_handle_guest_mediated_pmi(s);
    s.ops.vcpu_enter_guest(s, afterUnit);
  }

  // ---- the host scheduler ----

  /** Another task preempts the vCPU thread; the PMU was put at the last exit, so only the thread leaves. */
  preempt(work: () => void): void {
    const s = this.s;
    s.host.context_switch(s.cpu, null);
    kvm_sched_out(s);
    work();
    s.host.context_switch(s.cpu, s.task);
    kvm_sched_in(s);
  }

  /** The vCPU thread moves; the PMU was put at the last exit, so only the thread moves. */
  migrate(cpu: number): void {
    const s = this.s;
    s.host.context_switch(s.cpu, null);
    kvm_sched_out(s);
    s.cpu = cpu;
    s.host.context_switch(cpu, s.task);
    kvm_sched_in(s);
  }

  /**
   * kvm_arch_vcpu_destroy → kvm_pmu_destroy; the last vCPU takes the VM, and perf_release_mediated_pmu, with it (K13).
   */
  destroy(): void {
    const s = this.s;
    s.ops.kvm_pmu_reset(s);
    const vm = s.kvm;
    const k = vm.vcpus.indexOf(s);
    if (k >= 0) vm.vcpus.splice(k, 1);
    if (vm.vcpus.length === 0 && vm.created_mediated_pmu) {
      relied('K13');
      perf_release_mediated_pmu(s.host); // kvm_arch_destroy_vm
      vm.created_mediated_pmu = false;
    }
    s.host.context_switch(s.cpu, null);
  }
}

/** The design's factory: KVM_CREATE_VCPU with enable_mediated_pmu. */
export function newMediatedVcpu(
  host: HostKernel,
  opts: { cpu: number; cpuid: GuestCpuid; vm?: MediatedKvm } & VmSetup,
): MediatedVcpu {
  return new MediatedVcpu(host, opts);
}
