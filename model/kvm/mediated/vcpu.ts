/**
 * A vCPU of upstream's mediated (pass-through) vPMU: the x86.c glue around pmu.c, pmu_intel.c and
 * vmx.c — vCPU creation with perf_create_mediated_pmu, MSR dispatch, the VM-entry/exit loop with
 * kvm_mediated_pmu_load/put around it (vcpu_enter_guest), the mediated PMI, userspace
 * save/restore, and the thread moving between pCPUs. kvm-vpmu.md §2.19.
 */

import { type Access, gp } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
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
  do_get_msr,
  do_set_msr,
  KVM_EXIT_HANDLER_WORK,
  kvm_get_msr_common,
  kvm_pmu_msr_index_list,
  kvm_set_cpuid,
  kvm_set_msr_common,
  type KvmMsrOps,
  NO_GUEST_ARCH_LBR,
} from '../common/vcpu.js';
import type { GuestCpuid, GuestPmi, HostAccess, KvmPmuEventFilter, VpmuVcpu } from '../types.js';
import {
  kvm_handle_guest_mediated_pmi,
  kvm_init_pmu_capability,
  kvm_mediated_pmu_load,
  kvm_mediated_pmu_put,
  kvm_pmu_deliver_pmi,
  kvm_pmu_handle_event,
  kvm_pmu_init,
  kvm_pmu_instruction_retired,
  kvm_pmu_rdpmc,
  kvm_pmu_refresh,
  kvm_pmu_reset,
  type MediatedPmuCap,
  newMediatedPmu,
} from './pmu.js';
import { kvm_vm_set_pmu_event_filter, kvm_pmu_get_msr, kvm_pmu_is_valid_msr, kvm_pmu_set_msr } from '../common/pmu.js';
import type { MediatedKvm, MediatedVcpuState } from './state.js';
import {
  vmx_check_perf_capabilities,
  vmx_get_perf_capabilities,
  vmx_recalc_instruction_intercepts,
  vmx_recalc_pmu_msr_intercepts,
  vmx_set_debugctl,
} from './vmx.js';
import { intel_pmu_ops } from './pmu_intel.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../hw/msr/debugctl.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';

/** The pmu.c / vmx.c functions of this design that the shared MSR dispatch calls. */
const MSR_OPS: KvmMsrOps<MediatedVcpuState> = {
  kvm_pmu_is_valid_msr,
  kvm_pmu_get_msr,
  kvm_pmu_set_msr,
  vmx_set_debugctl,
  vmx_check_perf_capabilities,
};

/** The host lacks what the mediated vPMU needs (enable_mediated_pmu is forced off): the design does not exist there. */
export class MediatedUnavailable extends Error {
  override readonly name = 'MediatedUnavailable';
}

/** KVM_CREATE_VCPU failed: perf_create_mediated_pmu returned -EBUSY (host events count the guest). */
export class MediatedPmuBusy extends Error {
  override readonly name = 'MediatedPmuBusy';
}

/** KVM_CREATE_VM: no filter, no vCPUs, no mediated PMU yet (it is created with the first vCPU). */
export function newMediatedKvm(): MediatedKvm {
  return { pmu_event_filter: null, vcpus: [], created_mediated_pmu: false };
}

export class MediatedVcpu implements VpmuVcpu {
  readonly design = 'mediated';
  readonly s: MediatedVcpuState;
  private readonly cap: MediatedPmuCap;
  private inGuest = false;
  private hostDebugctl = 0n;
  private hostCr4Pce = false;
  private readonly injected: GuestPmi[] = [];

