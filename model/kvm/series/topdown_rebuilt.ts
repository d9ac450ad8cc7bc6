/**
 * Like Xu's earlier proposal, as posted: "[PATCH RFC 0/8] KVM: x86/pmu: Enable Fixed Counter3 and Topdown Perf
 * Metrics" (2022-12-12; the [3] seed 002 improves on; mechanics in series.md §2). FIXED_CTR3 (SLOTS) is exposed, and
 * when the guest starts FC3 and PERF_METRICS from zero with GLOBAL_CTRL bit 48 set, FC3's perf event becomes a group:
 * the slots event leading one perf metric event per PERF_METRICS byte (INTEL_TD_METRIC_RETIRING + 0x100·i). Host perf
 * turns each hardware byte into slots (a multiplication, icl_get_metrics_event_value); KVM turns the counts back
 * into bytes at each read of FC3 (a division, pmu_read_perf_metrics) and keeps them in pmu->perf_metrics.
 *
 * Built on today's perf-based vPMU (EMULATED_OPS); every replaced function names the patch it ports ("patch N/8").
 */

import { type Access, gp, ok } from '../../hw/access.js';
import { bit, lowMask } from '../../hw/bits.js';
import { PERF_CAP_PERF_METRICS } from '../../hw/msr/capabilities.js';
import { MSR_PERF_METRICS } from '../../hw/msr/topdown.js';
import { GLOBAL_STATUS_PERF_METRICS_OVF_BIT } from '../../hw/msr/global.js';
import { MSR_CORE_PERF_FIXED_CTR0 } from '../../hw/msr/counters.js';
import type { HostKernel } from '../../host/perf.js';
import { INTEL_TD_METRIC_RETIRING, num_topdown_events } from '../../host/schedule.js';
import { attr, type PerfEvent } from '../../host/types.js';
import {
  get_fixed_pmc,
  kvm_pmu_recalc_pmc_emulation,
  pmc_is_globally_enabled,
  pmc_is_locally_enabled,
  validPmcs,
} from '../common/pmu.h.js';
import { vcpu_get_perf_capabilities } from '../common/pmu_intel.js';
import { EMULATED_OPS, type EmulatedOps } from '../emulated/ops.js';
import {
  INTEL_PMC_IDX_FIXED_SLOTS,
  kvm_get_msr_index_list,
  kvm_init_pmu_capability,
  kvm_pmu_init_with_slots,
} from './fixed_ctr3.js';
import type { KvmPmc, KvmPmu, KvmVcpuState } from '../emulated/state.js';
import type { VmxPerfCaps } from '../emulated/vmx.js';

/** INTEL_PERF_METRICS_IDX (patch 8/8): GLOBAL_CTRL_EN_PERF_METRICS, the status bit of a metric byte's wrap. */
const INTEL_PERF_METRICS_IDX = GLOBAL_STATUS_PERF_METRICS_OVF_BIT;
/** RDPMC ECX bit 29 (INTEL_PMC_FIXED_RDPMC_METRICS) as a type: ECX[31:16] = 0x2000. */
const RDPMC_METRICS_TYPE = 0x2000;

/** struct kvm_pmc with patch 7/8's grouped events: perf_events[1..] are the metric events. */
export interface TopdownRebuiltPmc extends KvmPmc {
  /** 1, or 1 + nr_perf_metrics for FC3 in topdown mode. */
  max_nr_events: number;
  /** perf_events[1..max_nr_events); perf_events[0] is perf_event, the slots leader. */
  metric_events: PerfEvent[];
}

/** struct kvm_pmu with patch 8/8's fields. */
export interface TopdownRebuiltPmu extends KvmPmu {
  nr_perf_metrics: number;
  perf_metrics: bigint;
  perf_metrics_mask: bigint;
  metric_event_ovf: boolean;
}

const td = (pmc: KvmPmc): TopdownRebuiltPmc => pmc as TopdownRebuiltPmc;
const tdPmu = (vcpu: KvmVcpuState): TopdownRebuiltPmu => vcpu.pmu as TopdownRebuiltPmu;

// ---------------------------------------------------------------- pmu.c

/** kvm_pmu_init + intel_pmu_init with patches 5/8 and 7/8: FC3 counts the slots event. */
function kvm_pmu_init(vcpu: KvmVcpuState): void {
  kvm_pmu_init_with_slots(vcpu, { max_nr_events: 1, metric_events: [] });
  Object.assign(vcpu.pmu, { nr_perf_metrics: 0, perf_metrics: 0n, perf_metrics_mask: ~0n, metric_event_ovf: false });
}

/** pmc_support_perf_metrics (patch 8/8): FC3. */
function pmc_support_perf_metrics(pmc: KvmPmc): boolean {
  return pmc.idx === INTEL_PMC_IDX_FIXED_SLOTS;
}

