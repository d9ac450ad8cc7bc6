/**
 * Vendor-neutral logic of the mediated vPMU: a port of the mediated paths of arch/x86/kvm/pmu.c
 * (merged for 6.20, series "KVM: x86: Add support for mediated vPMUs" v6). Guest counters are the
 * physical counters (identity mapping); KVM creates no perf events, keeps the guest's values in
 * struct kvm_pmc while the guest is out, and swaps them with perf's at every VM-entry and VM-exit
 * (kvm_mediated_pmu_load / kvm_mediated_pmu_put). kvm-vpmu.md §2.3–§2.12, §2.19.
 */

import { bit, lowMask } from '../../hw/bits.js';
import { ModelError } from '../../hw/errors.js';
import { fixedIndices, type Profile } from '../../hw/profile.js';
import {
  perf_load_guest_context,
  perf_load_guest_lvtpc,
  perf_put_guest_context,
  perf_put_guest_lvtpc,
} from '../../host/mediated.js';
import {
  kvm_init_pmu_capability as common_kvm_init_pmu_capability,
  kvm_pmu_init as common_kvm_pmu_init,
  kvm_pmu_refresh_defaults,
  kvm_pmu_refresh_valid_pmcs,
  newPmuBase,
} from '../common/pmu.js';
import type { MediatedOps } from './ops.js';
import {
  fixed_ctrl_field,
  kvm_pmu_has_perf_global_ctrl,
  kvm_pmu_recalc_pmc_emulation,
  type KvmPmuCap,
  pmc_bitmask,
  validPmcs,
} from '../common/pmu.h.js';
import { KVM_FIXED_PMC_BASE_IDX } from '../common/state.js';
import { type MediatedPmc, type MediatedPmu, type MediatedVcpuState, newMediatedPmc } from './state.js';
import {
  INTEL_PMC_FIXED_RDPMC_BASE,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_INT,
  MSR_CORE_PERF_FIXED_CTR0,
} from '../../hw/msr/counters.js';
import { MSR_CORE_PERF_GLOBAL_CTRL } from '../../hw/msr/global.js';
import { isRecording, relied } from '../../hw/relied.js';

/** kvm_pmu_cap (what KVM offers guests) and kvm_host_pmu (what perf reports of the hardware). */
export interface MediatedPmuCap extends KvmPmuCap {
  /** enable_mediated_pmu after kvm_init_pmu_capability, and why not when false. */
  readonly enableMediatedPmu: boolean;
  readonly unavailable: string | null;
  /** kvm_host_pmu: perf_get_x86_pmu_capability, not clamped to what KVM supports. */
  readonly host: {
    readonly numCountersGp: number;
    readonly numCountersFixed: number;
    readonly bitWidthGp: number;
    readonly bitWidthFixed: number;
  };
}

/**
 * kvm_init_pmu_capability: the shared caps (version capped at 2 even with the mediated PMU); enable_mediated_pmu forced
 * off without vendor support.
 */
export function kvm_init_pmu_capability(p: Profile, pmu_ops: MediatedOps): MediatedPmuCap {
  const fixed = fixedIndices(p);
  // perf_get_x86_pmu_capability: num_counters_fixed is fls() of the fixed-counter mask (K15).
  const host = {
    numCountersGp: p.nGP,
    numCountersFixed: fixed.length === 0 ? 0 : Math.max(...fixed) + 1,
    bitWidthGp: p.gpWidth,
    bitWidthFixed: p.fixedWidth,
  };
  const cap = common_kvm_init_pmu_capability(p);
  const why = !cap.enable_pmu
    ? `${p.name} has no architectural PMU with GP counters (enable_pmu off)`
    : pmu_ops.intel_pmu_is_mediated_pmu_supported(p);
  // Field by field, not a spread plus new keys, which V8 gives a slow map (the caps are read at every vCPU's refresh).
  return {
    enable_pmu: cap.enable_pmu,
    version: cap.version,
    num_counters_gp: cap.num_counters_gp,
    num_counters_fixed: cap.num_counters_fixed,
    bit_width_gp: cap.bit_width_gp,
    bit_width_fixed: cap.bit_width_fixed,
    events_mask_len: cap.events_mask_len,
    events_mask: cap.events_mask,
    enableMediatedPmu: why === null,
    unavailable: why,
    host,
  };
}

/** struct kvm_pmu of the mediated vPMU, before kvm_pmu_init. */
export function newMediatedPmu(): MediatedPmu {
  // Object.assign, not spread: V8 gives a spread plus new keys a slow map (see emulated newKvmPmu).
  return Object.assign(newPmuBase<MediatedPmc>(), { fixed_ctr_ctrl_hw: 0n });
}

