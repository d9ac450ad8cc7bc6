/**
 * Known divergences of Like Xu's topdown proposal (model/kvm/series/topdown_rebuilt.ts: "KVM: x86/pmu: Enable Fixed
 * Counter3 and Topdown Perf Metrics" RFC, 2022) from bare metal, each with the mechanism in the posted patches
 * ("patch N/8") that causes it. They come on top of what its base, today's perf-based vPMU, declares. A program whose
 * first divergence matches none is a finding against the series.
 */

import { type Observation, pmisOf, readValue } from '../../scenarios/observation.js';
import {
  GLOBAL_STATUS_PERF_METRICS_OVF_BIT,
  MSR_CORE_PERF_GLOBAL_STATUS,
  MSR_CORE_PERF_GLOBAL_STATUS_SET,
} from '../../model/hw/msr/global.js';
import type { DivergenceContext, KnownDivergence } from './types.js';
import { EMULATED_EXPECTATIONS } from './emulated.js';
import { EMULATED_INVISIBILITY_EXPECTATIONS } from './emulated_invisibility.js';
import { MSR_CORE_PERF_FIXED_CTR0 } from '../../model/hw/msr/counters.js';
import { MSR_PERF_METRICS } from '../../model/hw/msr/topdown.js';
import { hasMetrics, lastMetricsWrite, metricsWithoutSlots, readsMetrics } from './topdown_raw.js';

const MSR_CORE_PERF_FIXED_CTR3 = MSR_CORE_PERF_FIXED_CTR0 + 3;
const byteOf = (v: bigint, k: number) => (v >> BigInt(8 * k)) & 0xffn;

/**
 * Was FIXED_CTR3 read (RDMSR or RDPMC) since PERF_METRICS was last written? Each such read folds the metric events'
 * counts into PERF_METRICS again, from the group's start.
 */
function foldedSinceWrite(c: DivergenceContext, upTo: Observation): boolean {
  let folded = false;
  for (const h of c.history) {
    if (h === upTo) break;
    if (h.kind === 'wrmsr' && h.target === MSR_PERF_METRICS && h.sut.kind === 'accepted') folded = false;
    if (readsMetricsOrSlots(h)) folded = true;
  }
  return folded;
}

/** A read that folds the metric events into PERF_METRICS: FIXED_CTR3 or PERF_METRICS, by RDMSR or RDPMC. */
const readsMetricsOrSlots = (h: Observation) =>
  h.sut.kind === 'value' &&
  ((h.kind === 'rdmsr' && (h.target === MSR_CORE_PERF_FIXED_CTR3 || h.target === MSR_PERF_METRICS)) ||
    (h.kind === 'rdpmc' && h.target !== null && (h.target >>> 16 === 0x2000 || h.target === 0x4000_0003)));

/** Did the guest write PERF_METRICS after some guest work ran (so while a group may have counted)? */
function metricsWrittenAfterWork(c: DivergenceContext): boolean {
  let worked = false;
  for (const h of c.history) {
    if (h.kind === 'run') worked = true;
    if (worked && h.kind === 'wrmsr' && h.target === MSR_PERF_METRICS && h.sut.kind === 'accepted') return true;
  }
  return false;
}

/** Did PERF_METRICS ever hold a non-zero value written to it (by the guest, or the VMM's KVM_SET_MSRS)? */
function metricsEverWrittenNonZero(c: DivergenceContext): boolean {
  return c.history.some(
    (h) =>
      (h.kind === 'wrmsr' && h.target === MSR_PERF_METRICS && h.sut.kind === 'accepted' && h.value !== 0n) ||
      (h.vmm?.op === 'set-msr' && h.vmm.msr === MSR_PERF_METRICS && h.sut.kind === 'ok' && h.vmm.value !== 0n) ||
      h.vmm?.op === 'save-restore',
  );
}

/**
 * Rebuilt bytes from one fold over the whole period: each floor(255·m/S) + 1 with m ≤ the true share, so ≤ bare metal + 1,
 * taken modulo 256 as the series stores a byte: a metric that took every slot (bare metal's 255) reads 0.
 */
