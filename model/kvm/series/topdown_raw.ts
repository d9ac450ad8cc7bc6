/**
 * Seed 002's proposal, as posted: Dapeng Mi, "[RFC PATCH v4 00/13] Enable topdown metrics feature for KVM vPMU"
 * (2023-09-27; seed 002 of docs/references.md; mechanics in series.md §1). FIXED_CTR3 (SLOTS) is exposed; once the
 * guest writes PERF_METRICS, FC3's perf event becomes a group: the slots event leading a virtual metrics event
 * (INTEL_FIXED_VMETRICS_EVENT) that takes GLOBAL_CTRL bit 48 for the guest, whose count host perf overwrites with
 * the raw PERF_METRICS at every topdown update, and which KVM hands to the guest as PERF_METRICS when it pauses the
 * group. A PERF_METRICS overflow sets guest GLOBAL_STATUS bit 48; PERF_CAPABILITIES.PERF_METRICS is exposed.
 *
 * Built on today's perf-based vPMU (EMULATED_OPS); every replaced function names the patch it ports ("patch N/13").
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit } from '../../hw/bits.js';
import type { Cpu } from '../../hw/cpu.js';
import type { Profile } from '../../hw/profile.js';
import { PERF_CAP_PERF_METRICS } from '../../hw/msr/capabilities.js';
import { MSR_PERF_METRICS } from '../../hw/msr/topdown.js';
import { GLOBAL_STATUS_PERF_METRICS_OVF_BIT } from '../../hw/msr/global.js';
import { INTEL_PMC_FIXED_RDPMC_METRICS, MSR_CORE_PERF_FIXED_CTR0 } from '../../hw/msr/counters.js';
import { HOST_PERF_OPS, type HostKernel, type HostPerfOps, type TopdownEvent } from '../../host/perf.js';
import { type Constraint, IDX_METRIC_BASE, IDX_FIXED_SLOTS } from '../../host/schedule.js';
import { attr, type PerfEvent, type PerfSample } from '../../host/types.js';
import { get_fixed_pmc } from '../common/pmu.h.js';
import { vcpu_get_perf_capabilities } from '../common/pmu_intel.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import {
  INTEL_PMC_IDX_FIXED_SLOTS,
  kvm_get_msr_index_list,
  kvm_init_pmu_capability,
  kvm_pmu_init_with_slots,
} from './fixed_ctr3.js';
import type { KvmPmc, KvmVcpuState } from '../emulated/state.js';
import type { VmxPerfCaps } from '../emulated/vmx.js';

/** INTEL_FIXED_VMETRICS_EVENT (patch 07/13): the guest's virtual metrics event. */
export const INTEL_FIXED_VMETRICS_EVENT = 0x1100n;
/** KVM_TD_EVENTS_MAX (patch 10/13): the slots leader and the metrics member. */
const KVM_TD_EVENTS_MAX = 2;

/** struct kvm_pmc with patch 10/13's fields: perf_events[1] (the metrics member), max_nr_events, extra_config. */
export interface TopdownRawPmc extends KvmPmc {
  /** 1 normally; 2 once a PERF_METRICS write put FC3 in topdown mode. */
  max_nr_events: number;
  /** The guest's PERF_METRICS, raw: what it wrote, or the member's count at the last pause. */
  extra_config: bigint;
  /** perf_events[KVM_TD_METRICS]; perf_events[0] is perf_event, the slots leader. */
  metrics_event: PerfEvent | null;
}

const td = (pmc: KvmPmc): TopdownRawPmc => pmc as TopdownRawPmc;

/** The record with patch 12/13's metrics_of on the overflow path. */
export interface TopdownRawOps extends EmulatedOps {
  kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, metrics_of?: boolean): void;
  __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, inPmi: boolean, metrics_of?: boolean): void;
}

// EmulatedOps is assignable: its overflow functions take fewer parameters, the extra one is patch 12/13's.
const ops = (vcpu: KvmVcpuState): TopdownRawOps => vcpu.ops;

// ---------------------------------------------------------------- pmu.c

/** kvm_pmu_init + intel_pmu_init with patches 02/13 and 10/13: FC3 counts the slots pseudo-event. */
function kvm_pmu_init(vcpu: KvmVcpuState): void {
  kvm_pmu_init_with_slots(vcpu, { max_nr_events: 1, extra_config: 0n, metrics_event: null });
}

/** pmc_is_topdown_metrics_used (patch 11/13): FC3 in topdown mode. */
function pmc_is_topdown_metrics_used(pmc: KvmPmc): boolean {
  return pmc.idx === INTEL_PMC_IDX_FIXED_SLOTS && td(pmc).max_nr_events === KVM_TD_EVENTS_MAX;
}

