/**
 * Seed 003's proposal, as posted: Like Xu, "[RFC] [PATCH v2 0/5] Intel Virtual PMU Optimization"
 * (2019-03-23, on Linux 5.0; patches 1/5–5/5; seed 003 of docs/references.md). "Host perf would hand over
 * control to kvm after counter allocation": each vPMC still gets a perf event, but once perf has put it
 * on a hardware counter (a "hw-assigned" vPMC) KVM drives that counter itself — the guest's event select
 * and counter go straight to the host MSRs perf assigned — and perf stops writing the counter and the
 * control of exclude_host events (patch 1). The vPMC's counter is saved and restored at vCPU scheduling,
 * and an unused vPMC's event is released lazily, after two scheduling slices (hw_life_count).
 *
 * Built on `pre-reuse` (the perf-based vPMU before event reuse, what 5.0 had), with today's emulated
 * instruction counting kept: the base has the guest-visible behaviour of today's vPMU, so what differs
 * is what the series does. Every replaced function names the patch it ports. Where the series leaves
 * something to the base, the base's port runs (EMULATED_OPS through PRE_REUSE_OPS).
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import type { Cpu } from '../../hw/cpu.js';
import {
  ARCH_PERFMON_EVENTSEL_ANY,
  ARCH_PERFMON_EVENTSEL_ENABLE,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  HSW_IN_TX_CHECKPOINTED,
  MSR_CORE_PERF_FIXED_CTR_CTRL,
  MSR_IA32_PERFCTR0,
  MSR_IA32_PMC0,
  MSR_P6_EVNTSEL0,
} from '../../hw/msr/counters.js';
import { HOST_PERF_OPS, type HostPerfOps } from '../../host/perf.js';
import type { PerfEvent } from '../../host/types.js';
import { notVpmuMsr } from '../common/pmu_intel.js';
import {
  fixed_ctrl_field,
  get_fixed_pmc,
  get_gp_pmc,
  kvm_pmu_recalc_pmc_emulation,
  pmc_bitmask,
  pmc_is_globally_enabled,
  pmc_is_locally_enabled,
} from '../common/pmu.h.js';
import { KVM_FIXED_PMC_BASE_IDX } from '../common/state.js';
import type { EmulatedOps } from '../emulated/ops.js';
import { pmc_create_event, pmc_eventsel } from '../emulated/pmu.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';
import { KernelOops } from '../types.js';
import { PRE_REUSE_OPS } from '../variants/pre_reuse.js';

/** HW_LIFE_COUNT_MAX (patch 2): scheduling slices an unused assigned vPMC survives. */
export const HW_LIFE_COUNT_MAX = 2;

/** struct kvm_pmc with the series' hw_life_count (patch 2); 0 until a counter is assigned. */
interface HwAssignedPmc extends KvmPmc {
  hw_life_count?: number;
}

const life = (pmc: KvmPmc): number => (pmc as HwAssignedPmc).hw_life_count ?? 0;

function setLife(pmc: KvmPmc, n: number): void {
  (pmc as HwAssignedPmc).hw_life_count = n;
}

// ---- patch 1/5: perf/x86: avoid host changing counter state for kvm_intel events holder ----

/** x86_perf_event_set_event_base: an exclude_host event's counter is KVM's to write. */
function x86_perf_event_set_event_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void {
  if (event.attr.exclude_host) return;
  HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, msr, val);
}

/** x86_perf_event_set_config_base: an exclude_host event's control is KVM's to write. */
function x86_perf_event_set_config_base(hw: Cpu, event: PerfEvent, msr: number, val: bigint): void {
  if (event.attr.exclude_host) return;
  HOST_PERF_OPS.x86_perf_event_set_config_base(hw, event, msr, val);
}

/** Host perf with patch 1: reads of KVM's events remain, writes go. */
export const HW_ASSIGNED_HOST_OPS: HostPerfOps = {
  ...HOST_PERF_OPS,
  x86_perf_event_set_event_base,
  x86_perf_event_set_config_base,
};

// ---- KVM's direct accesses to the host counter (patches 2–5) ----

/** The event of an assigned vPMC. */
function eventOf(pmc: KvmPmc): PerfEvent {
  return pmc.perf_event!;
}

function hwOf(vcpu: KvmVcpuState, ev: PerfEvent): Cpu {
  return vcpu.host.pcpu(ev.oncpu).hw;
}

