/**
 * Vendor-neutral vPMU logic: a port of arch/x86/kvm/pmu.c (and the inline helpers of pmu.h) for
 * the perf-event-backed design, Intel only. Each function names the kernel function it ports;
 * kvm-vpmu.md §2.3–§2.12 is the reference.
 */

import type { Access } from '../../hw/access.js';
import { bit, lowMask } from '../../hw/bits.js';
import { attr, type PerfEvent } from '../../host/types.js';
import {
  check_pmu_event_filter,
  kvm_pmu_init as common_kvm_pmu_init,
  kvm_pmu_refresh_defaults,
  kvm_pmu_refresh_valid_pmcs,
  kvm_pmu_set_msr as common_kvm_pmu_set_msr,
  newPmuBase,
} from '../common/pmu.js';
import { KVM_FIXED_PMC_BASE_IDX } from '../common/state.js';
import { type KvmPmc, type KvmPmu, type KvmVcpuState, newPmc } from './state.js';
import {
  fixed_ctrl_field,
  kvm_pmu_has_perf_global_ctrl,
  kvm_pmu_recalc_pmc_emulation,
  kvm_pmu_request_counter_reprogram,
  pmc_bitmask,
  pmc_is_globally_enabled,
  pmc_is_locally_enabled,
  validPmcs,
} from '../common/pmu.h.js';
import {
  HSW_IN_TX_CHECKPOINTED,
  ARCH_PERFMON_EVENTSEL_INT,
  ARCH_PERFMON_EVENTSEL_OS,
  ARCH_PERFMON_EVENTSEL_USR,
  MSR_IA32_PERFCTR0,
  MSR_P6_EVNTSEL0,
  MSR_CORE_PERF_FIXED_CTR0,
} from '../../hw/msr/counters.js';

/** struct kvm_pmu of the perf-based vPMU, before kvm_pmu_init. */
export function newKvmPmu(): KvmPmu {
  // Object.assign, not spread: V8 gives a spread plus new keys a slow map, and this object is read on every access.
  return Object.assign(newPmuBase<KvmPmc>(), { pmc_in_use: 0n, event_count: 0, need_cleanup: false });
}

/** kvm_pmu_init + intel_pmu_init, with perf-backed PMCs. */
export function kvm_pmu_init(vcpu: KvmVcpuState): void {
  common_kvm_pmu_init(vcpu.pmu, newPmc);
}

/** pmc_read_counter: base + emulated + what the perf event counted, masked. */
export function pmc_read_counter(vcpu: KvmVcpuState, pmc: KvmPmc): bigint {
  let c = pmc.counter + pmc.emulated_counter;
  if (pmc.perf_event !== null && !pmc.is_paused) {
    vcpu.cost.perfCalls++;
    c += vcpu.host.perf_event_read_value(pmc.perf_event);
  }
  return c & pmc_bitmask(vcpu, pmc);
}

/** get_sample_period: the events left before the guest counter overflows. */
export function get_sample_period(vcpu: KvmVcpuState, pmc: KvmPmc, counterValue: bigint): bigint {
  const mask = pmc_bitmask(vcpu, pmc);
  const p = -counterValue & mask;
  return p === 0n ? mask + 1n : p;
}

/** is_sampling_event: a counting event (sample_period 0) has no period to recalibrate. */
function is_sampling_event(ev: PerfEvent): boolean {
  return ev.attr.sample_period !== 0n;
}

/** pmc_update_sample_period. */
function pmc_update_sample_period(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perf_event === null || pmc.is_paused || !is_sampling_event(pmc.perf_event)) return;
  vcpu.cost.perfCalls++;
  vcpu.host.perf_event_period(pmc.perf_event, get_sample_period(vcpu, pmc, pmc.counter));
}

/** pmc_write_counter: offsets the base so that the read formula yields `val`. */
export function pmc_write_counter(vcpu: KvmVcpuState, pmc: KvmPmc, val: bigint): void {
  pmc.emulated_counter = 0n;
  pmc.counter += val - vcpu.ops.pmc_read_counter(vcpu, pmc);
  pmc.counter &= pmc_bitmask(vcpu, pmc);
  pmc_update_sample_period(vcpu, pmc);
}

/** pmc_release_perf_event. */
export function pmc_release_perf_event(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perf_event === null) return;
  vcpu.cost.perfReleases++;
  vcpu.host.perf_event_release_kernel(pmc.perf_event);
  pmc.perf_event = null;
  pmc.current_config = 0n;
  vcpu.pmu.event_count--;
}

/** pmc_stop_counter: folds the count into the base and releases the event. */
export function pmc_stop_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perf_event === null) return;
  pmc.counter = vcpu.ops.pmc_read_counter(vcpu, pmc);
  vcpu.ops.pmc_release_perf_event(vcpu, pmc);
}

/** pmc_pause_counter: folds perf and emulated counts; true iff emulated events wrapped it. */
export function pmc_pause_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const mask = pmc_bitmask(vcpu, pmc);
  let counter = pmc.counter;
  if (pmc.perf_event !== null && !pmc.is_paused) {
    vcpu.cost.perfCalls++;
    counter += vcpu.host.perf_event_pause(pmc.perf_event, true);
  }
  const prev = counter & mask;
  counter += pmc.emulated_counter;
  pmc.counter = counter & mask;
  pmc.emulated_counter = 0n;
  pmc.is_paused = true;
  return pmc.counter < prev;
}