/** pmc_is_topdown_metrics_active (patch 11/13): and its group exists. */
function pmc_is_topdown_metrics_active(pmc: KvmPmc): boolean {
  return pmc_is_topdown_metrics_used(pmc) && td(pmc).metrics_event !== null;
}

/** pmc_update_topdown_metrics (patch 11/13): push {counter, extra_config} to the group's events. */
function pmc_update_topdown_metrics(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  const p = td(pmc);
  for (const ev of [p.perf_event, p.metrics_event]) {
    if (ev === null) continue;
    vcpu.cost.perfCalls++;
    vcpu.host.perf_event_topdown_metrics(ev, p.counter, p.extra_config);
  }
}

/** pmc_reprogram_counter with patches 10/13 and 11/13: FC3 in topdown mode creates the slots+vmetrics group. */
function pmc_reprogram_counter(
  vcpu: KvmVcpuState,
  pmc: KvmPmc,
  config: bigint,
  excludeUser: boolean,
  excludeKernel: boolean,
  intr: boolean,
): boolean {
  if (!pmc_is_topdown_metrics_used(pmc))
    return EMULATED_OPS.pmc_reprogram_counter(vcpu, pmc, config, excludeUser, excludeKernel, intr);
  const p = td(pmc);
  const base = { exclude_host: true, exclude_user: excludeUser, exclude_kernel: excludeKernel, sample_period: 0n };
  vcpu.cost.perfCreates++;
  // pmc_setup_td_metrics_events_attr: the leader counts (sample_period 0) and is pinned.
  // A group is created disabled and enabled whole, so that the leader starts as a topdown event.
  const leader = vcpu.host.perf_event_create_kernel_counter(
    attr({ ...base, config, pinned: true, disabled: true }),
    { task: vcpu.task },
    () => ops(vcpu).kvm_perf_overflow(vcpu, pmc, false),
  );
  if ('error' in leader) return false;
  vcpu.cost.perfCreates++;
  // "Only group leader event can be pinned."
  const member = vcpu.host.perf_event_create_kernel_counter(
    attr({ ...base, config: INTEL_FIXED_VMETRICS_EVENT, pinned: false }),
    { task: vcpu.task },
    () => ops(vcpu).kvm_perf_overflow(vcpu, pmc, true),
    leader,
  );
  if ('error' in member) {
    vcpu.cost.perfReleases++;
    vcpu.host.perf_event_release_kernel(leader); // a member failed: release the ones created
    return false;
  }
  p.perf_event = leader;
  p.metrics_event = member;
  vcpu.pmu.event_count++;
  p.is_paused = false;
  p.intr = intr;
  if (pmc_is_topdown_metrics_active(pmc)) {
    pmc_update_topdown_metrics(vcpu, pmc);
    p.intr = true; // "KVM need to inject PMI for PERF_METRICS overflow"
  }
  for (const ev of [leader, member]) {
    vcpu.cost.perfCalls++;
    vcpu.host.perf_event_enable(ev);
  }
  return true;
}

/** pmc_pause_counter with patch 11/13: the leader's count into counter, the member's (raw PERF_METRICS) into extra_config. */
function pmc_pause_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const p = td(pmc);
  const wasRunning = p.perf_event !== null && !p.is_paused;
  const wrapped = EMULATED_OPS.pmc_pause_counter(vcpu, pmc);
  if (wasRunning && p.metrics_event !== null) {
    vcpu.cost.perfCalls++;
    p.extra_config = vcpu.host.perf_event_pause(p.metrics_event, true);
  }
  return wrapped;
}

/** pmc_resume_counter with patch 10/13: every event of perf_events[0, max_nr_events), no check of the group's shape. */
function pmc_resume_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (!EMULATED_OPS.pmc_resume_counter(vcpu, pmc)) return false;
  const p = td(pmc);
  if (p.max_nr_events > 1 && p.metrics_event !== null) {
    vcpu.cost.perfCalls++;
    vcpu.host.perf_event_enable(p.metrics_event);
  }
  return true;
}

/** pmc_release_perf_event(pmc, false) with patch 10/13: every event goes; max_nr_events and extra_config stay. */
function pmc_release_perf_event(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  const p = td(pmc);
  const member = p.metrics_event;
  EMULATED_OPS.pmc_release_perf_event(vcpu, pmc);
  if (member === null) return;
  vcpu.cost.perfReleases++;
  vcpu.host.perf_event_release_kernel(member);
  p.metrics_event = null;
}

