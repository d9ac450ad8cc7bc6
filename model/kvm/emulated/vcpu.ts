/**
 * A vCPU of today's upstream perf-event-backed vPMU: the x86.c glue around pmu.c, pmu_intel.c and
 * vmx.c — MSR dispatch (kvm_get_msr_common / kvm_set_msr_common), the VM-entry/exit loop
 * (vcpu_enter_guest), userspace save/restore, and vcpu_load/vcpu_put when the thread migrates.
 */

import { type Access, gp } from '../../hw/access.js';
import type { XsaveResult } from '../../hw/cpu.js';
import type { ArchLbrXsave } from '../../hw/msr/lbr_arch.js';
import { bit } from '../../hw/bits.js';
import { type WorkUnit, RETIRED_AT_CPL } from '../../hw/work.js';
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
  kvm_init_pmu_capability,
  kvm_vm_set_pmu_event_filter,
  kvm_pmu_get_msr,
  kvm_pmu_is_valid_msr,
} from '../common/pmu.js';
import {
  kvm_pmu_deliver_pmi,
  kvm_pmu_handle_event,
  kvm_pmu_init,
  kvm_pmu_instruction_retired,
  kvm_pmu_rdpmc,
  kvm_pmu_refresh,
  kvm_pmu_reset,
  kvm_pmu_set_msr,
  newKvmPmu,
} from './pmu.js';
import { intel_pmu_lbr_is_enabled, intel_pmu_ops } from './pmu_intel.js';
import type { KvmState, KvmVcpuState } from './state.js';