/** kvm_pmu_init + intel_pmu_init, with mediated PMCs. */
export function kvm_pmu_init(vcpu: MediatedVcpuState): void {
  common_kvm_pmu_init(vcpu.pmu, newMediatedPmc);
}

/** pmc_read_counter, mediated: the stored value is the guest's (valid while the PMU is put). */
export function pmc_read_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): bigint {
  if (vcpu.pmuLoaded) throw new ModelError('pmc_read_counter while the guest PMU is loaded: hardware holds the value');
  return pmc.counter & pmc_bitmask(vcpu, pmc);
}

/** pmc_write_counter, mediated: store the masked value; the next load writes it to hardware. */
export function pmc_write_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc, val: bigint): void {
  if (vcpu.pmuLoaded) throw new ModelError('pmc_write_counter while the guest PMU is loaded');
  pmc.counter = val & pmc_bitmask(vcpu, pmc);
}

/**
 * kvm_mediated_pmu_refresh_event_filter: the filter clears ENABLE in eventsel_hw, or the fixed
 * counter's field in fixed_ctr_ctrl_hw; the guest still reads back what it wrote.
 */
function kvm_mediated_pmu_refresh_event_filter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  const allowed = vcpu.ops.pmc_is_event_allowed(vcpu, pmc);
  const pmu = vcpu.pmu;
  if (pmc.type === 'gp') {
    pmc.eventsel_hw = allowed ? pmc.eventsel : pmc.eventsel & ~ARCH_PERFMON_EVENTSEL_ENABLE;
    return;
  }
  const field = 0xfn << BigInt(4 * (pmc.idx - KVM_FIXED_PMC_BASE_IDX));
  pmu.fixed_ctr_ctrl_hw = allowed
    ? (pmu.fixed_ctr_ctrl_hw & ~field) | (pmu.fixed_ctr_ctrl & field)
    : pmu.fixed_ctr_ctrl_hw & ~field;
}

/** reprogram_counter, mediated branch: only the filter shadows change; no perf event, so it cannot fail. */
export function reprogram_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): boolean {
  kvm_mediated_pmu_refresh_event_filter(vcpu, pmc);
  vcpu.cost.reprograms++;
  return true;
}

/** kvm_pmu_handle_event: KVM_REQ_PMU before VM-entry; mediated reprogramming cannot fail. */
export function kvm_pmu_handle_event(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  const snapshot = pmu.reprogram_pmi;
  pmu.reprogram_pmi &= ~snapshot;
  for (const pmc of validPmcs(pmu)) if ((snapshot & bit(pmc.idx)) !== 0n) vcpu.ops.reprogram_counter(vcpu, pmc);
  for (const pmc of validPmcs(pmu)) if ((snapshot & bit(pmc.idx)) !== 0n) kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
}

/** pmc_pmi_enabled: the INT bit, or the fixed field's PMI bit (the guest's values, not the _hw shadows). */
function pmc_pmi_enabled(vcpu: MediatedVcpuState, pmc: MediatedPmc): boolean {
  if (pmc.type === 'gp') return (pmc.eventsel & ARCH_PERFMON_EVENTSEL_INT) !== 0n;
  return (fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX) & 8) !== 0;
}

/** kvm_pmu_incr_counter, mediated: bump the stored counter; on wrap to 0 set the status bit and request a PMI. */
export function kvm_pmu_incr_counter(vcpu: MediatedVcpuState, pmc: MediatedPmc): void {
  pmc.counter = (pmc.counter + 1n) & pmc_bitmask(vcpu, pmc);
  if (pmc.counter !== 0n) return;
  vcpu.pmu.global_status |= bit(pmc.idx);
  if (pmc_pmi_enabled(vcpu, pmc)) vcpu.requests.add('PMI');
}

/** kvm_handle_guest_mediated_pmi: the PERF_GUEST_MEDIATED_PMI_VECTOR handler; status comes from hardware at put. */
export function kvm_handle_guest_mediated_pmi(vcpu: MediatedVcpuState): void {
  vcpu.requests.add('PMI');
}

/** kvm_pmu_reset: zero the architectural state (no perf events to stop). */
export function kvm_pmu_reset(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.reprogram_pmi = 0n;
  for (const pmc of validPmcs(pmu)) {
    pmc.counter = 0n;
    if (pmc.type === 'gp') {
      pmc.eventsel = 0n;
      pmc.eventsel_hw = 0n;
    }
  }
  pmu.fixed_ctr_ctrl = 0n;
  pmu.fixed_ctr_ctrl_hw = 0n;
  pmu.global_ctrl = 0n;
  pmu.global_status = 0n;
  vcpu.ops.intel_pmu_reset(vcpu);
}

