/**
 * The x86.c glue both designs share: KVM_GET_MSR_INDEX_LIST (msrs_to_save_pmu,
 * kvm_probe_msr_to_save), the PMU cases of kvm_get_msr_common / kvm_set_msr_common, do_get_msr /
 * do_set_msr for host-initiated accesses, kvm_set_cpuid after KVM_RUN, and the preempt notifiers.
 * Each reaches pmu.c and vmx.c through the design's record (vcpu.ops); the VM-entry/exit loop is each
 * design's own (its x86.ts and vmx.ts).
 */

import { type Access, gp, ok } from '../../hw/access.js';
import type { WorkUnit } from '../../hw/work.js';
import {
  type EmulatedInsn,
  type GuestCpuid,
  type HostAccess,
  KVM_PMU_CAP_DISABLE,
  KvmIoctlError,
  type VmSetup,
} from '../types.js';
import { toHost } from './pmu.js';
import { sameGuestCpuid } from './cpuid.js';
import type { KvmBase, VcpuBase, VcpuRequests } from './state.js';
import type { KvmOps } from './ops.js';
import { MSR_IA32_PERF_CAPABILITIES } from '../../hw/msr/capabilities.js';
import { MSR_IA32_DEBUGCTLMSR } from '../../hw/msr/debugctl.js';
import {
  MSR_P6_EVNTSEL0,
  MSR_IA32_PERFCTR0,
  MSR_CORE_PERF_FIXED_CTR0,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
} from '../../hw/msr/counters.js';
import { X2APIC_LVTPC } from '../../hw/msr/apic.js';
import { MSR_CORE_PERF_GLOBAL_STATUS, MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';
import { PEBS_DS_MSRS } from '../../hw/msr/unmodelled.js';
import { isRecording, relied } from '../../hw/relied.js';

const MSR_P6_PERFCTR0 = MSR_IA32_PERFCTR0;
const MSR_P6_PERFCTR1 = 0xc2;
const MSR_P6_EVNTSEL1 = MSR_P6_EVNTSEL0 + 1;
/** apic_lvt_mask for LVTPC (LVT_MASK | APIC_MODE_MASK): vector, mode, delivery status, mask; other bits dropped. */
const LVTPC_WRITABLE = 0x1_17ffn;

/**
 * What one intercepted VM-exit costs the pCPU in host mode: KVM's exit handler runs as host
 * kernel code, where host events and host LBR users see it (decision K3).
 */
export const KVM_EXIT_HANDLER_WORK: WorkUnit = Object.freeze({
  cpl: 0,
  instructions: 40,
  cycles: 120,
  branches: Object.freeze([
    Object.freeze({ from: 0xffff_ffff_81a0_0000n, to: 0xffff_ffff_81a0_0400n, kind: 'NEAR_IND_CALL' as const }),
    Object.freeze({ from: 0xffff_ffff_81a0_0420n, to: 0xffff_ffff_81a0_0010n, kind: 'NEAR_RET' as const }),
  ]),
});

/**
 * KVM's exit handler runs on the pCPU in host mode (K3); the choice of its work decides an outcome only where a host
 * user's event counts host work there or the LBRs record it.
 */
export function runExitHandler(vcpu: VcpuBase): void {
  if (isRecording() && vcpu.host.hostWorkObserved(vcpu.cpu)) relied('K3');
  vcpu.host.runHost(vcpu.cpu, [KVM_EXIT_HANDLER_WORK]);
}

/** vcpu_run's loop after a handled exit: the next vcpu_enter_guest (the requests the exit made), then the next exit. */
export function vcpu_run_resume<V extends VcpuBase & { readonly ops: KvmOps<V> }>(vcpu: V): void {
  vcpu.ops.vcpu_enter_guest(vcpu, 0);
  vcpu.ops.vmx_vcpu_exit(vcpu);
}

/** msrs_to_save_pmu (x86.c), before kvm_probe_msr_to_save filters it; no DEBUGCTL, no LBR MSRs (K4). */
function msrs_to_save_pmu(): number[] {
  const l = [
    MSR_CORE_PERF_FIXED_CTR0,
    MSR_CORE_PERF_FIXED_CTR0 + 1,
    MSR_CORE_PERF_FIXED_CTR0 + 2,
    MSR_CORE_PERF_FIXED_CTR0 + 3,
    MSR_CORE_PERF_FIXED_CTR_CTRL,
    MSR_CORE_PERF_GLOBAL_STATUS,
    MSR_CORE_PERF_GLOBAL_CTRL,
  ];
  for (let i = 0; i < 8; i++) l.push(MSR_IA32_PERFCTR0 + i, MSR_P6_EVNTSEL0 + i);
  return l;
}

/** kvm_probe_msr_to_save: drop what this host's KVM cannot expose (e33b6d79acac). */
export function kvm_probe_msr_to_save(vcpu: VcpuBase, msr: number): boolean {
  const cap = vcpu.kvm_pmu_cap;
  if (msr >= MSR_CORE_PERF_FIXED_CTR0 && msr <= MSR_CORE_PERF_FIXED_CTR0 + 3)
    return msr - MSR_CORE_PERF_FIXED_CTR0 < cap.num_counters_fixed;
  if (msr >= MSR_CORE_PERF_FIXED_CTR_CTRL && msr <= MSR_CORE_PERF_GLOBAL_CTRL) return cap.version >= 2;
  if (msr >= MSR_IA32_PERFCTR0 && msr < 0xc9) return msr - MSR_IA32_PERFCTR0 < cap.num_counters_gp;
  if (msr >= MSR_P6_EVNTSEL0 && msr < 0x18e) return msr - MSR_P6_EVNTSEL0 < cap.num_counters_gp;
  return true;
}

/**
 * KVM_GET_MSR_INDEX_LIST as far as the PMU goes (kvm_init_msr_lists): msrs_to_save_pmu filtered when
 * enable_pmu, and the feature MSR PERF_CAPABILITIES.
 */
export function kvm_get_msr_index_list(vcpu: VcpuBase): number[] {
  const l: number[] = [];
  if (vcpu.kvm_pmu_cap.enable_pmu)
    for (const m of msrs_to_save_pmu()) if (vcpu.ops.kvm_probe_msr_to_save(vcpu, m)) l.push(m);
  l.push(MSR_IA32_PERF_CAPABILITIES);
  return l;
}

/**
 * The list and its set, kept on the vCPU under a key of its own (no kernel state): kvm_init_msr_lists builds them once,
 * at module load, where asking ops.kvm_get_msr_index_list at every unhandled MSR of a save/restore took 2 % of a run.
 */
const INDEX_LIST = Symbol('KVM_GET_MSR_INDEX_LIST');
type Listed = VcpuBase & { [INDEX_LIST]?: { readonly list: readonly number[]; readonly set: ReadonlySet<number> } };

/** KVM_GET_MSR_INDEX_LIST as this vCPU's KVM built it (the design's ops.kvm_get_msr_index_list, asked once). */
export function msrIndexListOf(vcpu: VcpuBase): readonly number[] {
  return indexList(vcpu).list;
}

function indexList(vcpu: VcpuBase) {
  const v = vcpu as Listed;
  if (v[INDEX_LIST] === undefined) {
    const list = vcpu.ops.kvm_get_msr_index_list(vcpu);
    v[INDEX_LIST] = { list, set: new Set(list) };
  }
  return v[INDEX_LIST];
}

/** kvm_is_advertised_msr: host-initiated accesses to these may read 0 / write 0 when unsupported. */
function kvm_is_advertised_msr(vcpu: VcpuBase, msr: number): boolean {
  return indexList(vcpu).set.has(msr);
}

/**
 * kvm_set_cpuid: after KVM_RUN only an identical CPUID is accepted, and changes nothing; before it, store
 * and refresh (kvm_vcpu_after_set_cpuid → kvm_pmu_refresh).
 */
export function kvm_set_cpuid(vcpu: VcpuBase, cpuid: GuestCpuid): HostAccess {
  if (vcpu.hasRun)
    return sameGuestCpuid(vcpu.cpuid, cpuid)
      ? { ok: true, value: 0n }
      : { ok: false, error: 'KVM_SET_CPUID2 after KVM_RUN with a different CPUID (-EINVAL)' };
  if (cpuid.pdcm && !vcpu.cpuid.pdcm) relied('K9'); // what PERF_CAPABILITIES held while hidden shows again
  vcpu.cpuid = cpuid; // perf_capabilities survives; without PDCM vcpu_get_perf_capabilities hides it
  vcpu.ops.kvm_pmu_refresh(vcpu);
  return { ok: true, value: 0n };
}

/**
 * kvm_get_msr_common / vmx_get_msr for the vPMU's MSRs; null for an MSR KVM does not handle (KVM_MSR_RET_UNSUPPORTED).
 */
export function kvm_get_msr_common(vcpu: VcpuBase, msr: number, host: boolean): Access | null {
  const ops = vcpu.ops;
  switch (msr) {
    case MSR_IA32_DEBUGCTLMSR:
      return ok(vcpu.guestDebugctl);
    case MSR_IA32_PERF_CAPABILITIES:
      if (!vcpu.cpuid.pdcm) return host ? null : gp('IA32_PERF_CAPABILITIES: guest CPUID has no PDCM');
      return ok(vcpu.perf_capabilities);
    case X2APIC_LVTPC:
      return ok(vcpu.lvtpc);
    case MSR_P6_PERFCTR0:
    case MSR_P6_PERFCTR1:
    case MSR_P6_EVNTSEL0:
    case MSR_P6_EVNTSEL1:
      if (ops.kvm_pmu_is_valid_msr(vcpu, msr)) return ops.kvm_pmu_get_msr(vcpu, msr, host);
      if (msr === MSR_P6_EVNTSEL0 || msr === MSR_P6_EVNTSEL1) relied('K1');
      return ok(0n);
  }
  if (ops.kvm_pmu_is_valid_msr(vcpu, msr)) return ops.kvm_pmu_get_msr(vcpu, msr, host);
  // PEBS and the DS area are unknown to the port (K2), so #GP for the guest.
  if (PEBS_DS_MSRS.has(msr)) relied('K2');
  return null;
}

/** kvm_set_msr_common / vmx_set_msr for the vPMU's MSRs; a new PERF_CAPABILITIES refreshes the vPMU. */
export function kvm_set_msr_common(vcpu: VcpuBase, msr: number, data: bigint, host: boolean): Access | null {
  const ops = vcpu.ops;
  switch (msr) {
    case MSR_IA32_DEBUGCTLMSR:
      return ops.vmx_set_debugctl(vcpu, data, host);
    case MSR_IA32_PERF_CAPABILITIES: {
      if (!host) return gp('IA32_PERF_CAPABILITIES is read-only to the guest');
      if (!vcpu.cpuid.pdcm) return null; // d75cac366f44
      const why = ops.vmx_check_perf_capabilities(vcpu, data);
      if (why !== null) return gp(why);
      if ((data & ~vcpu.supported_perf_cap) !== 0n) return gp('PERF_CAPABILITIES: bits KVM does not support');
      if (vcpu.perf_capabilities !== data) {
        vcpu.perf_capabilities = data;
        ops.kvm_pmu_refresh(vcpu); // mediated: FW_WRITES decides whether IA32_PMCx pass through
      }
      return ok(data);
    }
    case X2APIC_LVTPC:
      if (data >> 32n !== 0n) return gp('x2APIC LVTPC: bits 63:32 set');
      vcpu.lvtpc = data & LVTPC_WRITABLE; // apic_lvt_mask drops the other bits
      return ok(vcpu.lvtpc);
    case MSR_P6_PERFCTR0:
    case MSR_P6_PERFCTR1:
    case MSR_P6_EVNTSEL0:
    case MSR_P6_EVNTSEL1:
      if (ops.kvm_pmu_is_valid_msr(vcpu, msr)) return ops.kvm_pmu_set_msr(vcpu, msr, data, host);
      if (msr === MSR_P6_EVNTSEL0 || msr === MSR_P6_EVNTSEL1) relied('K1');
      return ok(data);
  }
  if (ops.kvm_pmu_is_valid_msr(vcpu, msr)) return ops.kvm_pmu_set_msr(vcpu, msr, data, host);
  if (PEBS_DS_MSRS.has(msr)) relied('K2');
  return null;
}

/** do_get_msr (KVM_GET_MSRS): an advertised MSR KVM does not handle reads 0 (kvm_is_advertised_msr). */
export function do_get_msr(vcpu: VcpuBase, msr: number): HostAccess {
  const r = vcpu.ops.kvm_get_msr_common(vcpu, msr, true);
  if (r !== null) return toHost(r);
  return kvm_is_advertised_msr(vcpu, msr)
    ? { ok: true, value: 0n }
    : { ok: false, error: `MSR 0x${msr.toString(16)} unsupported` };
}

/**
 * do_set_msr (KVM_SET_MSRS): feature MSRs are immutable once the vCPU has run, compared with what
 * do_get_msr reads; an advertised MSR KVM does not handle takes only 0.
 */
export function do_set_msr(vcpu: VcpuBase, msr: number, value: bigint): HostAccess {
  if (vcpu.hasRun && msr === MSR_IA32_PERF_CAPABILITIES) {
    const cur = vcpu.ops.do_get_msr(vcpu, msr);
    if (!cur.ok || cur.value !== value)
      return { ok: false, error: 'PERF_CAPABILITIES cannot change after KVM_RUN (-EINVAL)' };
  }
  const r = vcpu.ops.kvm_set_msr_common(vcpu, msr, value, true);
  if (r !== null) return toHost(r);
  return kvm_is_advertised_msr(vcpu, msr) && value === 0n
    ? { ok: true, value: 0n }
    : { ok: false, error: `MSR 0x${msr.toString(16)} unsupported` };
}

/** kvm_skip_emulated_instruction: the skipped instruction retires (kvm_pmu_instruction_retired). */
export function kvm_skip_emulated_instruction(vcpu: VcpuBase, cpl: number): void {
  vcpu.ops.kvm_pmu_instruction_retired(vcpu, cpl);
}

/**
 * The opcodes emulate.c's table flags IsBranch (018d70ffcfec), among those a guest forces KVM to emulate: Jcc and
 * LOOP are, MOV and XOR are not, and ENTER and LEAVE lost the flag in e8f85d7884e0.
 */
const IS_BRANCH: Readonly<Record<EmulatedInsn, boolean>> = {
  mov: false,
  xor: false,
  enter: false,
  leave: false,
  jne: true,
  loop: true,
};

/**
 * x86_emulate_instruction's writeback, for an instruction that completed without an exception: it retires
 * (kvm_pmu_instruction_retired), then, for an opcode flagged IsBranch (ctxt->is_branch), it retires as a branch
 * (kvm_pmu_branch_retired), before RIP moves on. Taken or not makes no difference to KVM's count.
 */
export function x86_emulate_instruction(vcpu: VcpuBase, insn: EmulatedInsn, cpl: number): void {
  vcpu.ops.kvm_pmu_instruction_retired(vcpu, cpl);
  if (IS_BRANCH[insn]) vcpu.ops.kvm_pmu_branch_retired(vcpu, cpl);
}

/** KVM_CAP_PMU_VALID_MASK: every flag KVM_CAP_PMU_CAPABILITY takes. */
const KVM_CAP_PMU_VALID_MASK = KVM_PMU_CAP_DISABLE;

/** kvm_vm_ioctl_check_extension(KVM_CAP_PMU_CAPABILITY): the flags KVM_ENABLE_CAP takes, none without enable_pmu. */
export function kvm_vm_ioctl_check_extension(enable_pmu: boolean): bigint {
  return enable_pmu ? KVM_CAP_PMU_VALID_MASK : 0n;
}

/**
 * kvm_vm_ioctl_enable_cap(KVM_CAP_PMU_CAPABILITY): -EINVAL without the module's enable_pmu, for an unknown flag, and
 * once the VM has a vCPU or a mediated PMU (checked under kvm->lock); else KVM_PMU_CAP_DISABLE decides
 * kvm->arch.enable_pmu, and the VM's vCPUs are created without (or again with) a vPMU. Repeatable until then.
 */
export function kvm_vm_ioctl_enable_cap(kvm: KvmBase, enable_pmu: boolean, args0: bigint): HostAccess {
  if (!enable_pmu) return { ok: false, error: 'KVM_CAP_PMU_CAPABILITY: enable_pmu is off', errno: 'EINVAL' };
  if ((args0 & ~KVM_CAP_PMU_VALID_MASK) !== 0n)
    return { ok: false, error: `KVM_CAP_PMU_CAPABILITY: unknown flags 0x${args0.toString(16)}`, errno: 'EINVAL' };
  if (kvm.created_vcpus > 0 || kvm.created_mediated_pmu)
    return { ok: false, error: 'KVM_CAP_PMU_CAPABILITY after KVM_CREATE_VCPU (kvm->created_vcpus)', errno: 'EINVAL' };
  kvm.enable_pmu = (args0 & KVM_PMU_CAP_DISABLE) === 0n;
  return { ok: true, value: 0n };
}

/** kvm_arch_init_vm (KVM_CREATE_VM): no event filter, no vCPUs, the vPMU as the module's enable_pmu says. */
export function kvm_arch_init_vm<V extends VcpuRequests>(enable_pmu: boolean): KvmBase<V> {
  return { pmu_event_filter: null, vcpus: [], enable_pmu, created_vcpus: 0, created_mediated_pmu: false };
}

/** The VM ioctls a VMM issues before KVM_CREATE_VCPU (VmSetup); a refused one means the vCPU is never created. */
export function applyVmSetup(
  ops: Pick<KvmOps<VcpuBase>, 'kvm_vm_ioctl_enable_cap'>,
  kvm: KvmBase,
  enable_pmu: boolean,
  setup: VmSetup,
): void {
  if (setup.pmuCap === undefined) return;
  const r = ops.kvm_vm_ioctl_enable_cap(kvm, enable_pmu, setup.pmuCap);
  if (!r.ok) throw new KvmIoctlError(`KVM_ENABLE_CAP: ${r.error}`);
}

/** kvm_sched_out (the vCPU thread's preempt notifier): after perf's task sched-out. */
export function kvm_sched_out(vcpu: VcpuBase): void {
  vcpu.scheduled_out = true;
  vcpu.ops.kvm_arch_sched_out(vcpu);
  vcpu.ops.kvm_arch_vcpu_put(vcpu);
}

/** kvm_sched_in (the vCPU thread's preempt notifier): after perf's task sched-in. */
export function kvm_sched_in(vcpu: VcpuBase): void {
  vcpu.ops.kvm_arch_sched_in(vcpu);
  vcpu.ops.kvm_arch_vcpu_load(vcpu);
}

/** A kernel hook this design leaves empty. */
export function nop(): void {}

/**
 * Guest XSAVES/XRSTORS of Arch LBR state: KVM never lets the guest set IA32_XSS.LBR (supported_xss has no
 * XFEATURE_MASK_LBR).
 */
export const NO_GUEST_ARCH_LBR = 'WRMSR IA32_XSS.LBR: KVM does not support guest Arch LBR (supported_xss)';