/** KVM_CREATE_VM: a VM with no event filter and no vCPUs yet. */
export function newKvm(): KvmState {
  return { pmu_event_filter: null, vcpus: [] };
}
import {
  vmx_check_perf_capabilities,
  vmx_get_perf_capabilities,
  vmx_passthrough_lbr_msrs,
  vmx_set_debugctl,
  type VmxPerfCaps,
} from './vmx.js';
import { type KvmPmuCap } from '../common/pmu.h.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../hw/msr/debugctl.js';
import { PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';

/** The pmu.c / vmx.c functions of this design that the shared MSR dispatch calls. */
const MSR_OPS: KvmMsrOps<KvmVcpuState> = {
  kvm_pmu_is_valid_msr,
  kvm_pmu_get_msr,
  kvm_pmu_set_msr,
  vmx_set_debugctl,
  vmx_check_perf_capabilities,
};

/** Which interrupt that exited the guest KVM is handling (KVM_HANDLING_IRQ / KVM_HANDLING_NMI). */
type KvmIntrType = 'none' | 'irq' | 'nmi';

/** The vCPUs of each host kernel, as kvm_get_running_vcpu() finds them per pCPU. */
const runningVcpus = new WeakMap<HostKernel, Set<EmulatedVcpu>>();

/**
 * kvm_register_perf_callbacks, once per host kernel (KVM module load): perf asks KVM whether a
 * PMI belongs to the guest. perf_guest_state() is only asked from perf's PMI handler, an NMI.
 */
function kvm_register_perf_callbacks(host: HostKernel): Set<EmulatedVcpu> {
  let set = runningVcpus.get(host);
  if (set !== undefined) return set;
  const vcpus = (set = new Set<EmulatedVcpu>());
  runningVcpus.set(host, vcpus);
  const IN_NMI = true;
  host.perf_register_guest_info_callbacks({
    state: (cpu) => {
      for (const v of vcpus) if (v.kvm_guest_state(cpu, IN_NMI)) return true; // no copy per host PMI
      return false;
    },
  });
  return set;
}

export class EmulatedVcpu implements VpmuVcpu {
  readonly design = 'emulated';
  /** KVM's state for this vCPU; read-only for observers. */
  readonly s: KvmVcpuState;
  protected readonly cap: KvmPmuCap;
  /** vcpu->arch.handling_intr_from_guest: set while KVM handles an IRQ or NMI that exited the guest. */
  private handlingIntrFromGuest: KvmIntrType = 'none';
  private inGuest = false;
  private hostDebugctl = 0n;
  private switched = { host: 0n, guest: 0n };
  private readonly injected: GuestPmi[] = [];

  /**
   * KVM_CREATE_VCPU in `vm` (a fresh VM of its own by default), with its thread running on `cpu`.
   * Pass the same `vm` to several vCPUs to share the VM-wide event filter.
   */
  constructor(host: HostKernel, opts: { cpu: number; cpuid: GuestCpuid; vm?: KvmState }) {
    this.cap = kvm_init_pmu_capability(host.profile);
    const { supportedPerfCap, lbrCaps } = this.vmxGetPerfCapabilities(host);
    const kvm = opts.vm ?? newKvm();
    const task = host.createTask(`vcpu${kvm.vcpus.length}`); // no global counter: runs replay exactly
    this.s = {
      kvm_pmu_ops: intel_pmu_ops,
      host,
      kvm,
      task,
      cost: newVpmuCost(),
      cpu: opts.cpu,
      cpuid: opts.cpuid,
      perf_capabilities: supportedPerfCap, // kvm_arch_vcpu_create, KVM_X86_QUIRK_STUFF_FEATURE_MSRS (K9)
      supported_perf_cap: supportedPerfCap,
      lbrCaps,
      hasRun: false,
      scheduled_out: false,
      requests: new Set(),
      pmu: newKvmPmu(),
      lbr: { nr: 0, event: null, msr_passthrough: false },
      guestDebugctl: 0n,
      lvtpc: 0x1_0000n,
      passthrough: new Set(),
      cr4Pce: false,
    };
    kvm.vcpus.push(this.s);
    kvm_register_perf_callbacks(host).add(this);
    kvm_pmu_init(this.s.pmu);
    host.context_switch(opts.cpu, task);
    this.setCpuid(opts.cpuid);
  }

  get cpu(): number {
    return this.s.cpu;
  }

  /** vmx_get_perf_capabilities at module load (a ported bug patches it; called from the constructor). */
  protected vmxGetPerfCapabilities(host: HostKernel): VmxPerfCaps {
    return vmx_get_perf_capabilities(host, this.cap.enable_pmu);
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

  /** KVM_SET_CPUID2 → kvm_vcpu_after_set_cpuid → kvm_pmu_refresh. */
  setCpuid(cpuid: GuestCpuid): HostAccess {
    return kvm_set_cpuid(this.s, cpuid, () => this.refresh());
  }

  setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    return kvm_vm_set_pmu_event_filter(this.s.kvm, filter);
  }

  msrIndexList(): readonly number[] {
    return kvm_pmu_msr_index_list(this.cap);
  }

  /** kvm_is_advertised_msr: host-initiated accesses to these may read 0 / write 0 when unsupported. */
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

  /** Returns null for an MSR KVM does not handle (KVM_MSR_RET_UNSUPPORTED). */
  private getMsr(msr: number, host: boolean): Access | null {
    return kvm_get_msr_common(this.s, msr, host, MSR_OPS);
  }

  protected setMsr(msr: number, data: bigint, host: boolean): Access | null {
    return kvm_set_msr_common(this.s, msr, data, host, MSR_OPS, () => this.refresh());
  }

  // ---- the guest ----

  guestRdmsr(msr: number): Access {
    return this.guestInstruction(
      (exit) => {
        if (!exit) return this.hw.rdmsr(msr); // passed through: the hardware holds the guest's value
        return this.getMsr(msr, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`);
      },
      () => !this.s.passthrough.has(msr),
    );
  }

  guestWrmsr(msr: number, value: bigint): Access {
    return this.guestInstruction(
      (exit) => {
        if (!exit) return this.hw.wrmsr(msr, value);
        return this.setMsr(msr, value, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`);
      },
      () => !this.s.passthrough.has(msr),
    );
  }

  guestRdpmc(ecx: number, cpl: number): Access {
    // The perf-based vPMU always intercepts RDPMC.
    return this.guestInstruction(
      () => kvm_pmu_rdpmc(this.s, ecx, cpl),
      () => true,
      cpl,
      'rdpmc',
    );
  }

  /**
   * One guest instruction: executed in guest mode if passed through, else a VM-exit whose handler
   * runs as host work; a handled instruction is skipped, which counts it as retired
   * (kvm_skip_emulated_instruction → kvm_pmu_instruction_retired).
   */
  private guestInstruction(
    op: (exited: boolean) => Access,
    intercepted: () => boolean,
    cpl = 0,
    exit: 'msr' | 'rdpmc' = 'msr',
  ): Access {
    this.vcpu_enter_guest(-1);
    // The MSR bitmap as this VM-entry left it (vmx_passthrough_lbr_msrs ran just before it).
    if (!intercepted()) {
      const r = op(false);
      // No exit: the instruction retires in guest mode, and the hardware counters count it.
      if (r.ok && this.hw.step(RETIRED_AT_CPL[cpl]!) !== null) {
        this.vmexit();
        this.handleNmiExit();
        this.vcpu_enter_guest(0);
      }
      this.vmexit();
      return r;
    }
    this.vmexit();
    if (exit === 'msr') this.s.cost.msrExits++;
    else this.s.cost.rdpmcExits++;
    this.s.host.runHost(this.s.cpu, [KVM_EXIT_HANDLER_WORK]);
    const r = op(true);
    if (r.ok) this.instructionRetired(cpl);
    this.vcpu_enter_guest(0);
    this.vmexit();
    return r;
  }

  guestRun(units: readonly WorkUnit[]): readonly GuestPmi[] {
    const from = this.injected.length;
    this.vcpu_enter_guest(-1);
    units.forEach((u, i) => {
      if (this.hw.step(u) === null) return;
      // The PMI is an NMI: VM-exit, the host's perf NMI handler, then straight back in (K6).
      this.vmexit();
      this.handleNmiExit();
      this.vcpu_enter_guest(i);
    });
    this.vmexit();
    return this.injected.splice(from); // a run reports its own PMIs; drainPmis must not see them again
  }

  /**
   * XSAVES with IA32_XSS.LBR: KVM never lets the guest set XSS bit 15 (guest Arch LBR was not
   * merged; kvm_caps.supported_xss has no XFEATURE_MASK_LBR), so the WRMSR to XSS faults first.
   */
  guestXsaves(): XsaveResult {
    return { ok: false, gp: NO_GUEST_ARCH_LBR };
  }

  guestXrstors(_area: ArchLbrXsave): Access {
    return gp(NO_GUEST_ARCH_LBR);
  }

  /**
   * An external interrupt exits the guest (EXIT_REASON_EXTERNAL_INTERRUPT): KVM hands it to the
   * host's handler, which runs `units` in host mode, flagged as an IRQ from the guest
   * (handle_external_interrupt_irqoff → kvm_before_interrupt(vcpu, KVM_HANDLING_IRQ)).
   */
  externalInterrupt(units: readonly WorkUnit[]): void {
    this.vcpu_enter_guest(-1);
    this.vmexit();
    this.handlingIntrFromGuest = 'irq';
    this.s.host.runHost(this.s.cpu, units); // a PMI during the handler runs perf's NMI handler
    this.handlingIntrFromGuest = 'none';
  }

  /** A PMI (an NMI) exited the guest: perf's handler runs between kvm_before/after_interrupt(NMI). */
  private handleNmiExit(): void {
    this.s.cost.pmiExits++;
    this.handlingIntrFromGuest = 'nmi';
    this.s.host.intel_pmu_handle_irq(this.s.cpu);
    this.handlingIntrFromGuest = 'none';
  }

  /**
   * kvm_arch_pmi_in_guest (812d432373f6): the PMI hit the guest iff KVM is handling an interrupt
   * that exited it and that interrupt is an NMI exactly when perf is in NMI context.
   */
  protected kvm_arch_pmi_in_guest(inNmi: boolean): boolean {
    const h = this.handlingIntrFromGuest;
    return h !== 'none' && inNmi === (h === 'nmi');
  }

  /** kvm_guest_state for perf: whether an NMI on this vCPU's pCPU is the guest's. */
  kvm_guest_state(cpu: number, inNmi: boolean): boolean {
    return this.s.cpu === cpu && this.handlingIntrFromGuest !== 'none' && this.kvm_arch_pmi_in_guest(inNmi);
  }

  /** kvm_pmu_refresh on a new vCPU model (CPUID or PERF_CAPABILITIES). */
  protected refresh(): void {
    kvm_pmu_refresh(this.s, this.cap);
  }

  /** kvm_skip_emulated_instruction → kvm_pmu_instruction_retired. */
  protected instructionRetired(cpl: number): void {
    kvm_pmu_instruction_retired(this.s, cpl);
  }

  /** PMIs injected outside guestRun (after an intercepted instruction), oldest first. */
  drainPmis(): GuestPmi[] {
    return this.injected.splice(0);
  }

  /** vcpu_enter_guest: requests first (KVM_REQ_PMU, then KVM_REQ_PMI: K5), then VM-entry. */
  private vcpu_enter_guest(afterUnit: number): void {
    const s = this.s;
    if (s.requests.delete('PMU')) kvm_pmu_handle_event(s);
    if (s.requests.delete('PMI')) {
      const vector = kvm_pmu_deliver_pmi(s);
      if (vector !== null) {
        s.cost.injectedPmis++;
        this.injected.push({ afterUnit, vector });
      }
    }
    if (intel_pmu_lbr_is_enabled(s)) vmx_passthrough_lbr_msrs(s);
    s.hasRun = true;
    s.scheduled_out = false;
    // VM-entry: perf's GLOBAL_CTRL switch (atomic_switch_perf_msrs) and the VMCS DEBUGCTL.
    const hw = this.hw;
    this.switched = s.host.perf_guest_get_msrs(s.cpu);
    s.cost.entries++;
    // add_atomic_switch_msr only when the two values differ; else the entry loads nothing.
    if (this.switched.guest !== this.switched.host) s.cost.entryExitMsrAccesses++;
    const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
    this.hostDebugctl = dbg.ok ? dbg.value : 0n;
    hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, this.switched.guest);
    hw.wrmsr(MSR_IA32_DEBUGCTLMSR, s.guestDebugctl);
    hw.mode = 'guest';
    this.inGuest = true;
  }

  /** VM-exit: save the guest DEBUGCTL, load the host's GLOBAL_CTRL and DEBUGCTL. */
  private vmexit(): void {
    if (!this.inGuest) return;
    const hw = this.hw;
    const dbg = hw.rdmsr(MSR_IA32_DEBUGCTLMSR);
    if (dbg.ok) this.s.guestDebugctl = dbg.value & ~bit(63); // "save debug controls"
    hw.wrmsr(MSR_IA32_DEBUGCTLMSR, this.hostDebugctl);
    hw.wrmsr(MSR_CORE_PERF_GLOBAL_CTRL, this.switched.host);
    // The exit's MSR-load list (GLOBAL_CTRL) and update_debugctlmsr when the host's DEBUGCTL is not 0.
    if (this.switched.guest !== this.switched.host) this.s.cost.entryExitMsrAccesses++;
    if (this.hostDebugctl !== 0n) this.s.cost.entryExitMsrAccesses++;
    hw.mode = 'host';
    this.inGuest = false;
  }

  // ---- the host scheduler ----

  /** The vCPU thread moves: kvm_arch_vcpu_put, a context switch on both pCPUs, kvm_arch_vcpu_load. */
  migrate(cpu: number): void {
    const s = this.s;
    s.scheduled_out = true;
    s.host.context_switch(s.cpu, null);
    s.cpu = cpu;
    s.host.context_switch(cpu, s.task);
    this.kvm_arch_vcpu_load();
  }

  /** kvm_sched_out → kvm_arch_vcpu_put, another task runs, kvm_sched_in → kvm_arch_vcpu_load. */
  preempt(work: () => void): void {
    const s = this.s;
    s.scheduled_out = true;
    s.host.context_switch(s.cpu, null);
    work();
    s.host.context_switch(s.cpu, s.task);
    this.kvm_arch_vcpu_load();
  }

  /** kvm_arch_vcpu_destroy → kvm_pmu_destroy (= kvm_pmu_reset), then the thread exits. */
  destroy(): void {
    kvm_pmu_reset(this.s);
    const k = this.s.kvm.vcpus.indexOf(this.s);
    if (k >= 0) this.s.kvm.vcpus.splice(k, 1);
    kvm_register_perf_callbacks(this.s.host).delete(this);
    this.s.host.context_switch(this.s.cpu, null);
  }

  /** kvm_arch_vcpu_load: a rescheduled vCPU with perf events asks for lazy cleanup. */
  private kvm_arch_vcpu_load(): void {
    const pmu = this.s.pmu;
    if (this.s.scheduled_out && pmu.version !== 0 && pmu.event_count !== 0) {
      pmu.need_cleanup = true;
      this.s.requests.add('PMU');
    }
  }

  /** Whether guest LBR is on for this vCPU (records.nr != 0), for tests and reports. */
  get lbrEnabled(): boolean {
    return intel_pmu_lbr_is_enabled(this.s) && (this.s.perf_capabilities & PERF_CAP_LBR_FMT) !== 0n;
  }
}