/**
 * kvm_pmu_refresh: before the first KVM_RUN; mediated sets the RESET GLOBAL_CTRL even for v1 and pushes it to the VMCS.
 * The new model then decides the MSR and RDPMC intercepts (vmx_recalc_msr_intercepts, K12).
 */
export function kvm_pmu_refresh(vcpu: MediatedVcpuState): void {
  if (vcpu.hasRun) throw new Error('KVM_BUG_ON: kvm_pmu_refresh after the first KVM_RUN');
  const ops = vcpu.ops;
  ops.kvm_pmu_reset(vcpu);
  const pmu = vcpu.pmu;
  kvm_pmu_refresh_defaults(pmu);
  if (vcpu.kvm.enable_pmu) {
    ops.intel_pmu_refresh(vcpu);
    if (pmu.nr_arch_gp_counters > 0) pmu.global_ctrl = lowMask(pmu.nr_arch_gp_counters); // has_perf_global_ctrl || mediated
    ops.intel_pmu_write_global_ctrl?.(vcpu, pmu.global_ctrl);
    kvm_pmu_refresh_valid_pmcs(pmu);
  }
  ops.vmx_recalc_pmu_msr_intercepts(vcpu);
  ops.vmx_recalc_instruction_intercepts(vcpu);
}

// ---- interception decisions ----

/** kvm_need_any_pmc_intercept: unless the guest has exactly the host's counters (perf's count, not KVM's). */
function kvm_need_any_pmc_intercept(vcpu: MediatedVcpuState): boolean {
  const pmu = vcpu.pmu;
  const cap = vcpu.kvm_pmu_cap;
  if (cap.host.numCountersFixed !== cap.num_counters_fixed) relied('K15'); // perf's fls() count, not KVM's
  return pmu.nr_arch_gp_counters !== cap.host.numCountersGp || pmu.nr_arch_fixed_counters !== cap.host.numCountersFixed;
}

/** kvm_need_perf_global_ctrl_intercept: GLOBAL_CTRL/STATUS/OVF_CTRL pass through only for a full v2+ guest PMU. */
export function kvm_need_perf_global_ctrl_intercept(vcpu: MediatedVcpuState): boolean {
  return kvm_need_any_pmc_intercept(vcpu) || !kvm_pmu_has_perf_global_ctrl(vcpu.pmu);
}

/**
 * kvm_need_rdpmc_intercept: unexposed counters are not zeroed at load, so RDPMC must exit unless the guest sees every
 * counter at full width (bugs.md #14).
 */
export function kvm_need_rdpmc_intercept(vcpu: MediatedVcpuState): boolean {
  const pmu = vcpu.pmu;
  const cap = vcpu.kvm_pmu_cap;
  return (
    kvm_need_any_pmc_intercept(vcpu) ||
    pmu.counter_bitmask_gp !== lowMask(cap.host.bitWidthGp) ||
    pmu.counter_bitmask_fixed !== lowMask(cap.host.bitWidthFixed)
  ); // enable_vmware_backdoor is not modelled (K2)
}

// ---- the world switch ----

function hwOf(vcpu: MediatedVcpuState) {
  return vcpu.host.pcpu(vcpu.cpu).hw;
}

/** wrmsrq by KVM in the world switch: counted, and a fault is a port bug. */
export function kvm_wrmsr(vcpu: MediatedVcpuState, msr: number, v: bigint): void {
  vcpu.cost.entryExitMsrAccesses++;
  const r = hwOf(vcpu).wrmsr(msr, v);
  if (!r.ok) throw new ModelError(`KVM: WRMSR 0x${msr.toString(16)} <- 0x${v.toString(16)} faulted: ${r.gp}`);
}

/** rdmsrq by KVM in the world switch. */
export function kvm_rdmsr(vcpu: MediatedVcpuState, msr: number): bigint {
  vcpu.cost.entryExitMsrAccesses++;
  const r = hwOf(vcpu).rdmsr(msr);
  if (!r.ok) throw new ModelError(`KVM: RDMSR 0x${msr.toString(16)} faulted: ${r.gp}`);
  return r.value;
}

/** rdpmc by KVM in the world switch (counted like an MSR access). */
function kvm_rdpmc(vcpu: MediatedVcpuState, ecx: number): bigint {
  vcpu.cost.entryExitMsrAccesses++;
  const r = hwOf(vcpu).rdpmc(ecx, 0);
  if (!r.ok) throw new ModelError(`KVM: RDPMC 0x${ecx.toString(16)} faulted: ${r.gp}`);
  return r.value;
}

