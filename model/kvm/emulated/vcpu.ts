/**
 * A vCPU of a perf-event-backed vPMU: the thin driver that lets the world run a design's record of
 * kernel functions (EMULATED_OPS, today's upstream, by default; a series or a historical bug passes
 * its own). It turns the VpmuVcpu calls into what KVM does: MSR exits into kvm_get/set_msr_common, the
 * run loop into vcpu_enter_guest and VM-exit, ioctls into do_get/set_msr and kvm_set_cpuid, the host
 * scheduler into the preempt notifiers. Every kernel function is reached through `s.ops`.
 */

import { type Access, gp, ok } from '../../hw/access.js';
import type { XsaveResult } from '../../hw/cpu.js';
import type { ArchLbrXsave } from '../../hw/msr/lbr_arch.js';
import { type WorkUnit, RETIRED_AT_CPL } from '../../hw/work.js';
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
  NO_CPUID,
  type SupportedPmu,
  type VmSetup,
  type VpmuVcpu,
} from '../types.js';
import { supportedPmuOf } from '../common/cpuid.js';
import { kvm_vm_set_pmu_event_filter } from '../common/pmu.js';
import { newKvmPmu } from './pmu.js';
import { intel_pmu_lbr_is_enabled } from './pmu_intel.js';
import type { KvmState, KvmVcpuState } from './state.js';
import { EMULATED_OPS, type EmulatedOps } from './ops.js';
import { PERF_CAP_LBR_FMT } from '../../hw/msr/capabilities.js';
import { relied } from '../../hw/relied.js';
import { bit } from '../../hw/bits.js';
import { MSR_IA32_XSS, XFEATURE_LBR } from '../../hw/msr/system.js';

/** KVM_CREATE_VM (kvm_arch_init_vm): no event filter, no vCPUs yet, the vPMU as the module's enable_pmu says. */
export function newKvm(enable_pmu: boolean): KvmState {
  return kvm_arch_init_vm(enable_pmu);
}

/**
 * The vCPUs of each host kernel, as kvm_get_running_vcpu() finds them per pCPU: kept on the kernel under a key of its
 * own. Not a WeakMap: its entries (each set holds vCPUs that hold their kernel) kept every program's host and vCPUs
 * past minor GCs, and creating a vCPU took twice as long.
 */
const RUNNING = Symbol('kvm running vcpus');
type WithKvm = HostKernel & { [RUNNING]?: Set<KvmVcpuState> };

/**
 * kvm_register_perf_callbacks, once per host kernel (KVM module load): perf asks KVM whether a
 * PMI belongs to the guest. perf_guest_state() is only asked from perf's PMI handler, an NMI.
 */
function kvm_register_perf_callbacks(host: HostKernel): Set<KvmVcpuState> {
  const h = host as WithKvm;
  let set = h[RUNNING];
  if (set !== undefined) return set;
  const vcpus = (set = new Set<KvmVcpuState>());
  h[RUNNING] = vcpus;
  const IN_NMI = true;
  host.perf_register_guest_info_callbacks({
    state: (cpu) => {
      for (const v of vcpus) if (kvm_guest_state(v, cpu, IN_NMI)) return true; // no copy per host PMI
      return false;
    },
  });
  return set;
}

/** kvm_guest_state for perf: whether an NMI on this vCPU's pCPU is the guest's. */
function kvm_guest_state(vcpu: KvmVcpuState, cpu: number, inNmi: boolean): boolean {
  return vcpu.cpu === cpu && vcpu.handling_intr_from_guest !== 'none' && vcpu.ops.kvm_arch_pmi_in_guest(vcpu, inNmi);
}

export class EmulatedVcpu implements VpmuVcpu {
  readonly design = 'emulated';
  /** KVM's state for this vCPU; read-only for observers. */
  readonly s: KvmVcpuState;