/** rdmsrl by KVM of a host PMU MSR. */
function kvm_rdmsrl(vcpu: KvmVcpuState, ev: PerfEvent, msr: number): bigint {
  vcpu.cost.kvmMsrAccesses++;
  const r = hwOf(vcpu, ev).rdmsr(msr);
  return r.ok ? r.value : 0n; // rdmsrl_safe of a counter the host owns does not fault
}

/** wrmsrl by KVM: a value the hardware refuses faults in host context, is fixed up with a splat and dropped. */
function kvm_wrmsrl(vcpu: KvmVcpuState, ev: PerfEvent, msr: number, val: bigint): void {
  vcpu.cost.kvmMsrAccesses++;
  hwOf(vcpu, ev).wrmsr(msr, val);
}

/** hwc->event_base, hwc->config_base, hwc->event_base_rdpmc of the counter perf assigned. */
const event_base = (vcpu: KvmVcpuState, ev: PerfEvent) => vcpu.host.x86_pmu_event_addr(ev.hw_idx);
const config_base = (vcpu: KvmVcpuState, ev: PerfEvent) => vcpu.host.x86_pmu_config_addr(ev.hw_idx);
const INTEL_PMC_IDX_FIXED = KVM_FIXED_PMC_BASE_IDX;

// ---- patch 2/5: KVM/x86/vPMU: add pmc operations for vmx and count to track release ----

/** intel_pmc_is_assigned: the vPMC's event sits on a hardware counter of a CPU now. */
export function intel_pmc_is_assigned(pmc: KvmPmc): boolean {
  const ev = pmc.perf_event;
  return ev !== null && ev.hw_idx !== -1 && ev.oncpu !== -1;
}

/**
 * intel_pmc_read_counter: the RDPMC handler. `msr_idx_to_pmc` finds the vPMC with no NULL check, so an
 * ECX naming no counter dereferences NULL in host context. Assigned: the hardware counter itself.
 */
function intel_pmc_read_counter(vcpu: KvmVcpuState, idx: number): Access {
  const pmc = intel_msr_idx_to_pmc(vcpu, idx);
  if (pmc === null)
    throw new KernelOops(
      `BUG: NULL pointer dereference in intel_pmc_is_assigned: RDPMC 0x${idx.toString(16)} names no vPMC (msr_idx_to_pmc returned NULL)`,
    );
  if (!intel_pmc_is_assigned(pmc)) return ok(pmc.counter);
  const ev = eventOf(pmc);
  vcpu.cost.kvmMsrAccesses++;
  const r = hwOf(vcpu, ev).rdpmc(vcpu.host.x86_pmu_rdpmc_index(ev.hw_idx), 0); // rdpmcl(hw.event_base_rdpmc)
  pmc.counter = r.ok ? r.value : 0n;
  setLife(pmc, HW_LIFE_COUNT_MAX);
  return ok(pmc.counter);
}

/** intel_msr_idx_to_pmc of 5.0, the RDPMC decoder: bit 30 selects the fixed counters, bits 31:30 are stripped. */
function intel_msr_idx_to_pmc(vcpu: KvmVcpuState, idx: number): KvmPmc | null {
  const pmu = vcpu.pmu;
  const fixed = (idx & 0x4000_0000) !== 0;
  const i = idx & 0x3fff_ffff;
  if (!fixed && i >= pmu.nr_arch_gp_counters) return null;
  if (fixed && i >= pmu.nr_arch_fixed_counters) return null;
  return fixed ? pmu.fixed_counters[i]! : pmu.gp_counters[i]!;
}

/** intel_pmu_enable_host_gp_counter: a GP host counter gets the guest's event select (or the event's config). */
function intel_pmu_enable_host_gp_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const ev = eventOf(pmc);
  const config = pmc.type === 'gp' ? pmc.eventsel : ev.hw_config | ARCH_PERFMON_EVENTSEL_ENABLE;
  kvm_wrmsrl(vcpu, ev, config_base(vcpu, ev), config);
}

function intel_pmu_disable_host_gp_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const ev = eventOf(pmc);
  kvm_wrmsrl(vcpu, ev, config_base(vcpu, ev), 0n);
}