function atMostOneOver(o: Observation, n: number): boolean {
  const sut = readValue(o.sut);
  const bare = readValue(o.oracle);
  if (sut === null || bare === null) return false;
  for (let k = 0; k < n; k++) if (byteOf(sut, k) > byteOf(bare, k) + 1n) return false; // 0 for 255 is within
  return true;
}

const METRICS_OVF = 1n << BigInt(GLOBAL_STATUS_PERF_METRICS_OVF_BIT);

/**
 * A GLOBAL_STATUS read lacking only bit 48, where only FIXED_CTR3's overflow can have set it on bare metal: no write
 * of the bit (STATUS_SET, or the VMM's KVM_SET_MSRS or restore) came before.
 */
function lacksSlotsMetricsOvf(o: Observation, c: DivergenceContext): boolean {
  if (o.kind !== 'rdmsr' || o.target !== MSR_CORE_PERF_GLOBAL_STATUS) return false;
  const sut = readValue(o.sut);
  const bare = readValue(o.oracle);
  if (sut === null || bare === null || (bare & ~sut) !== METRICS_OVF || (sut & ~bare) !== 0n) return false;
  return !c.history.some(
    (h) =>
      (h.kind === 'wrmsr' && h.target === MSR_CORE_PERF_GLOBAL_STATUS_SET && ((h.value ?? 0n) & METRICS_OVF) !== 0n) ||
      (h.vmm?.op === 'set-msr' && h.vmm.msr === MSR_CORE_PERF_GLOBAL_STATUS) ||
      h.vmm?.op === 'save-restore',
  );
}