/** pmc_resume_counter: re-arms the period and re-enables the existing event. */
export function pmc_resume_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (pmc.perf_event === null) return false;
  if (is_sampling_event(pmc.perf_event)) {
    vcpu.cost.perfCalls++;
    if (!vcpu.host.perf_event_period(pmc.perf_event, get_sample_period(vcpu, pmc, pmc.counter))) return false;
  }
  vcpu.cost.perfCalls++;
  vcpu.host.perf_event_enable(pmc.perf_event);
  pmc.is_paused = false;
  return true;
}

/** pmc_reprogram_counter: a pinned, exclude_host, task-bound sampling event on the vCPU thread. */
export function pmc_reprogram_counter(
  vcpu: KvmVcpuState,
  pmc: KvmPmc,
  config: bigint,
  excludeUser: boolean,
  excludeKernel: boolean,
  intr: boolean,
): boolean {
  let samplePeriod = get_sample_period(vcpu, pmc, pmc.counter);
  // IN_TXCP takes no sample period: a counting event at least allocates.
  if ((config & HSW_IN_TX_CHECKPOINTED) !== 0n && vcpu.host.profile.tsx) samplePeriod = 0n;
  vcpu.cost.perfCreates++;
  const ev = vcpu.host.perf_event_create_kernel_counter(
    attr({
      config,
      pinned: true,
      exclude_host: true,
      exclude_user: excludeUser,
      exclude_kernel: excludeKernel,
      sample_period: samplePeriod,
    }),
    { task: vcpu.task },
    () => vcpu.ops.kvm_perf_overflow(vcpu, pmc),
  );
  if ('error' in ev) return false; // pmc->intr keeps the value of the last event created
  pmc.perf_event = ev;
  vcpu.pmu.event_count++;
  pmc.is_paused = false;
  pmc.intr = intr;
  return true;
}

/** pmc_is_event_allowed (check_pmu_event_filter before 2025): the VM's filter, if any. */
export function pmc_is_event_allowed(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  return check_pmu_event_filter(vcpu, pmc);
}

/** reprogram_counter: pause, then resume the same event or create a new one. */
export function reprogram_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const ops = vcpu.ops;
  vcpu.cost.reprograms++;
  const emulateOverflow = ops.pmc_pause_counter(vcpu, pmc);
  if (!pmc_is_globally_enabled(vcpu, pmc) || !pmc_is_locally_enabled(vcpu, pmc) || !ops.pmc_is_event_allowed(vcpu, pmc))
    return true; // the event stays paused, not released
  if (emulateOverflow) ops.__kvm_perf_overflow(vcpu, pmc, false);

  const { eventsel, config } = pmc_eventsel(vcpu, pmc);
  if (pmc.current_config === config && ops.pmc_resume_counter(vcpu, pmc)) return true;
  ops.pmc_release_perf_event(vcpu, pmc);
  pmc.current_config = config;
  return pmc_create_event(vcpu, pmc, eventsel);
}

/**
 * reprogram_counter's middle: the selector a PMC programs (a fixed counter's from its
 * FIXED_CTR_CTRL field) and the config that decides whether its event can be reused.
 */
export function pmc_eventsel(vcpu: KvmVcpuState, pmc: KvmPmc): { eventsel: bigint; config: bigint } {
  if (pmc.type !== 'fixed') return { eventsel: pmc.eventsel, config: pmc.eventsel };
  const ctrl = fixed_ctrl_field(vcpu.pmu.fixed_ctr_ctrl, pmc.idx - KVM_FIXED_PMC_BASE_IDX);
  let eventsel = pmc.eventsel;
  if (ctrl & 1) eventsel |= ARCH_PERFMON_EVENTSEL_OS;
  if (ctrl & 2) eventsel |= ARCH_PERFMON_EVENTSEL_USR;
  if (ctrl & 8) eventsel |= ARCH_PERFMON_EVENTSEL_INT;
  return { eventsel, config: BigInt(ctrl) };
}

/** reprogram_counter's tail: pmc_reprogram_counter with the selector's exclusions and INT. */
export function pmc_create_event(vcpu: KvmVcpuState, pmc: KvmPmc, eventsel: bigint): boolean {
  return vcpu.ops.pmc_reprogram_counter(
    vcpu,
    pmc,
    eventsel & vcpu.pmu.raw_event_mask,
    (eventsel & ARCH_PERFMON_EVENTSEL_USR) === 0n,
    (eventsel & ARCH_PERFMON_EVENTSEL_OS) === 0n,
    (eventsel & ARCH_PERFMON_EVENTSEL_INT) !== 0n,
  );
}

/** __kvm_perf_overflow: status bit, and a PMI request if the counter interrupts. */
export function __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, _inPmi: boolean): void {
  vcpu.pmu.global_status |= bit(pmc.idx);
  if (pmc.intr) vcpu.requests.add('PMI');
}