/** pmc_stop_counter → pmc_release_perf_event(pmc, true) (patch 10/13): the reset drops topdown mode and PERF_METRICS. */
function pmc_stop_counter(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  if (pmc.perf_event === null) return;
  pmc.counter = vcpu.ops.pmc_read_counter(vcpu, pmc);
  vcpu.ops.pmc_release_perf_event(vcpu, pmc);
  const p = td(pmc);
  p.extra_config = 0n;
  p.max_nr_events = 1;
}

/** __kvm_perf_overflow with patch 12/13: a metrics overflow sets GLOBAL_STATUS bit 48 instead of the counter's bit. */
function __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, _inPmi: boolean, metrics_of = false): void {
  vcpu.pmu.global_status |= bit(metrics_of ? GLOBAL_STATUS_PERF_METRICS_OVF_BIT : pmc.idx);
  if (pmc.intr) vcpu.requests.add('PMI');
}

/** kvm_perf_overflow with patch 12/13: metrics_of = is_vmetrics_event, still gated on FC3's reprogram_pmi bit. */
function kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, metrics_of = false): void {
  const b = bit(pmc.idx);
  if ((vcpu.pmu.reprogram_pmi & b) !== 0n) return; // FC3 and metrics overflows coalesce here
  vcpu.pmu.reprogram_pmi |= b;
  ops(vcpu).__kvm_perf_overflow(vcpu, pmc, true, metrics_of);
  vcpu.requests.add('PMU');
}

/**
 * kvm_pmu_rdpmc with patch 11/13: ECX bit 29 reads extra_config right after the version check, #GP only without FC3
 * (no capability or index check). The CPL/CR4.PCE #GP, which the early return skips, has priority over the RDPMC
 * VM-exit on VMX (privilege-based faults come before VM exits), so the skip is invisible: the check stays first here.
 */
function kvm_pmu_rdpmc(vcpu: KvmVcpuState, ecx: number, cpl: number): Access {
  if (vcpu.pmu.version === 0 || (ecx & INTEL_PMC_FIXED_RDPMC_METRICS) === 0 || (!vcpu.cr4Pce && cpl !== 0))
    return EMULATED_OPS.kvm_pmu_rdpmc(vcpu, ecx, cpl);
  const fc3 = get_fixed_pmc(vcpu, MSR_CORE_PERF_FIXED_CTR0 + 3);
  if (fc3 === undefined) return gp(`RDPMC 0x${ecx.toString(16)}: PERF_METRICS without FIXED_CTR3`);
  return ok(td(fc3).extra_config); // kvm_pmu_read_perf_metrics
}

// ---------------------------------------------------------------- vmx/pmu_intel.c

/** intel_pmu_metrics_is_enabled (patch 11/13): guest PERF_CAPABILITIES.PERF_METRICS. */
function intel_pmu_metrics_is_enabled(vcpu: KvmVcpuState): boolean {
  return (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_PERF_METRICS) !== 0n;
}

/** intel_pmu_refresh with patch 13/13: GLOBAL_CTRL bit 48 unreserved, and with it STATUS and OVF_CTRL bit 48. */
function intel_pmu_refresh(vcpu: KvmVcpuState): void {
  EMULATED_OPS.intel_pmu_refresh(vcpu);
  if (vcpu.pmu.version < 2 || !intel_pmu_metrics_is_enabled(vcpu)) return;
  vcpu.pmu.global_ctrl_rsvd &= ~bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT);
  vcpu.pmu.global_status_rsvd &= ~bit(GLOBAL_STATUS_PERF_METRICS_OVF_BIT);
}

/** intel_is_valid_msr with patch 11/13: PERF_METRICS iff the guest has PERF_CAPABILITIES bit 15 and version > 1. */
function intel_is_valid_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (msr === MSR_PERF_METRICS) return intel_pmu_metrics_is_enabled(vcpu) && vcpu.pmu.version > 1;
  return EMULATED_OPS.intel_is_valid_msr(vcpu, msr);
}

/**
 * intel_pmu_handle_perf_metrics_access (patch 11/13): reads give extra_config; writes store all 64 bits, push them to
 * an active group, else only arm topdown mode (no reprogram). #GP without FC3. `write` null is a read.
 */
function intel_pmu_handle_perf_metrics_access(vcpu: KvmVcpuState, write: bigint | null): Access {
  const fc3 = get_fixed_pmc(vcpu, MSR_CORE_PERF_FIXED_CTR0 + 3);
  if (fc3 === undefined) return gp('MSR_PERF_METRICS: the vCPU has no FIXED_CTR3');
  const p = td(fc3);
  if (write === null) return ok(p.extra_config);
  p.extra_config = write;
  if (pmc_is_topdown_metrics_active(fc3)) pmc_update_topdown_metrics(vcpu, fc3);
  else p.max_nr_events = KVM_TD_EVENTS_MAX;
  return ok(write);
}