/**
 * perf_metrics_is_enabled (patch 8/8): topdown mode when the guest started PERF_METRICS and FC3 from 0, FC3 is enabled,
 * and GLOBAL_CTRL bit 48 is set.
 */
function perf_metrics_is_enabled(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  const pmu = tdPmu(vcpu);
  return (
    pmu.nr_perf_metrics > 0 &&
    pmu.perf_metrics === 0n &&
    pmc.counter === 0n &&
    pmc_support_perf_metrics(pmc) &&
    pmc_is_locally_enabled(vcpu, pmc) &&
    pmc_is_globally_enabled(vcpu, pmc) &&
    (pmu.global_ctrl & bit(INTEL_PERF_METRICS_IDX)) !== 0n
  );
}

/**
 * pmu_read_perf_metrics (patch 8/8): each metric byte becomes (old + floor(255 · m / S) + 1) mod 256, m the metric
 * event's count and S the slots leader's (both since the group was created); a byte below its old value is a wrap,
 * reported as GLOBAL_STATUS bit 48.
 */
export function pmu_read_perf_metrics(vcpu: KvmVcpuState, pmc: KvmPmc, slots: bigint): void {
  const pmu = tdPmu(vcpu);
  let v = pmu.perf_metrics;
  td(pmc).metric_events.forEach((ev, i) => {
    vcpu.cost.perfCalls++;
    const m = vcpu.host.perf_event_read_value(ev);
    const shift = BigInt(8 * i);
    const old = (v >> shift) & 0xffn;
    const byte = (old + (m * 0xffn) / slots + 1n) & 0xffn; // mul_u64_u64_div_u64(delta, 0xff, slots) + 1
    if (byte < old) pmu.metric_event_ovf = true;
    v = (v & ~(0xffn << shift)) | (byte << shift);
  });
  pmu.perf_metrics = v;
  pmu.pmc_in_use |= bit(INTEL_PERF_METRICS_IDX); // aliases FC3 in intel_pmc_idx_to_pmc, outside all_valid_pmc_idx
  if (pmu.metric_event_ovf) {
    vcpu.ops.__kvm_perf_overflow(vcpu, pmc, false);
    pmu.metric_event_ovf = false;
  }
}

/**
 * kvm_pmu_handle_event, today's, reaching each set bit through patch 8/8's intel_pmc_idx_to_pmc, where
 * INTEL_PERF_METRICS_IDX names FC3: a GLOBAL_CTRL write that flips bit 48 reprograms FC3, deciding topdown mode again.
 */
function kvm_pmu_handle_event(vcpu: KvmVcpuState): void {
  const pmu = vcpu.pmu;
  const snapshot = pmu.reprogram_pmi;
  pmu.reprogram_pmi &= ~snapshot;
  const metrics = (snapshot & bit(INTEL_PERF_METRICS_IDX)) !== 0n;
  const pmcs = validPmcs(pmu).filter((p) => (snapshot & bit(p.idx)) !== 0n || (metrics && pmc_support_perf_metrics(p)));
  for (const pmc of pmcs) if (!vcpu.ops.reprogram_counter(vcpu, pmc)) pmu.reprogram_pmi |= bit(pmc.idx); // retried, no new request
  if (pmu.need_cleanup) vcpu.ops.kvm_pmu_cleanup(vcpu);
  for (const pmc of pmcs) kvm_pmu_recalc_pmc_emulation(vcpu, pmc);
}

/** pmc_read_counter, out of line in patch 8/8: FC3's leader delta folds the metric events into PERF_METRICS first. */
function pmc_read_counter(vcpu: KvmVcpuState, pmc: KvmPmc): bigint {
  const p = td(pmc);
  if (p.perf_event === null || p.is_paused || !pmc_support_perf_metrics(pmc) || p.metric_events.length === 0)
    return EMULATED_OPS.pmc_read_counter(vcpu, pmc);
  vcpu.cost.perfCalls++;
  const delta = vcpu.host.perf_event_read_value(p.perf_event);
  if (delta !== 0n) pmu_read_perf_metrics(vcpu, pmc, delta);
  return (p.counter + p.emulated_counter + delta) & vcpu.pmu.counter_bitmask_fixed;
}