/** kvm_perf_overflow: perf's overflow handler, in host NMI context. */
export function kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  const b = bit(pmc.idx);
  // Ignore asynchronous overflows of counters already queued for reprogramming.
  if ((vcpu.pmu.reprogram_pmi & b) !== 0n) return;
  vcpu.pmu.reprogram_pmi |= b;
  vcpu.ops.__kvm_perf_overflow(vcpu, pmc, true);
  vcpu.requests.add('PMU');
}

/** kvm_pmu_handle_event: KVM_REQ_PMU before VM-entry; failures retry at the next request. */
export function kvm_pmu_handle_event(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  const snapshot = pmu.reprogram_pmi;
  pmu.reprogram_pmi &= ~snapshot;
  for (const pmc of validPmcs(pmu)) {
    if ((snapshot & bit(pmc.idx)) === 0n) continue;
    if (!vcpu.ops.reprogram_counter(vcpu, pmc)) pmu.reprogram_pmi |= bit(pmc.idx); // retried, no new request
  }
  if (pmu.need_cleanup) vcpu.ops.kvm_pmu_cleanup(vcpu);
  for (const pmc of validPmcs(pmu)) if ((snapshot & bit(pmc.idx)) !== 0n) kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
}

/** kvm_pmu_incr_counter, perf-based: an emulated event, folded in at the reprogram it requests. */
export function kvm_pmu_incr_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  pmc.emulated_counter += 1n;
  kvm_pmu_request_counter_reprogram(vcpu, pmc);
}

/** kvm_pmu_set_msr: the pmc_in_use bookkeeping, then the shared dispatch (no write_global_ctrl: not mediated). */
export function kvm_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
  // Any write to a counter's MSR keeps its perf event alive across lazy cleanup.
  const pmcIdx = msrToPmcIdx(vcpu, msr);
  if (pmcIdx !== null) vcpu.pmu.pmc_in_use |= bit(pmcIdx);
  return common_kvm_pmu_set_msr(vcpu, msr, data, hostInitiated);
}

/** intel_msr_idx_to_pmc, for the pmc_in_use bookkeeping of kvm_pmu_set_msr: not the IA32_PMCx aliases. */
function msrToPmcIdx(vcpu: KvmVcpuState, msr: number): number | null {
  const pmu = vcpu.pmu;
  for (const base of [MSR_IA32_PERFCTR0, MSR_P6_EVNTSEL0]) {
    const i = msr - base;
    if (i >= 0 && i < pmu.nr_arch_gp_counters) return i;
  }
  const f = msr - MSR_CORE_PERF_FIXED_CTR0;
  if (f >= 0 && f < pmu.nr_arch_fixed_counters) return KVM_FIXED_PMC_BASE_IDX + f;
  return null;
}

/** kvm_pmu_reset: stop every counter and zero the architectural state. */
export function kvm_pmu_reset(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.need_cleanup = false;
  pmu.reprogram_pmi = 0n;
  for (const pmc of validPmcs(pmu)) {
    vcpu.ops.pmc_stop_counter(vcpu, pmc);
    pmc.counter = 0n;
    pmc.emulated_counter = 0n;
    if (pmc.type === 'gp') pmc.eventsel = 0n;
  }
  pmu.fixed_ctr_ctrl = 0n;
  pmu.global_ctrl = 0n;
  pmu.global_status = 0n;
  vcpu.ops.intel_pmu_reset(vcpu);
}

/** kvm_pmu_refresh: before the first KVM_RUN only; reset, then derive from guest CPUID. */
export function kvm_pmu_refresh(vcpu: KvmVcpuState): void {
  if (vcpu.hasRun) throw new Error('KVM_BUG_ON: kvm_pmu_refresh after the first KVM_RUN');
  vcpu.ops.kvm_pmu_reset(vcpu);
  const pmu = vcpu.pmu;
  kvm_pmu_refresh_defaults(pmu);
  if (!vcpu.kvm.enable_pmu) return; // the module's enable_pmu, or KVM_PMU_CAP_DISABLE
  vcpu.ops.intel_pmu_refresh(vcpu);
  // de120e1d692d: the architectural RESET value of GLOBAL_CTRL.
  if (pmu.nr_arch_gp_counters > 0 && kvm_pmu_has_perf_global_ctrl(pmu))
    pmu.global_ctrl = lowMask(pmu.nr_arch_gp_counters);
  kvm_pmu_refresh_valid_pmcs(pmu);
}

/** kvm_pmu_cleanup: lazy release of events the guest stopped using since the last reschedule. */
export function kvm_pmu_cleanup(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  pmu.need_cleanup = false;
  const unused = pmu.all_valid_pmc_idx & ~pmu.pmc_in_use;
  for (const pmc of validPmcs(pmu)) {
    if ((unused & bit(pmc.idx)) === 0n) continue;
    if (pmc.perf_event !== null && !pmc_is_locally_enabled(vcpu, pmc)) vcpu.ops.pmc_stop_counter(vcpu, pmc);
  }
  vcpu.ops.intel_pmu_cleanup(vcpu);
  pmu.pmc_in_use = 0n;
}