  /**
   * KVM_CREATE_VCPU in `vm` (a fresh VM of its own by default). Throws MediatedUnavailable where the
   * host cannot have a mediated vPMU, MediatedPmuBusy where perf refuses one (kvm_arch_vcpu_precreate).
   */
  constructor(host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid; vm?: MediatedKvm }) {
    this.cap = kvm_init_pmu_capability(host.profile, intel_pmu_ops);
    if (!this.cap.enableMediatedPmu)
      throw new MediatedUnavailable(this.cap.unavailable ?? 'enable_mediated_pmu is off');
    const kvm = opts.vm ?? newMediatedKvm();
    // kvm_arch_vcpu_precreate: the VM's mediated PMU is created with its first vCPU.
    if (!kvm.created_mediated_pmu) {
      const r = perf_create_mediated_pmu(host);
      if ('error' in r) throw new MediatedPmuBusy(`KVM_CREATE_VCPU: perf_create_mediated_pmu: ${r.error}`);
      kvm.created_mediated_pmu = true;
    }
    const supportedPerfCap = vmx_get_perf_capabilities(this.cap.enable_pmu);
    const task = host.createTask(`vcpu${kvm.vcpus.length}`);
    this.s = {
      kvm_pmu_ops: intel_pmu_ops,
      host,
      kvm,
      task,
      cpu: opts.cpu,
      cpuid: opts.cpuid,
      perf_capabilities: supportedPerfCap, // KVM_X86_QUIRK_STUFF_FEATURE_MSRS (K9)
      supported_perf_cap: supportedPerfCap,
      hasRun: false,
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
    };
    kvm.vcpus.push(this.s);
    kvm_pmu_init(this.s.pmu);
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

  /** What KVM spent so far (issue #6's cost model). */
  get cost(): VpmuCost {
    return this.s.cost;
  }

  private get hw() {
    return this.s.host.pcpu(this.s.cpu).hw;
  }

  // ---- userspace ----

  /** KVM_SET_CPUID2 → kvm_pmu_refresh, then the MSR and RDPMC intercepts are recomputed (K12). */
  setCpuid(cpuid: GuestCpuid): HostAccess {
    return kvm_set_cpuid(this.s, cpuid, () => this.refresh());
  }

  protected refresh(): void {
    kvm_pmu_refresh(this.s, this.cap);
    vmx_recalc_pmu_msr_intercepts(this.s, this.cap);
    vmx_recalc_instruction_intercepts(this.s, this.cap);
  }

  setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    return kvm_vm_set_pmu_event_filter(this.s.kvm, filter);
  }

  msrIndexList(): readonly number[] {
    return kvm_pmu_msr_index_list(this.cap);
  }

  private advertised(msr: number): boolean {
    return this.msrIndexList().includes(msr);
  }

  hostGetMsr(msr: number): HostAccess {
    return do_get_msr(msr, this.getMsr(msr, true), (m) => this.advertised(m));
  }

  hostSetMsr(msr: number, value: bigint): HostAccess {
    return do_set_msr(
      this.s,
      msr,
      value,
      (m) => this.hostGetMsr(m),
      (m, v) => this.setMsr(m, v, true),
      (m) => this.advertised(m),
    );
  }

  // ---- MSR dispatch: kvm_get_msr_common / kvm_set_msr_common / vmx_get_msr / vmx_set_msr ----

  private getMsr(msr: number, host: boolean): Access | null {
    return kvm_get_msr_common(this.s, msr, host, MSR_OPS);
  }

  private setMsr(msr: number, data: bigint, host: boolean): Access | null {
    return kvm_set_msr_common(this.s, msr, data, host, MSR_OPS, () => this.refresh());
  }

  // ---- the guest ----

  guestRdmsr(msr: number): Access {
    return this.guestInstruction(
      (exit) =>
        exit ? (this.getMsr(msr, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`)) : this.hw.rdmsr(msr),
      !this.s.passthrough.has(msr),
      'msr',
    );
  }

  guestWrmsr(msr: number, value: bigint): Access {
    return this.guestInstruction(
      (exit) =>
        exit
          ? (this.setMsr(msr, value, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`))
          : this.hw.wrmsr(msr, value),
      !this.s.passthrough.has(msr),
      'msr',
    );
  }

  guestRdpmc(ecx: number, cpl: number): Access {
    // Not intercepted: the hardware checks CR4.PCE (loaded from the guest) and the index itself.
    return this.guestInstruction(
      (exit) => (exit ? kvm_pmu_rdpmc(this.s, ecx, cpl) : this.hw.rdpmc(ecx, cpl)),
      this.s.rdpmcExiting,
      'rdpmc',
      cpl,
    );
  }

  /**
   * One guest instruction: in guest mode on the loaded PMU if not intercepted, else a VM-exit
   * (the PMU is put), the handler as host work, and a skip that counts the instruction in software.
   */
  private guestInstruction(
    op: (exited: boolean) => Access,
    intercepted: boolean,
    kind: 'msr' | 'rdpmc',
    cpl = 0,
  ): Access {
    this.vcpu_enter_guest(-1);
    if (!intercepted) {
      const r = op(false);
      const d = r.ok ? this.hw.step(RETIRED_AT_CPL[cpl]!) : null;
      if (d !== null) this.mediatedPmiExit(d, 0);
      this.vmexit();
      return r;
    }
    if (kind === 'msr') this.s.cost.msrExits++;
    else this.s.cost.rdpmcExits++;
    this.vmexit();
    this.s.host.runHost(this.s.cpu, [KVM_EXIT_HANDLER_WORK]); // K3
    const r = op(true);
    if (r.ok) kvm_pmu_instruction_retired(this.s, cpl); // kvm_skip_emulated_instruction
    this.vcpu_enter_guest(0);
    this.vmexit();
    return r;
  }

  guestRun(units: readonly WorkUnit[]): readonly GuestPmi[] {
    const from = this.injected.length;
    this.vcpu_enter_guest(-1);
    units.forEach((u, i) => {
      const d = this.hw.step(u);
      if (d !== null) this.mediatedPmiExit(d, i);
    });
    this.vmexit();
    return this.injected.splice(from);
  }

  drainPmis(): GuestPmi[] {
    return this.injected.splice(0);
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
    this.vcpu_enter_guest(-1);
    this.vmexit();
    this.s.host.runHost(this.s.cpu, units);
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
    this.s.cost.pmiExits++;
    this.vmexit();
    kvm_handle_guest_mediated_pmi(this.s);
    this.vcpu_enter_guest(afterUnit);
  }

  /**
   * vcpu_enter_guest: requests (KVM_REQ_PMU, then KVM_REQ_PMI: K5), IRQs off, DEBUGCTL snapshot, kvm_mediated_pmu_load
   * (K14), VM-entry.
   */
  private vcpu_enter_guest(afterUnit: number): void {
    const s = this.s;
    if (s.requests.delete('PMU')) kvm_pmu_handle_event(s);
    if (s.requests.delete('PMI')) {
      const vector = kvm_pmu_deliver_pmi(s);
      if (vector !== null) {
        this.injected.push({ afterUnit, vector });
        s.cost.injectedPmis++;
      }
    }
    s.hasRun = true;
    const hw = this.hw;
    const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
    this.hostDebugctl = dbg.ok ? dbg.value : 0n;
    kvm_mediated_pmu_load(s);
    // VM-entry: GLOBAL_CTRL and DEBUGCTL from the VMCS guest area, the guest's CR4.PCE.
    must(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, s.vmcsGuestPerfGlobalCtrl), 'VM-entry GUEST_IA32_PERF_GLOBAL_CTRL');
    must(hw.wrmsr(MSR_IA32_DEBUGCTLMSR, s.guestDebugctl), 'VM-entry GUEST_IA32_DEBUGCTL');
    this.hostCr4Pce = hw.cr4Pce;
    hw.cr4Pce = s.cr4Pce;
    hw.mode = 'guest';
    s.cost.entries++;
    this.inGuest = true;
  }

  /**
   * VM-exit: GLOBAL_CTRL saved to the VMCS and cleared (host value 0), DEBUGCTL switched, then kvm_mediated_pmu_put.
   */
  private vmexit(): void {
    if (!this.inGuest) return;
    const s = this.s;
    const hw = this.hw;
    s.vmcsGuestPerfGlobalCtrl = must(hw.rdmsr(MSR_CORE_PERF_GLOBAL_CTRL), 'VM-exit save PERF_GLOBAL_CTRL');
    must(hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, 0n), 'VM-exit load PERF_GLOBAL_CTRL');
    // vmx_vcpu_run: the guest's GLOBAL_CTRL is only read back when the guest could write it.
    if (s.passthrough.has(MSR_CORE_PERF_GLOBAL_CTRL)) s.pmu.global_ctrl = s.vmcsGuestPerfGlobalCtrl;
    const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
    if (dbg.ok) s.guestDebugctl = dbg.value & ~bit(63);
    must(hw.wrmsr(MSR_IA32_DEBUGCTLMSR, this.hostDebugctl), 'VM-exit host DEBUGCTL');
    hw.cr4Pce = this.hostCr4Pce;
    hw.mode = 'host';
    this.inGuest = false;
    kvm_mediated_pmu_put(s);
  }

  // ---- the host scheduler ----

  /** Another task preempts the vCPU thread; the PMU was put at the last exit, so only the thread leaves. */
  preempt(work: () => void): void {
    const s = this.s;
    s.host.context_switch(s.cpu, null);
    work();
    s.host.context_switch(s.cpu, s.task);
  }

  /** The vCPU thread moves; the PMU was put at the last exit, so only the thread moves. */
  migrate(cpu: number): void {
    const s = this.s;
    s.host.context_switch(s.cpu, null);
    s.cpu = cpu;
    s.host.context_switch(cpu, s.task);
  }

  /**
   * kvm_arch_vcpu_destroy → kvm_pmu_destroy; the last vCPU takes the VM, and perf_release_mediated_pmu, with it (K13).
   */
  destroy(): void {
    kvm_pmu_reset(this.s);
    const vm = this.s.kvm;
    const k = vm.vcpus.indexOf(this.s);
    if (k >= 0) vm.vcpus.splice(k, 1);
    if (vm.vcpus.length === 0 && vm.created_mediated_pmu) {
      perf_release_mediated_pmu(this.s.host); // kvm_arch_destroy_vm
      vm.created_mediated_pmu = false;
    }
    this.s.host.context_switch(this.s.cpu, null);
  }
}

/** The design's factory: KVM_CREATE_VCPU with enable_mediated_pmu. */
export function newMediatedVcpu(
  host: HostKernel,
  opts: { cpu: number; cpuid: GuestCpuid; vm?: MediatedKvm },
): MediatedVcpu {
  return new MediatedVcpu(host, opts);
}

function must(a: Access, what: string): bigint {
  if (!a.ok) throw new ModelError(`KVM: ${what} faulted: ${a.gp}`);
  return a.value;
}