/** pmc_reprogram_counter with patches 7/8 and 8/8: in topdown mode the slots leader and nr_perf_metrics metric events. */
function pmc_reprogram_counter(
  vcpu: KvmVcpuState,
  pmc: KvmPmc,
  config: bigint,
  excludeUser: boolean,
  excludeKernel: boolean,
  intr: boolean,
): boolean {
  const p = td(pmc);
  if (!perf_metrics_is_enabled(vcpu, pmc)) {
    p.max_nr_events = 1;
    return EMULATED_OPS.pmc_reprogram_counter(vcpu, pmc, config, excludeUser, excludeKernel, intr);
  }
  const n = tdPmu(vcpu).nr_perf_metrics;
  const base = { exclude_host: true, exclude_user: excludeUser, exclude_kernel: excludeKernel, sample_period: 0n };
  const created: PerfEvent[] = [];
  for (let i = 0; i <= n; i++) {
    vcpu.cost.perfCreates++;
    const ev = vcpu.host.perf_event_create_kernel_counter(
      attr({
        ...base,
        config: i === 0 ? config : INTEL_TD_METRIC_RETIRING + 0x100n * BigInt(i - 1),
        pinned: i === 0,
        disabled: true,
      }),
      { task: vcpu.task },
      () => vcpu.ops.kvm_perf_overflow(vcpu, pmc),
      i === 0 ? null : created[0],
    );
    if ('error' in ev) {
      for (const c of created) {
        vcpu.cost.perfReleases++;
        vcpu.host.perf_event_release_kernel(c);
      }
      return false;
    }
    created.push(ev);
  }
  p.perf_event = created[0]!;
  p.metric_events = created.slice(1);
  p.max_nr_events = n + 1;
  vcpu.pmu.event_count++;
  p.is_paused = false;
  p.intr = true; // intr || pebs || topdown
  for (const ev of created) {
    vcpu.cost.perfCalls++;
    vcpu.host.perf_event_enable(ev);
  }
  return true;
}

/** pmc_pause_counter with patch 7/8: a group is not paused but stopped (read, folding the metrics, and released). */
function pmc_pause_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (td(pmc).max_nr_events === 1 || pmc.perf_event === null) return EMULATED_OPS.pmc_pause_counter(vcpu, pmc);
  vcpu.ops.pmc_stop_counter(vcpu, pmc);
  pmc.is_paused = true;
  return false;
}

/** pmc_resume_counter with patch 8/8: no reuse when the topdown decision differs from the event's shape. */
function pmc_resume_counter(vcpu: KvmVcpuState, pmc: KvmPmc): boolean {
  if (perf_metrics_is_enabled(vcpu, pmc) === (td(pmc).max_nr_events === 1)) return false;
  return EMULATED_OPS.pmc_resume_counter(vcpu, pmc);
}

/** pmc_release_perf_event with patch 7/8: every event of the group goes, max_nr_events back to 1. */
function pmc_release_perf_event(vcpu: KvmVcpuState, pmc: KvmPmc): void {
  const p = td(pmc);
  const members = p.metric_events;
  EMULATED_OPS.pmc_release_perf_event(vcpu, pmc);
  for (const ev of members) {
    vcpu.cost.perfReleases++;
    vcpu.host.perf_event_release_kernel(ev);
  }
  p.metric_events = [];
  p.max_nr_events = 1;
}

/** __kvm_perf_overflow with patch 8/8: a metric byte's wrap sets GLOBAL_STATUS bit 48 instead of FC3's bit. */
function __kvm_perf_overflow(vcpu: KvmVcpuState, pmc: KvmPmc, inPmi: boolean): void {
  if (!tdPmu(vcpu).metric_event_ovf) return EMULATED_OPS.__kvm_perf_overflow(vcpu, pmc, inPmi);
  vcpu.pmu.global_status |= bit(INTEL_PERF_METRICS_IDX);
  if (pmc.intr) vcpu.requests.add('PMI');
}

/**
 * kvm_pmu_rdpmc with patch 8/8: after the usual checks (the CR4.PCE check comes first), ECX bit 29 reads
 * pmu->perf_metrics once FC3 is read, folding the metric events.
 */
function kvm_pmu_rdpmc(vcpu: KvmVcpuState, ecx: number, cpl: number): Access {
  const a = EMULATED_OPS.kvm_pmu_rdpmc(vcpu, ecx, cpl);
  if (!a.ok || ecx >>> 16 !== RDPMC_METRICS_TYPE) return a;
  return ok(tdPmu(vcpu).perf_metrics);
}

// ---------------------------------------------------------------- vmx/pmu_intel.c

/** The guest's PERF_CAPABILITIES.PERF_METRICS (patch 8/8). */
function perf_metrics_advertised(vcpu: KvmVcpuState): boolean {
  return (vcpu_get_perf_capabilities(vcpu) & PERF_CAP_PERF_METRICS) !== 0n;
}

/** intel_rdpmc_ecx_to_pmc with patch 8/8: ECX bit 29 is FC3 for any index, with PERF_METRICS advertised. */
function intel_rdpmc_ecx_to_pmc(vcpu: KvmVcpuState, ecx: number): { pmc: KvmPmc; mask: bigint } | null {
  if (ecx >>> 16 !== RDPMC_METRICS_TYPE) return EMULATED_OPS.intel_rdpmc_ecx_to_pmc(vcpu, ecx);
  const fc3 = get_fixed_pmc(vcpu, MSR_CORE_PERF_FIXED_CTR0 + 3);
  if (!perf_metrics_advertised(vcpu) || fc3 === undefined) return null;
  return { pmc: fc3, mask: vcpu.pmu.counter_bitmask_fixed };
}