/** kvm_pmu_load_guest_pmcs: counters (only where hardware differs) and selectors; unexposed ones are left alone. */
function kvm_pmu_load_guest_pmcs(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  for (let i = 0; i < pmu.nr_arch_gp_counters; i++) {
    const pmc = pmu.gp_counters[i]!;
    if (pmc.counter !== kvm_rdpmc(vcpu, i)) kvm_wrmsr(vcpu, MSR_IA32_PMC0 + i, pmc.counter);
    kvm_wrmsr(vcpu, MSR_P6_EVNTSEL0 + i, pmc.eventsel_hw);
  }
  for (let i = 0; i < pmu.nr_arch_fixed_counters; i++) {
    const pmc = pmu.fixed_counters[i]!;
    if (pmc.counter !== kvm_rdpmc(vcpu, INTEL_PMC_FIXED_RDPMC_BASE | i))
      kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR0 + i, pmc.counter);
  }
}

/** kvm_mediated_pmu_load: perf steps aside, counters off, PMIs to KVM's vector, guest counters and controls in. */
export function kvm_mediated_pmu_load(vcpu: MediatedVcpuState): void {
  if (!kvm_vcpu_has_mediated_pmu(vcpu)) {
    relied('K17');
    return;
  }
  if (vcpu.pmuLoaded) throw new ModelError('kvm_mediated_pmu_load: already loaded');
  perf_load_guest_context(vcpu.host, vcpu.cpu);
  // Selectors are in flux: nothing may count until VM-entry loads the guest's GLOBAL_CTRL.
  kvm_wrmsr(vcpu, MSR_CORE_PERF_GLOBAL_CTRL, 0n);
  vcpu.cost.entryExitMsrAccesses++; // perf_load_guest_lvtpc's APIC write
  perf_load_guest_lvtpc(vcpu.host, vcpu.cpu, vcpu.lvtpc);
  kvm_pmu_load_guest_pmcs(vcpu);
  vcpu.ops.intel_mediated_pmu_load(vcpu);
  vcpu.pmuLoaded = true;
}

/** kvm_vcpu_has_mediated_pmu: enable_mediated_pmu and a vPMU (none for a guest of version 0 or with the PMU off). */
export function kvm_vcpu_has_mediated_pmu(vcpu: MediatedVcpuState): boolean {
  return vcpu.kvm_pmu_cap.enableMediatedPmu && vcpu.pmu.version !== 0;
}

/** kvm_pmu_put_guest_pmcs: save each exposed counter, zero non-zero counters and selectors before perf returns. */
function kvm_pmu_put_guest_pmcs(vcpu: MediatedVcpuState): void {
  const pmu = vcpu.pmu;
  for (let i = 0; i < pmu.nr_arch_gp_counters; i++) {
    const pmc = pmu.gp_counters[i]!;
    pmc.counter = kvm_rdpmc(vcpu, i);
    if (pmc.counter !== 0n) kvm_wrmsr(vcpu, MSR_IA32_PMC0 + i, 0n);
    if (pmc.eventsel_hw !== 0n) kvm_wrmsr(vcpu, MSR_P6_EVNTSEL0 + i, 0n);
  }
  for (let i = 0; i < pmu.nr_arch_fixed_counters; i++) {
    const pmc = pmu.fixed_counters[i]!;
    pmc.counter = kvm_rdpmc(vcpu, INTEL_PMC_FIXED_RDPMC_BASE | i);
    if (pmc.counter !== 0n) kvm_wrmsr(vcpu, MSR_CORE_PERF_FIXED_CTR0 + i, 0n);
  }
}

/** kvm_mediated_pmu_put: the reverse order: status and fixed controls, counters, LVTPC, then perf's context. */
export function kvm_mediated_pmu_put(vcpu: MediatedVcpuState): void {
  if (!kvm_vcpu_has_mediated_pmu(vcpu)) {
    relied('K17');
    return;
  }
  if (!vcpu.pmuLoaded) throw new ModelError('kvm_mediated_pmu_put: not loaded');
  vcpu.ops.intel_mediated_pmu_put(vcpu); // GLOBAL_CTRL was saved and cleared by VM-exit
  vcpu.pmuLoaded = false;
  kvm_pmu_put_guest_pmcs(vcpu);
  vcpu.cost.entryExitMsrAccesses++; // perf_put_guest_lvtpc's APIC write
  perf_put_guest_lvtpc(vcpu.host, vcpu.cpu);
  perf_put_guest_context(vcpu.host, vcpu.cpu);
  if (isRecording() && vcpu.host.hostWorkObserved(vcpu.cpu)) relied('K14'); // a put at every exit: host events count from here
}