/** intel_pmu_get_msr with patch 11/13. */
function intel_pmu_get_msr(vcpu: KvmVcpuState, msr: number, hostInitiated: boolean): Access {
  if (msr === MSR_PERF_METRICS) return intel_pmu_handle_perf_metrics_access(vcpu, null);
  return EMULATED_OPS.intel_pmu_get_msr(vcpu, msr, hostInitiated);
}

/** intel_pmu_set_msr with patch 11/13. */
function intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
  if (msr === MSR_PERF_METRICS) return intel_pmu_handle_perf_metrics_access(vcpu, data);
  return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
}

// ---------------------------------------------------------------- vmx.c, x86.c

/** vmx_get_perf_capabilities with patch 13/13: the host's PERF_METRICS bit, no other gate. */
function vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps {
  const c = EMULATED_OPS.vmx_get_perf_capabilities(host, enablePmu);
  if (!enablePmu) return c;
  return { ...c, supportedPerfCap: c.supportedPerfCap | (host.profile.perfCapabilities & PERF_CAP_PERF_METRICS) };
}

// ---------------------------------------------------------------- host perf (patches 07/13, 09/13, 12/13)

/** is_vmetrics_event (patch 09/13). */
function is_vmetrics_event(event: PerfEvent): boolean {
  return event.attr.config === INTEL_FIXED_VMETRICS_EVENT;
}

/** intel_get_event_constraints with patch 07/13: vmetrics_constraint, index 48 only (intel_virt_constraints). */
function intel_get_event_constraints(p: Profile, config: bigint, vlbr: boolean): Constraint | null {
  if (config === INTEL_FIXED_VMETRICS_EVENT && p.perfMetrics) return { mask: 1n << BigInt(IDX_METRIC_BASE), weight: 1 };
  return HOST_PERF_OPS.intel_get_event_constraints(p, config, vlbr);
}

/** __icl_update_topdown_event with patch 09/13: the vmetrics event's count is overwritten with the raw PERF_METRICS. */
function __icl_update_topdown_event(
  event: TopdownEvent,
  slots: bigint,
  metrics: bigint,
  lastSlots: bigint,
  lastMetric: bigint,
): void {
  if (is_vmetrics_event(event))
    event.count = metrics; // __icl_update_vmetrics_event
  else HOST_PERF_OPS.__icl_update_topdown_event(event, slots, metrics, lastSlots, lastMetric);
}

/** icl_set_topdown_event_period with patch 09/13: a slots event restores its saved pair even when it is 0. */
function icl_set_topdown_event_period(hw: Cpu, event: TopdownEvent, maxPeriod: bigint): void {
  if (event.period_left === maxPeriod) {
    HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, MSR_CORE_PERF_FIXED_CTR0 + 3, 0n);
    HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, MSR_PERF_METRICS, 0n);
    event.saved_slots = event.saved_metric = 0n;
  }
  if (event.lastIdx !== IDX_FIXED_SLOTS) return;
  HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, MSR_CORE_PERF_FIXED_CTR0 + 3, event.saved_slots);
  HOST_PERF_OPS.x86_perf_event_set_event_base(hw, event, MSR_PERF_METRICS, event.saved_metric);
}

/** handle_pmi_common with patch 12/13: bit 48 with a vmetrics event at index 48 calls its overflow handler. */
function handle_pmi_common_perf_metrics(
  metricsEvent: TopdownEvent | undefined,
  update: () => void,
  sample: PerfSample,
): void {
  if (metricsEvent !== undefined && is_vmetrics_event(metricsEvent)) metricsEvent.overflow?.(metricsEvent, sample);
  else update();
}

/** Host perf with patches 07–09/13 and 12/13's PMI dispatch. */
export const TOPDOWN_RAW_HOST_OPS: HostPerfOps = {
  ...HOST_PERF_OPS,
  intel_get_event_constraints,
  __icl_update_topdown_event,
  icl_set_topdown_event_period,
  handle_pmi_common_perf_metrics,
};

/** The series as a design: today's record with the functions patches 02, 10–13 change. */
export const TOPDOWN_RAW_OPS: TopdownRawOps = {
  ...EMULATED_OPS,
  kvm_init_pmu_capability,
  kvm_pmu_init,
  kvm_pmu_rdpmc,
  pmc_reprogram_counter,
  pmc_pause_counter,
  pmc_resume_counter,
  pmc_release_perf_event,
  pmc_stop_counter,
  kvm_perf_overflow,
  __kvm_perf_overflow,
  intel_pmu_refresh,
  intel_is_valid_msr,
  intel_pmu_get_msr,
  intel_pmu_set_msr,
  vmx_get_perf_capabilities,
  kvm_get_msr_index_list,
};