/** intel_pmu_refresh with patch 8/8: nr_perf_metrics and its mask; GLOBAL_CTRL (and OVF_CTRL, STATUS) bit 48. */
function intel_pmu_refresh(vcpu: KvmVcpuState): void {
  EMULATED_OPS.intel_pmu_refresh(vcpu);
  const pmu = tdPmu(vcpu);
  pmu.nr_perf_metrics = 0;
  pmu.perf_metrics_mask = ~0n;
  if (!perf_metrics_advertised(vcpu)) return;
  pmu.nr_perf_metrics = Math.min(8, num_topdown_events(vcpu.host.profile));
  pmu.perf_metrics_mask = ~lowMask(8 * pmu.nr_perf_metrics) & lowMask(64);
  pmu.global_ctrl_rsvd &= ~bit(INTEL_PERF_METRICS_IDX);
  pmu.global_status_rsvd &= ~bit(INTEL_PERF_METRICS_IDX);
}

/** intel_pmu_reset: also pmu->perf_metrics. */
function intel_pmu_reset(vcpu: KvmVcpuState): void {
  EMULATED_OPS.intel_pmu_reset(vcpu);
  tdPmu(vcpu).perf_metrics = 0n;
}

/** intel_is_valid_msr with patch 8/8: PERF_METRICS iff the guest has PERF_CAPABILITIES bit 15 (no version check). */
function intel_is_valid_msr(vcpu: KvmVcpuState, msr: number): boolean {
  if (msr === MSR_PERF_METRICS) return perf_metrics_advertised(vcpu);
  return EMULATED_OPS.intel_is_valid_msr(vcpu, msr);
}

/** intel_pmu_get_msr with patch 8/8: FC3 is read (folding the metrics), then pmu->perf_metrics. */
function intel_pmu_get_msr(vcpu: KvmVcpuState, msr: number, hostInitiated: boolean): Access {
  if (msr !== MSR_PERF_METRICS) return EMULATED_OPS.intel_pmu_get_msr(vcpu, msr, hostInitiated);
  const fc3 = get_fixed_pmc(vcpu, MSR_CORE_PERF_FIXED_CTR0 + 3);
  if (fc3 !== undefined) vcpu.ops.pmc_read_counter(vcpu, fc3);
  return ok(tdPmu(vcpu).perf_metrics);
}

/** intel_pmu_set_msr with patch 8/8: the same value is fine, a byte beyond nr_perf_metrics #GPs, else stored. */
function intel_pmu_set_msr(vcpu: KvmVcpuState, msr: number, data: bigint, hostInitiated: boolean): Access {
  if (msr !== MSR_PERF_METRICS) return EMULATED_OPS.intel_pmu_set_msr(vcpu, msr, data, hostInitiated);
  const pmu = tdPmu(vcpu);
  if (data === pmu.perf_metrics) return ok(data);
  if ((data & pmu.perf_metrics_mask) !== 0n)
    return gp('MSR_PERF_METRICS: bytes beyond nr_perf_metrics (perf_metrics_mask)', data & pmu.perf_metrics_mask);
  pmu.perf_metrics = data;
  return ok(data);
}

// ---------------------------------------------------------------- vmx.c, x86.c

/** vmx_get_perf_capabilities with patch 8/8: PERF_METRICS iff perf exports topdown events (num_topdown_events). */
function vmx_get_perf_capabilities(host: HostKernel, enablePmu: boolean): VmxPerfCaps {
  const c = EMULATED_OPS.vmx_get_perf_capabilities(host, enablePmu);
  if (!enablePmu || num_topdown_events(host.profile) === 0) return c;
  return { ...c, supportedPerfCap: c.supportedPerfCap | PERF_CAP_PERF_METRICS };
}

/** The series as a design: today's record with the functions patches 5/8–8/8 change (host perf: upstream's topdown). */
export const TOPDOWN_REBUILT_OPS: EmulatedOps = {
  ...EMULATED_OPS,
  kvm_init_pmu_capability,
  kvm_pmu_init,
  kvm_pmu_handle_event,
  kvm_pmu_rdpmc,
  pmc_read_counter,
  pmc_reprogram_counter,
  pmc_pause_counter,
  pmc_resume_counter,
  pmc_release_perf_event,
  __kvm_perf_overflow,
  intel_rdpmc_ecx_to_pmc,
  intel_pmu_refresh,
  intel_pmu_reset,
  intel_is_valid_msr,
  intel_pmu_get_msr,
  intel_pmu_set_msr,
  vmx_get_perf_capabilities,
  kvm_get_msr_index_list,
};