/** intel_pmu_enable_host_fixed_counter: the host fixed counter's field, from the event's config. */
function intel_pmu_enable_host_fixed_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const ev = eventOf(pmc);
  const hostIdx = ev.hw_idx - INTEL_PMC_IDX_FIXED;
  let bits = 0x8n; // !precise_ip: KVM's events are never precise
  if ((ev.hw_config & ARCH_PERFMON_EVENTSEL_USR) !== 0n) bits |= 0x2n;
  if ((ev.hw_config & ARCH_PERFMON_EVENTSEL_OS) !== 0n) bits |= 0x1n;
  if (vcpu.pmu.version > 2 && (ev.hw_config & ARCH_PERFMON_EVENTSEL_ANY) !== 0n) bits |= 0x4n;
  const shift = BigInt(hostIdx * 4);
  const ctrl = kvm_rdmsrl(vcpu, ev, config_base(vcpu, ev));
  kvm_wrmsrl(vcpu, ev, config_base(vcpu, ev), (ctrl & ~(0xfn << shift)) | (bits << shift));
}

function intel_pmu_disable_host_fixed_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const ev = eventOf(pmc);
  const shift = BigInt((ev.hw_idx - INTEL_PMC_IDX_FIXED) * 4);
  const ctrl = kvm_rdmsrl(vcpu, ev, config_base(vcpu, ev));
  kvm_wrmsrl(vcpu, ev, config_base(vcpu, ev), ctrl & ~(0xfn << shift));
}

/** intel_pmu_update_host_fixed_ctrl: the guest's 4-bit field into the host fixed counter's field. */
function intel_pmu_update_host_fixed_ctrl(vcpu: KvmVcpuState, ev: PerfEvent, newCtrl: number, hostIdx: number): void {
  const shift = BigInt(hostIdx * 4);
  const ctrl = kvm_rdmsrl(vcpu, ev, MSR_CORE_PERF_FIXED_CTR_CTRL);
  kvm_wrmsrl(vcpu, ev, MSR_CORE_PERF_FIXED_CTR_CTRL, (ctrl & ~(0xfn << shift)) | (BigInt(newCtrl) << shift));
}

// ---- patch 3/5: KVM/x86/vPMU: add Intel vPMC enable/disable and save/restore support ----

/** intel_pmu_enable_host_counter: whichever kind of host counter perf assigned (cross-mapping). */
function intel_pmu_enable_host_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  if (eventOf(pmc).hw_idx >= INTEL_PMC_IDX_FIXED) intel_pmu_enable_host_fixed_counter(vcpu, pmc);
  else intel_pmu_enable_host_gp_counter(vcpu, pmc);
}

function intel_pmu_disable_host_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  if (eventOf(pmc).hw_idx >= INTEL_PMC_IDX_FIXED) intel_pmu_disable_host_fixed_counter(vcpu, pmc);
  else intel_pmu_disable_host_gp_counter(vcpu, pmc);
}

/** intel_pmu_save_guest_pmc: the counter into pmc->counter, and the host counter zeroed. */
function intel_pmu_save_guest_pmc(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const ev = eventOf(pmc);
  pmc.counter = kvm_rdmsrl(vcpu, ev, event_base(vcpu, ev));
  kvm_wrmsrl(vcpu, ev, event_base(vcpu, ev), 0n);
}

/** intel_pmu_restore_guest_pmc: the guest's control and then its counter into the assigned host counter. */
function intel_pmu_restore_guest_pmc(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const enabled =
    pmc.type === 'fixed'
      ? fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - INTEL_PMC_IDX_FIXED) !== 0
      : (pmc.eventsel & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n;
  if (enabled) intel_pmu_enable_host_counter(vcpu, pmc);
  else intel_pmu_disable_host_counter(vcpu, pmc);
  const ev = eventOf(pmc);
  kvm_wrmsrl(vcpu, ev, event_base(vcpu, ev), pmc.counter);
}

/** intel_pmc_stop_counter: the vPMC gives its counter back: disable, save, read, release. */
function intel_pmc_stop_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perf_event === null) return;
  intel_pmu_disable_host_counter(vcpu, pmc);
  intel_pmu_save_guest_pmc(vcpu, pmc);
  vcpu.ops.pmc_read_counter(vcpu, pmc); // pmc_read_counter(pmc), its value unused
  vcpu.ops.pmc_release_perf_event(vcpu, pmc);
  setLife(pmc, 0);
}