  /**
   * KVM_CREATE_VCPU in `vm` (a fresh VM of its own by default), with its thread running on `cpu`, running
   * the kernel functions of `ops`. Pass the same `vm` to several vCPUs to share the VM-wide event filter.
   */
  constructor(
    host: HostKernel,
    opts: { cpu: number; cpuid: GuestCpuid; vm?: KvmState } & VmSetup,
    ops: EmulatedOps = EMULATED_OPS,
  ) {
    // Module load: kvm_init_pmu_capability, then vmx_get_perf_capabilities (hardware_setup).
    const cap = ops.kvm_init_pmu_capability(host.profile);
    const { supportedPerfCap, lbrCaps } = ops.vmx_get_perf_capabilities(host, cap.enable_pmu);
    const kvm = opts.vm ?? newKvm(cap.enable_pmu);
    applyVmSetup(ops, kvm, cap.enable_pmu, opts);
    kvm.created_vcpus++;
    const task = host.createTask(`vcpu${kvm.vcpus.length}`); // no global counter: runs replay exactly
    this.s = {
      ops,
      kvm_pmu_cap: cap,
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
      inGuest: false,
      host_debugctlmsr: 0n,
      injected: [],
      handling_intr_from_guest: 'none',
      msr_autoload: { host: 0n, guest: 0n },
    };
    kvm.vcpus.push(this.s);
    kvm_register_perf_callbacks(host).add(this.s);
    ops.kvm_pmu_init(this.s);
    host.context_switch(opts.cpu, task);
    // The VMM's KVM_SET_CPUID2: refused (kvm_set_cpuid's error path), the vCPU keeps the empty CPUID it was created with.
    if (!this.setCpuid(opts.cpuid).ok) {
      this.s.cpuid = NO_CPUID;
      ops.kvm_pmu_refresh(this.s);
    }
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

  /** KVM_SET_CPUID2 → kvm_vcpu_after_set_cpuid → kvm_pmu_refresh. */
  setCpuid(cpuid: GuestCpuid): HostAccess {
    return this.s.ops.kvm_set_cpuid(this.s, cpuid);
  }

  enablePmuCapability(args0: bigint): HostAccess {
    return this.s.ops.kvm_vm_ioctl_enable_cap(this.s.kvm, this.s.kvm_pmu_cap.enable_pmu, args0);
  }

  pmuCapabilityFlags(): bigint {
    return this.s.ops.kvm_vm_ioctl_check_extension(this.s.kvm_pmu_cap.enable_pmu);
  }

  setPmuEventFilter(filter: KvmPmuEventFilter | null): HostAccess {
    return kvm_vm_set_pmu_event_filter(this.s.kvm, filter);
  }

  msrIndexList(): readonly number[] {
    return msrIndexListOf(this.s);
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
      (exit) => {
        if (!exit) return this.hw.rdmsr(msr); // passed through: the hardware holds the guest's value
        return this.s.ops.kvm_get_msr_common(this.s, msr, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`);
      },
      () => !this.s.passthrough.has(msr),
      0,
      'msr',
      kicked,
    );
  }

  guestWrmsr(msr: number, value: bigint, kicked = false): Access {
    return this.guestInstruction(
      (exit) => {
        if (!exit) return this.hw.wrmsr(msr, value);
        return (
          this.s.ops.kvm_set_msr_common(this.s, msr, value, false) ?? gp(`MSR 0x${msr.toString(16)}: unknown to KVM`)
        );
      },
      () => !this.s.passthrough.has(msr),
      0,
      'msr',
      kicked,
    );
  }

  guestRdpmc(ecx: number, cpl: number, kicked = false): Access {
    // The perf-based vPMU always intercepts RDPMC.
    return this.guestInstruction(
      () => this.s.ops.kvm_pmu_rdpmc(this.s, ecx, cpl),
      () => true,
      cpl,
      'rdpmc',
      kicked,
    );
  }

  /**
   * A forced-emulation instruction: the #UD of the prefix exits (handle_ud → kvm_emulate_instruction with
   * EMULTYPE_TRAP_UD_FORCED), and the emulator, not a skip, retires it (K16).
   */
  guestEmulate(insn: EmulatedInsn, cpl: number, kicked = false): void {
    relied('K16');
    this.guestInstruction(
      () => {
        this.s.ops.x86_emulate_instruction(this.s, insn, cpl);
        return ok(0n);
      },
      () => true,
      cpl,
      'emulation',
      kicked,
    );
  }

  returnedAtExit = false;

  resume(): void {
    this.returnedAtExit = false;
    vcpu_run_resume(this.s);
  }

  /**
   * One guest instruction: executed in guest mode if passed through, else a VM-exit whose handler
   * runs as host work; a handled instruction is skipped, which counts it as retired
   * (kvm_skip_emulated_instruction → kvm_pmu_instruction_retired); an emulated one retired in the emulator.
   */
  private guestInstruction(
    op: (exited: boolean) => Access,
    intercepted: () => boolean,
    cpl = 0,
    exit: 'msr' | 'rdpmc' | 'emulation' = 'msr',
    kicked = false,
  ): Access {
    const s = this.s;
    s.ops.vcpu_enter_guest(s, -1);
    // The MSR bitmap as this VM-entry left it (vmx_passthrough_lbr_msrs ran just before it).
    if (!intercepted()) {
      const r = op(false);
      // No exit: the instruction retires in guest mode, and the hardware counters count it.
      if (r.ok && this.hw.step(RETIRED_AT_CPL[cpl]!) !== null) {
        s.ops.vmx_vcpu_exit(s);
        this.handleNmiExit();
        s.ops.vcpu_enter_guest(s, 0);
      }
      s.ops.vmx_vcpu_exit(s);
      return r;
    }
    s.ops.vmx_vcpu_exit(s);
    if (exit === 'msr') s.cost.msrExits++;
    else if (exit === 'rdpmc') s.cost.rdpmcExits++;
    else s.cost.emulationExits++;
    runExitHandler(s);
    const r = op(true);
    if (r.ok && exit !== 'emulation') s.ops.kvm_skip_emulated_instruction(s, cpl);
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
      if (this.hw.step(u) === null) return;
      // The PMI is an NMI: VM-exit, the host's perf NMI handler, then straight back in (K6).
      s.ops.vmx_vcpu_exit(s);
      this.handleNmiExit();
      s.ops.vcpu_enter_guest(s, i);
    });
    s.ops.vmx_vcpu_exit(s);
    return s.injected.splice(from); // a run reports its own PMIs; drainPmis must not see them again
  }

  /**
   * The command's WRMSR IA32_XSS = XFEATURE_MASK_LBR, as KVM handles it (kvm_set_msr_common): upstream handles no XSS
   * bit the model knows (kvm_caps.supported_xss has no XFEATURE_MASK_LBR: guest Arch LBR was not merged), so it
   * faults; a series that supports the component takes it. Set-up of the XSAVES/XRSTORS command, as on bare metal,
   * where it retires nothing the oracle counts.
   */
  private setGuestXssLbr(): Access {
    return this.s.ops.kvm_set_msr_common(this.s, MSR_IA32_XSS, bit(XFEATURE_LBR), false) ?? gp(NO_GUEST_ARCH_LBR);
  }

  /** XSAVES of component 15: never intercepted (no XSS-exiting bitmap), it runs on the LBRs the pCPU holds. */
  guestXsaves(): XsaveResult {
    const xss = this.setGuestXssLbr();
    if (!xss.ok) return { ok: false, gp: xss.gp };
    let saved: XsaveResult = { ok: false, gp: 'not run' };
    this.guestInstruction(
      () => {
        saved = this.hw.xsaves();
        return saved.ok ? ok(0n) : gp(saved.gp);
      },
      () => false,
    );
    return saved;
  }

  /** XRSTORS of component 15: natively, like XSAVES. */
  guestXrstors(area: ArchLbrXsave): Access {
    const xss = this.setGuestXssLbr();
    if (!xss.ok) return xss;
    return this.guestInstruction(
      () => this.hw.xrstors(area),
      () => false,
    );
  }

  /**
   * An external interrupt exits the guest (EXIT_REASON_EXTERNAL_INTERRUPT): KVM hands it to the
   * host's handler, which runs `units` in host mode, flagged as an IRQ from the guest
   * (handle_external_interrupt_irqoff → kvm_before_interrupt(vcpu, KVM_HANDLING_IRQ)).
   */
  externalInterrupt(units: readonly WorkUnit[]): void {
    const s = this.s;
    s.ops.vcpu_enter_guest(s, -1);
    s.ops.vmx_vcpu_exit(s);
    s.handling_intr_from_guest = 'irq';
    s.host.runHost(s.cpu, units); // a PMI during the handler runs perf's NMI handler
    s.handling_intr_from_guest = 'none';
  }

  /** A PMI (an NMI) exited the guest: perf's handler runs between kvm_before/after_interrupt(NMI). */
  private handleNmiExit(): void {
    const s = this.s;
    s.cost.pmiExits++;
    s.handling_intr_from_guest = 'nmi';
    s.host.intel_pmu_handle_irq(s.cpu);
    s.handling_intr_from_guest = 'none';
  }

  /** PMIs injected outside guestRun (after an intercepted instruction), oldest first. */
  drainPmis(): GuestPmi[] {
    return this.s.injected.splice(0);
  }

  // ---- the host scheduler ----

  /** The vCPU thread moves: perf and KVM's preempt notifiers on the old pCPU, then on the new one. */
  migrate(cpu: number): void {
    const s = this.s;
    s.host.context_switch(s.cpu, null);
    kvm_sched_out(s);
    s.cpu = cpu;
    s.host.context_switch(cpu, s.task);
    kvm_sched_in(s);
  }

  /** Another task preempts the vCPU thread: kvm_sched_out, `work` runs as that task, then kvm_sched_in. */
  preempt(work: () => void): void {
    const s = this.s;
    s.host.context_switch(s.cpu, null);
    kvm_sched_out(s);
    work();
    s.host.context_switch(s.cpu, s.task);
    kvm_sched_in(s);
  }

  /** kvm_arch_vcpu_destroy → kvm_pmu_destroy (= kvm_pmu_reset), then the thread exits. */
  destroy(): void {
    const s = this.s;
    s.ops.kvm_pmu_reset(s);
    const k = s.kvm.vcpus.indexOf(s);
    if (k >= 0) s.kvm.vcpus.splice(k, 1);
    kvm_register_perf_callbacks(s.host).delete(s);
    s.host.context_switch(s.cpu, null);
  }

  /** Whether guest LBR is on for this vCPU (records.nr != 0), for tests and reports. */
  get lbrEnabled(): boolean {
    return intel_pmu_lbr_is_enabled(this.s) && (this.s.perf_capabilities & PERF_CAP_LBR_FMT) !== 0n;
  }
}