export const TOPDOWN_REBUILT_DECLARED: readonly KnownDivergence[] = [
  {
    id: 'perf-metrics-without-slots',
    title:
      'KVM_SET_MSRS takes PERF_CAPABILITIES.PERF_METRICS for a vCPU whose CPUID.0AH has no FIXED_CTR3 (SLOTS), a model no CPU has',
    kernelRef:
      'Like Xu RFC patch 8/8, vmx_get_perf_capabilities: MSR_CAP_PERF_METRICS iff kvm_pmu_cap.num_topdown_events, checked against nothing of the vCPU',
    vmm: true,
    matches: metricsWithoutSlots,
  },
  {
    id: 'metrics-held',
    title:
      'PERF_METRICS keeps the value last written while FIXED_CTR3 counts alone: topdown mode needs PERF_METRICS and FIXED_CTR3 both 0 and GLOBAL_CTRL bit 48 set when the counter is programmed, and ends at every pause (the group is destroyed)',
    kernelRef:
      'Like Xu RFC patch 8/8, perf_metrics_is_enabled (perf_metrics == 0, counter == 0, GLOBAL_CTRL bit 48) and patch 7/8, pmc_pause_counter → pmc_stop_counter for a group',
    matches: (o, c) =>
      readsMetrics(o) && hasMetrics(c) && o.sut.kind === 'value' && o.sut.value === (lastMetricsWrite(c) ?? 0n),
  },
  {
    id: 'metrics-rebuilt',
    title:
      "PERF_METRICS is rebuilt from the metric events' counts, floor(255·m/S) + 1 per byte: a true 0 reads 1, a byte whose slots 255 divides reads one over (255 wraps to 0, with no overflow flagged), short periods read low, and a level-1 sum can exceed 255",
    kernelRef:
      'Like Xu RFC patch 8/8, pmu_read_perf_metrics: mul_u64_u64_div_u64(delta, 0xff, slots) + 1 over counts host perf made with icl_get_metrics_event_value (floor(slots·byte/255))',
    matches: (o, c) =>
      readsMetrics(o) &&
      hasMetrics(c) &&
      atMostOneOver(o, c.host.topdownL2 && c.guest.cpuid.model === c.host.model ? 8 : 4),
  },
  {
    id: 'metrics-readded',
    title:
      "every read of FIXED_CTR3 (RDMSR, RDPMC, a PERF_METRICS read) while its group runs adds the group's fractions to the bytes PERF_METRICS holds (folded before, or written while the group ran), so bytes grow with the reads, not with the slots",
    kernelRef:
      'Like Xu RFC patch 8/8, pmc_read_counter: pmu_read_perf_metrics(perf_event_read_value(leader)) with cumulative counts, added to the stored bytes at each read',
    matches: (o, c) =>
      readsMetrics(o) &&
      hasMetrics(c) &&
      o.sut.kind === 'value' &&
      (foldedSinceWrite(c, o) || (lastMetricsWrite(c) ?? 0n) !== 0n),
  },
  {
    id: 'metrics-write-keeps-counts',
    title:
      'a PERF_METRICS write while FIXED_CTR3 counts restarts nothing: the metric events keep their counts, so the next fold adds every slot since the group started to the value written',
    kernelRef:
      'Like Xu RFC patch 8/8, intel_pmu_set_msr(MSR_PERF_METRICS) stores pmu->perf_metrics only; pmu_read_perf_metrics adds the cumulative counts of the group to it',
    matches: (o, c) => readsMetrics(o) && hasMetrics(c) && o.sut.kind === 'value' && metricsWrittenAfterWork(c),
  },
  {
    id: 'metrics-wrap-status',
    title:
      'a rebuilt byte that wraps past 255 at a fold (a read of FIXED_CTR3 or PERF_METRICS, or a pause of the group) sets GLOBAL_STATUS bit 48 and requests a PMI then, where bare metal sets bit 48 only when FIXED_CTR3 overflows',
    kernelRef:
      'Like Xu RFC patch 8/8, pmu_read_perf_metrics: metric_event_ovf → __kvm_perf_overflow(FC3) sets INTEL_PERF_METRICS_IDX, at read time',
    matches: (o, c) =>
      hasMetrics(c) &&
      ((o.kind === 'rdmsr' &&
        o.target === MSR_CORE_PERF_GLOBAL_STATUS &&
        readValue(o.sut) !== null &&
        readValue(o.oracle) !== null &&
        readValue(o.sut)! === (readValue(o.oracle)! | (1n << 48n))) ||
        (o.kind === 'pmi' && pmisOf(o.sut).length > pmisOf(o.oracle).length)) &&
      // Bytes can only wrap on top of a value written (then or since rewritten: the fold of a pause comes later), or
      // of a fold before.
      (metricsEverWrittenNonZero(c) || c.history.some(readsMetricsOrSlots)),
  },
  {
    id: 'slots-overflow-without-metrics-ovf',
    title:
      "FIXED_CTR3's own overflow sets GLOBAL_STATUS bit 35 alone, where bare metal also sets bit 48 (PERF_METRICS overflow) with it",
    kernelRef:
      'Like Xu RFC patch 8/8, __kvm_perf_overflow: INTEL_PERF_METRICS_IDX is set instead of pmc->idx only for metric_event_ovf (a rebuilt byte wrapping), never for the slots leader overflowing',
    matches: (o, c) => hasMetrics(c) && lacksSlotsMetricsOvf(o, c),
  },
  {
    id: 'metrics-mask-gp',
    title:
      'a PERF_METRICS write touching a byte the host has no metric event for (bits 63:32 on Ice Lake) #GPs, where the hardware ignores those bits',
    kernelRef:
      'Like Xu RFC patch 8/8, intel_pmu_set_msr: data & pmu->perf_metrics_mask → #GP (mask from num_topdown_events)',
    matches: (o, c) =>
      o.kind === 'wrmsr' &&
      o.target === MSR_PERF_METRICS &&
      o.sut.kind === 'gp' &&
      o.oracle.kind === 'accepted' &&
      !c.host.topdownL2 &&
      o.value !== null &&
      o.value >> 32n !== 0n,
  },
];

/** Every declared divergence of the design: its base's, then the series' own. */
export const TOPDOWN_REBUILT_EXPECTATIONS: readonly KnownDivergence[] = [
  ...EMULATED_EXPECTATIONS,
  ...TOPDOWN_REBUILT_DECLARED,
];

export const TOPDOWN_REBUILT_INVISIBILITY_EXPECTATIONS: readonly KnownDivergence[] = EMULATED_INVISIBILITY_EXPECTATIONS;