/** kvm_pmu_reset → intel_pmu_reset: every vPMC stopped with intel_pmc_stop_counter, then zeroed. */
function kvm_pmu_reset(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.need_cleanup = false;
  pmu.reprogram_pmi = 0n;
  for (const pmc of [...pmu.gp_counters, ...pmu.fixed_counters]) {
    intel_pmc_stop_counter(vcpu, pmc);
    pmc.counter = 0n;
    pmc.emulated_counter = 0n;
    if (pmc.type === 'gp') pmc.eventsel = 0n;
  }
  pmu.fixed_ctr_ctrl = 0n;
  pmu.global_ctrl = 0n;
  pmu.global_status = 0n;
  vcpu.ops.intel_pmu_reset(vcpu); // the guest LBR event (not in the series' base; kept from today's)
}

// ---- patch 4/5: KVM/x86/vPMU: add vCPU scheduling support for hw-assigned vPMC ----

/** pmc_stop_counter (pmu.h) with the vendor's pmc_stop_counter present: an assigned counter is synced, nothing released. */
function pmc_stop_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (!intel_pmc_is_assigned(pmc)) return;
  const ev = eventOf(pmc);
  pmc.counter = kvm_rdmsrl(vcpu, ev, event_base(vcpu, ev));
}

/**
 * kvm_pmu_rdpmc: the vendor's pmc_read_counter takes every RDPMC (before the VMware backdoor, before
 * any check). The CPL/CR4.PCE #GP comes first: the hardware raises it before the RDPMC exit.
 */
function kvm_pmu_rdpmc(vcpu: KvmVcpuState, ecx: number, cpl: number): Access {
  if (!vcpu.cr4Pce && cpl !== 0) return gp(`RDPMC at CPL ${cpl} with CR4.PCE = 0`);
  return intel_pmc_read_counter(vcpu, ecx);
}

/** kvm_arch_sched_out → intel_pmu_sched_out: every assigned vPMC disabled and saved. */
function kvm_arch_sched_out(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  for (const pmc of [...pmu.gp_counters, ...pmu.fixed_counters]) {
    intel_pmu_disable_host_counter(vcpu, pmc);
    intel_pmu_save_guest_pmc(vcpu, pmc);
  }
}

/**
 * kvm_arch_sched_in → intel_pmu_sched_in: a vPMC whose life ran out is released; an assigned one gets
 * its control and counter back and loses a life if the guest has it disabled.
 */
function kvm_arch_sched_in(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  for (const pmc of pmu.gp_counters) {
    if (pmc.perf_event !== null && life(pmc) === 0) intel_pmc_stop_counter(vcpu, pmc);
    if (!intel_pmc_is_assigned(pmc)) continue;
    intel_pmu_restore_guest_pmc(vcpu, pmc);
    const ev = eventOf(pmc);
    if (ev.hw_idx >= INTEL_PMC_IDX_FIXED) {
      // The patch compares the whole host FIXED_CTR_CTRL with 0 (disabled_ctrl_val is never set).
      if (kvm_rdmsrl(vcpu, ev, config_base(vcpu, ev)) === 0n) setLife(pmc, life(pmc) - 1);
    } else if ((pmc.eventsel & ARCH_PERFMON_EVENTSEL_ENABLE) === 0n) setLife(pmc, life(pmc) - 1);
  }
  for (const pmc of pmu.fixed_counters) {
    if (pmc.perf_event !== null && life(pmc) === 0) intel_pmc_stop_counter(vcpu, pmc);
    if (!intel_pmc_is_assigned(pmc)) continue;
    intel_pmu_restore_guest_pmc(vcpu, pmc);
    const ev = eventOf(pmc);
    if (ev.hw_idx < INTEL_PMC_IDX_FIXED) {
      if ((kvm_rdmsrl(vcpu, ev, config_base(vcpu, ev)) & ARCH_PERFMON_EVENTSEL_ENABLE) === 0n)
        setLife(pmc, life(pmc) - 1);
    } else if (fixed_ctrl_field(pmu.fixed_ctr_ctrl, pmc.idx - INTEL_PMC_IDX_FIXED) === 0) setLife(pmc, life(pmc) - 1);
  }
}

// ---- patch 5/5: KVM/x86/vPMU: not do reprogram_counter for Intel hw-assigned vPMC ----

/** pmc_reprogram_counter: once perf assigned the new event a counter, KVM loads the guest's count into it. */
function pmc_reprogram_counter(
  vcpu: KvmVcpuState,
  pmc: KvmPmc,
  config: bigint,
  excludeUser: boolean,
  excludeKernel: boolean,
  intr: boolean,
): boolean {
  // The base's creation; an event still held (INACTIVE or in ERROR) is overwritten, not released.
  if (!PRE_REUSE_OPS.pmc_reprogram_counter(vcpu, pmc, config, excludeUser, excludeKernel, intr)) return false;
  if (intel_pmc_is_assigned(pmc)) {
    setLife(pmc, HW_LIFE_COUNT_MAX);
    const ev = eventOf(pmc);
    kvm_wrmsrl(vcpu, ev, event_base(vcpu, ev), pmc.counter);
  }
  return true;
}

/**
 * The instructions KVM skipped since the last reprogram (kvm_pmu_trigger_event postdates the series;
 * the base keeps today's counting): folded into pmc->counter as pmc_pause_counter folds them, and into
 * the host counter while assigned. True if they wrapped the counter.
 */
function pmc_fold_emulated(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (pmc.emulated_counter === 0n) return false;
  const mask = pmc_bitmask(vcpu, pmc);
  const prev = pmc.counter & mask;
  pmc.counter = (pmc.counter + pmc.emulated_counter) & mask;
  pmc.emulated_counter = 0n;
  if (intel_pmc_is_assigned(pmc)) {
    const ev = eventOf(pmc);
    kvm_wrmsrl(vcpu, ev, event_base(vcpu, ev), pmc.counter);
  }
  return pmc.counter < prev;
}

/**
 * reprogram_gp_counter / reprogram_fixed_counter: the counter is synced (pmc_stop_counter no longer
 * releases); an enabled vPMC that is assigned only renews its life, one that is not gets a new event.
 * Only the new event costs perf work (`reprograms`); the sync is one MSR read.
 */
function reprogram_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const ops = vcpu.ops;
  ops.pmc_stop_counter(vcpu, pmc);
  const wrapped = pmc_fold_emulated(vcpu, pmc);
  if (!pmc_is_globally_enabled(vcpu, pmc) || !pmc_is_locally_enabled(vcpu, pmc) || !ops.pmc_is_event_allowed(vcpu, pmc))
    return true;
  if (wrapped) ops.__kvm_perf_overflow(vcpu, pmc, false);
  if (intel_pmc_is_assigned(pmc)) {
    setLife(pmc, HW_LIFE_COUNT_MAX);
    return true;
  }
  vcpu.cost.reprograms++;
  const { eventsel, config } = pmc_eventsel(vcpu, pmc);
  pmc.current_config = config;
  return pmc_create_event(vcpu, pmc, eventsel);
}

/** 5.0 reprograms at the WRMSR itself; a creation that failed is retried at KVM_REQ_PMU as the base does. */
function reprogram_now(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
  if (vcpu.ops.reprogram_counter(vcpu, pmc)) return;
  vcpu.pmu.reprogram_pmi |= bit(pmc.idx);
  vcpu.requests.add('PMU');
}

/**
 * reprogram_fixed_counters: each changed field reprograms its vPMC at once, then goes to the assigned
 * host counter: the host field (guest fixed on a host fixed counter) or the event select (cross-mapped).
 */
function reprogram_fixed_counters(vcpu: KvmVcpuState, data: bigint): void {
  const pmu = vcpu.pmu;
  const old = pmu.fixed_ctr_ctrl;
  pmu.fixed_ctr_ctrl = data;
  for (let i = 0; i < pmu.nr_arch_fixed_counters; i++) {
    const newCtrl = fixed_ctrl_field(data, i);
    if (newCtrl === fixed_ctrl_field(old, i)) continue;
    const pmc = pmu.fixed_counters[i]!;
    pmu.pmc_in_use |= bit(pmc.idx);
    reprogram_now(vcpu, pmc);
    if (!intel_pmc_is_assigned(pmc)) continue;
    const ev = eventOf(pmc);
    if (ev.hw_idx < INTEL_PMC_IDX_FIXED)
      kvm_wrmsrl(vcpu, ev, config_base(vcpu, ev), newCtrl === 0 ? 0n : ev.hw_config | ARCH_PERFMON_EVENTSEL_ENABLE);
    else intel_pmu_update_host_fixed_ctrl(vcpu, ev, newCtrl, ev.hw_idx - INTEL_PMC_IDX_FIXED);
  }
}

/** The counter an MSR names (either GP alias or a fixed counter), as intel_pmu_get_msr/set_msr look it up. */
function counterOf(vcpu: KvmVcpuState, msr: number): KvmPmc | undefined {
  return get_gp_pmc(vcpu, msr, MSR_IA32_PERFCTR0) ?? get_gp_pmc(vcpu, msr, MSR_IA32_PMC0) ?? get_fixed_pmc(vcpu, msr);
}

/** intel_pmu_get_msr: an assigned counter reads the host counter (rdmsrl_safe); else pmc->counter, unmasked. */
function intel_pmu_get_msr(vcpu: KvmVcpuState, msr: number, _hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) return ok(pmu.fixed_ctr_ctrl);
  const pmc = counterOf(vcpu, msr);
  if (pmc !== undefined) {
    if (intel_pmc_is_assigned(pmc)) {
      const ev = eventOf(pmc);
      pmc.counter = kvm_rdmsrl(vcpu, ev, event_base(vcpu, ev));
    }
    return ok(pmc.counter);
  }
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) return ok(sel.eventsel);
  return vcpu.ops.intel_pmu_handle_lbr_msrs_access(vcpu, msr, null) ?? notVpmuMsr(msr);
}

/**
 * intel_pmu_set_msr: a counter write is stored as written (no sign extension, no mask) and goes to the
 * assigned host counter; an event select with reserved bits is dropped without #GP, else it reprograms at
 * once and enables or disables the assigned host counter.
 */
function intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, _hostInitiated: boolean): Access {
  const pmu = vcpu.pmu;
  if (msr === MSR_CORE_PERF_FIXED_CTR_CTRL) {
    if ((data & pmu.fixed_ctr_ctrl_rsvd) !== 0n)
      return gp('IA32_FIXED_CTR_CTRL: reserved bits (fixed_ctr_ctrl_rsvd)', data & pmu.fixed_ctr_ctrl_rsvd);
    if (pmu.fixed_ctr_ctrl !== data) vcpu.ops.reprogram_fixed_counters(vcpu, data);
    return ok(data);
  }
  const pmc = counterOf(vcpu, msr);
  if (pmc !== undefined) {
    // The full-width aliases (5.9, after the series) keep their width check.
    if (msr >= MSR_IA32_PMC0 && pmc.type === 'gp' && (data & ~pmu.counter_bitmask_gp) !== 0n)
      return gp('IA32_PMCx: bits above the counter width');
    pmc.counter = data; // no (s64)(s32) sign extension of a guest write any more
    if (intel_pmc_is_assigned(pmc)) {
      const ev = eventOf(pmc);
      kvm_wrmsrl(vcpu, ev, event_base(vcpu, ev), data);
    }
    return ok(data);
  }
  const sel = get_gp_pmc(vcpu, msr, MSR_P6_EVNTSEL0);
  if (sel !== undefined) {
    let reserved = pmu.reserved_bits;
    if (sel.idx === 2 && (pmu.raw_event_mask & HSW_IN_TX_CHECKPOINTED) !== 0n) reserved ^= HSW_IN_TX_CHECKPOINTED;
    if (data === sel.eventsel || (data & reserved) !== 0n) return ok(data); // "return 0": dropped, no #GP
    sel.eventsel = data;
    sel.eventsel_hw = data;
    reprogram_now(vcpu, sel);
    if ((sel.eventsel & ARCH_PERFMON_EVENTSEL_ENABLE) !== 0n) intel_pmu_enable_host_counter(vcpu, sel);
    else intel_pmu_disable_host_counter(vcpu, sel);
    return ok(data);
  }
  return vcpu.ops.intel_pmu_handle_lbr_msrs_access(vcpu, msr, data) ?? notVpmuMsr(msr);
}

/** The series as a design: the base's record with the functions patches 2–5 change. */
export const HW_ASSIGNED_OPS: EmulatedOps = {
  ...PRE_REUSE_OPS,
  kvm_pmu_reset,
  kvm_pmu_rdpmc,
  pmc_stop_counter,
  pmc_reprogram_counter,
  reprogram_counter,
  reprogram_fixed_counters,
  intel_pmu_get_msr,
  intel_pmu_set_msr,
  kvm_arch_sched_out,
  kvm_arch_sched_in,
};
